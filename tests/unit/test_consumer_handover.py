"""How the subscriber hands a fetched batch to `BatchConsumer.consume`: on the event loop,
through no worker thread, and nothing of the batch outlives its handling once nothing refers
to it, without waiting for Python's cycle collector (services run it rarely:
shared/runtime/serve.py)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
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


async def test_a_batch_is_handed_over_on_the_loop_and_freed_at_once(
    monkeypatch: pytest.MonkeyPatch, collector_off: None
) -> None:
    from services.inventory.app import Settings

    handed: list[tuple[bool, list[bytes]]] = []

    async def consume(
        self: BatchConsumer, database: Any, records: Sequence[Record], consumer: Any
    ) -> None:
        on_loop = threading.current_thread() is threading.main_thread()
        handed.append((on_loop, [record.value for record in records]))

    async def handle(unit: Any, events: Any) -> None:
        return None

    monkeypatch.setattr(BatchConsumer, "consume", consume)
    broker = KafkaBroker(consumer_only=True)
    batch_consumer = BatchConsumer(group_id="inventory", handlers=[(GoodsReceived, handle)])
    batch_consumer.subscribe(broker, database=None, settings=Settings())  # type: ignore[arg-type]
    alive_before = _messages_alive()
    async with TestKafkaBroker(broker, connect_only=False) as test_broker:
        threads_before = set(threading.enumerate())
        await test_broker.publish_batch(b"one", b"two", topic="goods-received")
        threads_started = set(threading.enumerate()) - threads_before
    alive_after = _messages_alive()  # the test broker forgets its recorded calls on leaving

    assert handed == [(True, [b"one", b"two"])]
    assert not threads_started, "a batch was handed over through a worker thread"
    assert alive_after == alive_before
