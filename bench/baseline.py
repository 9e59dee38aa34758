"""The raw baseline: the pipeline's hops done by minimal loops with no framework.

Each role is one process, like a service: aiokafka batch consume, one asyncpg transaction with
an inbox insert and one set-based write, produce the outgoing events, then commit offsets per
partition. No parsing into models, no FEFO, no outbox: the floor a framework is measured
against.

    python -m bench.baseline --role inventory --bootstrap 127.0.0.1:9092 --dsn postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

PREFIX = "baseline."
ROLES: dict[str, tuple[list[str], str | None]] = {
    # role: (topics consumed, topic produced)
    "inventory": ([f"{PREFIX}order-placed", f"{PREFIX}order-shipped"], f"{PREFIX}lot-allocated"),
    "fulfillment": ([f"{PREFIX}order-placed", f"{PREFIX}lot-allocated"], f"{PREFIX}order-shipped"),
    "recall": ([f"{PREFIX}order-shipped"], None),
}
TOPICS = [f"{PREFIX}order-placed", f"{PREFIX}lot-allocated", f"{PREFIX}order-shipped"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (source text, id text, PRIMARY KEY (source, id));
CREATE TABLE IF NOT EXISTS facts (event_id text, topic text, body jsonb);
"""


def _derived(event: dict[str, Any], role: str) -> dict[str, Any] | None:
    data = event["data"]
    if role == "inventory" and event["type"].endswith("order-placed.v1"):
        kind = "lot-allocated"
        payload = {
            "order_id": data["order_id"],
            "customer": data["customer"],
            "lines": [
                {**line, "lot_id": "00000000-0000-0000-0000-000000000001", "lot_code": "L1"}
                for line in data["lines"]
            ],
        }
    elif role == "fulfillment" and event["type"].endswith("lot-allocated.v1"):
        kind = "order-shipped"
        payload = {**data, "shipment_id": f"SH-{data['order_id']}"}
    else:
        return None
    return {
        "specversion": "1.0",
        "id": f"{kind}-{event['id']}",
        "type": f"baseline.{kind}.v1",
        "source": f"/baseline/{role}",
        "subject": data["order_id"],
        "data": payload,
    }


async def _store(
    connection: asyncpg.Connection, records: list[ConsumerRecord], events: list[dict[str, Any]]
) -> set[str]:
    """Record the batch in the inbox and keep the facts of the events not seen before."""
    async with connection.transaction():
        fresh = await connection.fetch(
            "INSERT INTO inbox SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT DO NOTHING RETURNING id",
            [e["source"] for e in events],
            [e["id"] for e in events],
        )
        new_ids = {row["id"] for row in fresh}
        await connection.execute(
            "INSERT INTO facts SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])",
            [e["id"] for e in events if e["id"] in new_ids],
            [r.topic for r, e in zip(records, events, strict=True) if e["id"] in new_ids],
            [r.value.decode() for r, e in zip(records, events, strict=True) if e["id"] in new_ids],
        )
    return new_ids


async def _forward(
    producer: AIOKafkaProducer,
    produces: str,
    role: str,
    events: list[dict[str, Any]],
    new_ids: set[str],
) -> None:
    futures = []
    for event in events:
        if event["id"] in new_ids and (out := _derived(event, role)) is not None:
            futures.append(
                await producer.send(produces, json.dumps(out).encode(), key=out["subject"].encode())
            )
    await asyncio.gather(*futures)


async def run(role: str, bootstrap: str, dsn: str) -> None:
    topics, produces = ROLES[role]
    connection = await asyncpg.connect(dsn)
    await connection.execute(SCHEMA)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"baseline-{role}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await consumer.start()
    await producer.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        while not stopping.is_set():
            batch = await consumer.getmany(timeout_ms=50, max_records=500)
            records = [record for partition in batch.values() for record in partition]
            if not records:
                continue
            events = [json.loads(record.value) for record in records]
            new_ids = await _store(connection, records, events)
            if produces:
                await _forward(producer, produces, role, events, new_ids)
            await consumer.commit(
                {
                    TopicPartition(tp.topic, tp.partition): rs[-1].offset + 1
                    for tp, rs in batch.items()
                }
            )
    finally:
        await consumer.stop()
        await producer.stop()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=sorted(ROLES), required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--dsn", required=True)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.role, arguments.bootstrap, arguments.dsn))


if __name__ == "__main__":
    main()
