"""How the subscriber hands a fetched batch to `BatchConsumer.consume`: through no worker
thread, and nothing of the batch outlives its handling once nothing refers to it, without
waiting for Python's cycle collector (services run it rarely: shared/runtime/serve.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from typing import Any

import fast_depends.utils
import pytest
from fast_depends.utils import run_in_threadpool
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.message import KafkaMessage

from shared.contracts.events import GoodsReceived
from shared.runtime.consumer import BatchConsumer, Record


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _messages_alive() -> int:
    return sum(1 for thing in gc.get_objects() if isinstance(thing, KafkaMessage))


async def test_a_batch_is_handed_over_without_a_thread_and_freed_at_once(
    monkeypatch: pytest.MonkeyPatch, collector_off: None
) -> None:
    from services.inventory.app import Settings

    handed: list[list[bytes]] = []
    thread_hops: list[object] = []

    async def consume(
        self: BatchConsumer, database: Any, records: Sequence[Record], consumer: Any
    ) -> None:
        handed.append([record.value for record in records])

    async def handle(unit: Any, events: Any) -> None:
        return None

    async def counted_hop(function: Any, *args: Any, **kwargs: Any) -> Any:
        thread_hops.append(function)
        return await run_in_threadpool(function, *args, **kwargs)

    monkeypatch.setattr(BatchConsumer, "consume", consume)
    # What FastDepends calls for a sync dependency, such as a KafkaMessage context field.
    monkeypatch.setattr(fast_depends.utils, "run_in_threadpool", counted_hop)
    broker = KafkaBroker(consumer_only=True)
    batch_consumer = BatchConsumer(group_id="inventory", handlers=[(GoodsReceived, handle)])
    batch_consumer.subscribe(broker, database=None, settings=Settings())  # type: ignore[arg-type]
    alive_before = _messages_alive()
    async with TestKafkaBroker(broker, connect_only=False) as test_broker:
        await test_broker.publish_batch(b"one", b"two", topic="goods-received")
    alive_after = _messages_alive()  # the test broker forgets its recorded calls on leaving

    assert handed == [[b"one", b"two"]]
    assert thread_hops == [], "a batch was handed over through a worker thread"
    assert alive_after == alive_before
