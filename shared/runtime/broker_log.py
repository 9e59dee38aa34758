"""What the relay knows of the broker's log, to tell when the broker has lost it.

Two signs, each bounded (one record read, or none): the anchor (the last record the relay
published, read back now and then: gone, or another event at its offset) and the high-water
marks (the highest offset the broker acknowledged per partition: an acknowledgement at or
below one means the partition's log started again). The embedded broker keeps its log in
memory only, so a restart is such a loss; on Kafka, so is a topic deleted and created again,
or an unclean leader election.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.structs import RecordMetadata


@dataclass(frozen=True)
class Anchor:
    """Where the broker put a record the relay published, and the record's CloudEvents id."""

    topic: str
    partition: int
    offset: int
    event_id: str


class LogState(enum.Enum):
    HOLDS = "holds"  # the record is where the broker said it put it
    LOST = "lost"  # the partition ends before it, another record is there, or it is gone
    EXPIRED = "expired"  # removed by the topic's retention: it tells nothing
    UNKNOWN = "unknown"  # no answer in time: checked again later


def event_id_of(headers: Sequence[tuple[str, bytes]]) -> str | None:
    found = [value for name, value in headers if name == "ce_id"]
    return found[-1].decode(errors="replace") if found else None


@dataclass
class HighWater:
    """The highest offset the broker acknowledged per partition, loaded from and saved to the
    database with the relay's rounds."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def regressed(self, acknowledged: Iterable[RecordMetadata]) -> RecordMetadata | None:
        """The first acknowledgement at or below a known high-water mark: the partition's log
        started again, so the broker lost what it held."""
        for metadata in acknowledged:
            known = self.offsets.get((metadata.topic, metadata.partition))
            if known is not None and metadata.offset <= known:
                return metadata
        return None

    def advance(self, acknowledged: Iterable[RecordMetadata]) -> None:
        for metadata in acknowledged:
            key = (metadata.topic, metadata.partition)
            self.offsets[key] = max(self.offsets.get(key, -1), metadata.offset)

    def columns(self) -> tuple[list[str], list[int], list[int]]:
        """The marks as the column arrays the relay's round statement saves."""
        keys = sorted(self.offsets)
        return [t for t, _ in keys], [p for _, p in keys], [self.offsets[k] for k in keys]


class LogProbe:
    """Reads one record back from the broker: a bounded check, never a scan."""

    def __init__(
        self, client_options: dict[str, Any], *, timeout: float = 10.0, fetch_seconds: float = 1.0
    ) -> None:
        self._options = client_options
        self._timeout = timeout
        self._fetch_seconds = fetch_seconds

    async def check(self, anchor: Anchor) -> LogState:
        """Where the anchor record stands; raises when the broker cannot tell (yet). Bounded
        by the timeout even when the broker goes away mid-check (the client is abandoned)."""
        consumer = AIOKafkaConsumer(
            **self._options,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=50,
        )
        task = asyncio.create_task(self._started_check(consumer, anchor))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
            if not done:
                raise TimeoutError(f"broker check of {anchor} took over {self._timeout}s")
            return task.result()
        finally:
            task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait({asyncio.create_task(consumer.stop())}, timeout=5)

    async def _started_check(self, consumer: AIOKafkaConsumer, anchor: Anchor) -> LogState:
        await consumer.start()
        return await self._check(consumer, anchor)

    async def _check(self, consumer: AIOKafkaConsumer, anchor: Anchor) -> LogState:
        tp = TopicPartition(anchor.topic, anchor.partition)
        partitions = consumer.partitions_for_topic(anchor.topic)
        if not partitions:
            raise LookupError(f"{anchor.topic} is not on the broker (yet)")
        if anchor.partition not in partitions:
            # A topic never loses partitions: this one was made again, with fewer (an embedded
            # broker restarted by a release that creates fewer), so its log is gone.
            return LogState.LOST
        consumer.assign([tp])
        if (await consumer.beginning_offsets([tp]))[tp] > anchor.offset:
            return LogState.EXPIRED
        consumer.seek(tp, anchor.offset)
        try:
            record = await self._first_record(consumer, tp)
        except OffsetOutOfRangeError:
            return LogState.LOST  # Kafka: the partition ends before the anchor
        if record is None:
            # The embedded broker answers an offset past its end with nothing. Its end offset
            # is only trusted in that case: it under-counts when the last batch holds several
            # records, so comparing it alone with the anchor would find losses that are not.
            end = (await consumer.end_offsets([tp]))[tp]
            return LogState.LOST if end <= anchor.offset else LogState.UNKNOWN
        if record.offset != anchor.offset:
            return LogState.EXPIRED  # no record at that offset (compacted, a control record)
        found = event_id_of(record.headers)
        return LogState.HOLDS if found == anchor.event_id else LogState.LOST

    async def _first_record(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> Any:
        deadline = time.monotonic() + self._fetch_seconds
        while time.monotonic() < deadline:
            records = (await consumer.getmany(tp, timeout_ms=200, max_records=1)).get(tp, [])
            if records:
                return records[0]
        return None
