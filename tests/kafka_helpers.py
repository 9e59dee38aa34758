"""Reading and writing real topics from tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import Event


async def produce(
    bootstrap: str,
    messages: list[OutgoingMessage | tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]],
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        futures = []
        for message in messages:
            if isinstance(message, OutgoingMessage):
                topic, key, value, headers = (
                    message.topic,
                    message.key,
                    message.value,
                    message.headers,
                )
            else:
                topic, key, value, headers = message
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish(
    bootstrap: str, *events: Event, source: str = "/tests", ids: list[str] | None = None
) -> list[OutgoingMessage]:
    messages = [
        encode(event, source=source, event_id=ids[i] if ids else None)
        for i, event in enumerate(events)
    ]
    await produce(bootstrap, list(messages))
    return messages


async def read_topic(
    bootstrap: str, topic: str, *, at_least: int = 1, timeout: float = 20.0, settle: float = 0.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of a topic from the beginning: waits until at least `at_least` are there
    (then `settle` seconds more, to catch any extra), or fails at the deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        records: list[ConsumerRecord[Any, Any]] = []
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if settle_until is None and len(records) >= at_least:
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                return records
            if now >= deadline:
                raise TimeoutError(
                    f"{topic}: {len(records)} records after {timeout}s, wanted {at_least}"
                )
            batch = await consumer.getmany(timeout_ms=100)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[TopicPartition, int]:
    """The group's committed offsets on a topic (partitions it never committed are left out)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        result = {}
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            tp = TopicPartition(topic, partition)
            offset = await consumer.committed(tp)
            if offset is not None:
                result[tp] = offset
        return result
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def headers_of(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}
