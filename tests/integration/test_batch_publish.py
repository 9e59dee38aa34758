"""The relay's batch publisher on a real broker: every record lands once, where `send` would
have put it, in the order given per key, and each acknowledgement names its own offset."""

from __future__ import annotations

from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from lottrace.infra import TansuBroker
from shared.contracts.envelope import OutgoingMessage
from shared.runtime.kafka import make_producer
from shared.runtime.publish import BatchPublisher
from shared.runtime.settings import KafkaSettings

TOPICS = ("order-placed", "order-shipped")
KEYS = [f"order-{n}".encode() for n in range(7)] + [b"recall-1"]


def _messages(count: int) -> list[OutgoingMessage]:
    """Records of several keys and two topics, interleaved; values large enough that one
    partition's records fill several batches."""
    return [
        OutgoingMessage(
            TOPICS[n % 2],
            KEYS[n % len(KEYS)],
            f"{n:06d}".encode() + b"x" * 2_000,
            [("ce_id", f"id-{n}".encode())],
        )
        for n in range(count)
    ]


async def _read_back(broker: TansuBroker, expected: int) -> list[tuple[str, int, int, bytes]]:
    consumer = AIOKafkaConsumer(
        *TOPICS, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[tuple[str, int, int, bytes]] = []
    try:
        while len(records) < expected:
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"read {len(records)} of {expected} records before the deadline"
            for part in batches.values():
                records += [(r.topic, r.partition, r.offset, r.value or b"") for r in part]
    finally:
        await consumer.stop()
    return records


async def _started(broker: TansuBroker) -> AIOKafkaProducer:
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    producer = make_producer(settings, service="test")
    await producer.start()
    return producer


async def test_each_record_lands_once_in_order_per_key_at_its_own_offset(
    broker: TansuBroker,
) -> None:
    messages = _messages(900)  # about 1.8 MB: several 256 KB batches per partition
    producer = await _started(broker)
    try:
        outcomes = await BatchPublisher(producer).publish(messages)
        where_send_puts = [
            await producer.send_and_wait(TOPICS[0], value=b"probe", key=key) for key in KEYS
        ]
    finally:
        await producer.stop()
    assert all(isinstance(outcome, RecordMetadata) for outcome in outcomes)
    log = {(t, p, o): v for t, p, o, v in await _read_back(broker, len(messages) + len(KEYS))}
    for message, outcome in zip(messages, outcomes, strict=True):
        assert isinstance(outcome, RecordMetadata)
        assert log[(outcome.topic, outcome.partition, outcome.offset)] == message.value
    partition_of_key = {k: meta.partition for k, meta in zip(KEYS, where_send_puts, strict=True)}
    offsets_per_key: dict[tuple[str, bytes], list[int]] = defaultdict(list)
    for message, outcome in zip(messages, outcomes, strict=True):
        assert isinstance(outcome, RecordMetadata)
        if message.topic == TOPICS[0]:
            assert outcome.partition == partition_of_key[message.key or b""]
        offsets_per_key[(message.topic, message.key or b"")].append(outcome.offset)
    for offsets in offsets_per_key.values():
        assert offsets == sorted(offsets)
