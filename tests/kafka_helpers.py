"""Reading and writing real topics from tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata

from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import Event
from shared.runtime.lag import OUTBOX_QUERY


async def produce(
    bootstrap: str,
    messages: list[OutgoingMessage | tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]],
) -> list[RecordMetadata]:
    """Send the messages, in order, and return where each landed (partition, offset)."""
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
        return list(await asyncio.gather(*futures))
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
    bootstrap: str, topic: str, *, at_least: int = 1, timeout: float = 20.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of a topic from the beginning: waits until at least `at_least` are there,
    then reads on up to the topic's end offsets as they are at that moment (so `at_least=0`
    still reads all there is), or fails at the deadline.

    For "exactly these and nothing more" use `read_settled`, which first waits until nothing
    is still on its way."""
    deadline = time.monotonic() + timeout
    consumer, assignment = await _reader(bootstrap, topic)
    try:
        records: list[ConsumerRecord[Any, Any]] = []
        ends: dict[TopicPartition, int] | None = None
        while True:
            if ends is None and len(records) >= at_least:
                ends = await consumer.end_offsets(assignment)
            if ends is not None and await _reached(consumer, ends):
                return records
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{topic}: {len(records)} records after {timeout}s, wanted {at_least}"
                )
            batch = await consumer.getmany(timeout_ms=100)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()


async def outbox_drained(database_url: str) -> bool:
    """No row of that service database's outbox is waiting to be published, by the services'
    own definition of the backlog (`OUTBOX_QUERY`). A database without an outbox yet (not
    migrated) is not drained."""
    connection = await asyncpg.connect(database_url)
    try:
        if await connection.fetchval("SELECT to_regclass('outbox_pending')") is None:
            return False
        row = await connection.fetchrow(OUTBOX_QUERY)
        return row is not None and int(row["backlog"]) == 0
    finally:
        await connection.close()


async def read_settled(
    bootstrap: str, topic: str, *outboxes: str, timeout: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of a topic once nothing more is on its way to it, without sleeping.

    The caller has first let the producing side act (an HTTP call answered, a consumer
    committed its input): all it still owes the topic is then in its outbox. This waits
    until every database in `outboxes` has published its outbox with the topic's end offsets
    the same before and after that reading, and returns the records up to exactly those end
    offsets: a duplicate or an unexpected record is in the list, never missed by a read that
    stopped early."""
    deadline = time.monotonic() + timeout
    consumer, assignment = await _reader(bootstrap, topic)
    try:
        while True:
            before = await consumer.end_offsets(assignment)
            drained = [await outbox_drained(url) for url in outboxes]
            ends = await consumer.end_offsets(assignment)
            if all(drained) and ends == before:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{topic}: outboxes {drained} still publishing after {timeout}s")
            await asyncio.sleep(0.05)  # the interval of a poll with a deadline
        records: list[ConsumerRecord[Any, Any]] = []
        while not await _reached(consumer, ends):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{topic}: could not read up to {ends} in {timeout}s")
            batch = await consumer.getmany(timeout_ms=100)
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


async def _reader(bootstrap: str, topic: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A started consumer assigned every partition of the topic, at the beginning."""
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
    except BaseException:
        await consumer.stop()
        raise
    return consumer, assignment


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """The consumer has read each partition up to its end offset (Tansu's end offset can be
    inside the last record batch: the whole batch is read)."""
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True


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


def binary_headers(
    event_type: str, *, event_id: str, source: str, more: tuple[tuple[str, bytes], ...] = ()
) -> list[tuple[str, bytes]]:
    """The headers of an event sent in CloudEvents binary mode (its attributes as headers)."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        *more,
    ]


def consumer_record(
    topic: str,
    value: bytes,
    *,
    key: bytes,
    offset: int,
    partition: int = 0,
    timestamp: int = 0,
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    """A record as the consumer hands it over, for code that takes records without a broker."""
    return ConsumerRecord(
        topic=topic, partition=partition, offset=offset, timestamp=timestamp, timestamp_type=0,
        key=key, value=value, checksum=None, serialized_key_size=len(key),
        serialized_value_size=len(value), headers=headers or [],
    )  # fmt: skip
