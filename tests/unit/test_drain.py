"""The drain under `make run` calls the platform drained only on a reading that describes one
moment: no unpublished outbox row, no lag, and the topics' end offsets the same before and
after the reading (brokers and databases replaced by scripted readings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition

from lottrace import drain

DATABASES = {"receiving": "postgresql://r", "inventory": "postgresql://i"}
PARTITION = TopicPartition("lottrace.goods-received.v1", 0)


def script(monkeypatch: pytest.MonkeyPatch, ends: list[int]) -> Iterator[int]:
    """Outboxes and lags always empty; the end offset reads return `ends` in turn."""
    readings = iter(ends)

    async def topic_ends(bootstrap: str) -> dict[TopicPartition, int]:
        return {PARTITION: next(readings)}

    async def outbox_rows(database_url: str) -> int:
        return 0

    async def group_lag(bootstrap: str, group: str, topics: object) -> int:
        return 0

    monkeypatch.setattr(drain, "topic_ends", topic_ends)
    monkeypatch.setattr(drain, "outbox_rows", outbox_rows)
    monkeypatch.setattr(drain, "group_lag", group_lag)
    return readings


async def test_a_record_published_during_the_reading_is_not_drained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An outbox row created after the outbox read and published before the end: the outboxes
    # and the lags read empty, but the end offset moved from 5 to 6.
    script(monkeypatch, [5, 6])
    left = await drain.backlog("broker:9092", DATABASES)
    assert not left.empty
    assert "still being published" in left.describe()


async def test_the_drain_waits_for_a_reading_with_the_end_offsets_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = script(monkeypatch, [5, 6, 6, 6])
    said: list[str] = []
    assert await drain.wait_drained("broker:9092", DATABASES, say=said.append, interval=0) is None
    assert next(readings, None) is None, "drained on the first, moving, reading"


async def test_unchanged_end_offsets_and_nothing_in_flight_is_drained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script(monkeypatch, [7, 7])
    assert (await drain.backlog("broker:9092", DATABASES)).empty
