"""`python -m bench.relay`: the outbox relay alone, publishing ROWS notice-sized outbox rows
(one key, about 700 bytes, a CloudEvents id each) from a durable embedded PostgreSQL to the
embedded broker: the seconds until none is pending, and the rounds it took. Published rows
stay in the outbox for the retention, as in a service, so later rounds run beside them."""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from lottrace.infra import EmbeddedPostgres, TansuBroker, wait_until
from shared.runtime.kafka import ensure_topics, make_producer
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.outbox import OutboxRelay
from shared.runtime.settings import KafkaSettings

TOPIC = "recall-issued"
CHUNK = 5_000

_WRITE = """
WITH written AS (
    INSERT INTO outbox (topic, key, value, headers)
    SELECT $1, 'R-2026-0001'::bytea, convert_to(repeat('n', 700), 'UTF8'),
           jsonb_build_array(
               jsonb_build_array('content-type', 'application/cloudevents+json'),
               jsonb_build_array('ce_id', gen_random_uuid()::text),
               jsonb_build_array('ce_type', 'lottrace.recall-customer-notice.v1'),
               jsonb_build_array('ce_source', '/lottrace/recall'))
    FROM generate_series(1, $2) RETURNING id
)
INSERT INTO outbox_pending SELECT id FROM written
"""


async def _pending(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval("SELECT count(*) FROM outbox_pending")
    return count


async def _relay_seconds(url: str, bootstrap: str, rows: int) -> float:
    """Write `rows` pending rows, start a relay, and time it until none is pending."""
    settings = KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False)
    await ensure_topics(settings, [TOPIC], partitions=3)
    connection = await asyncpg.connect(url)
    producer = make_producer(settings, service="bench")
    await producer.start()
    try:
        for start in range(0, rows, CHUNK):
            await connection.execute(_WRITE, TOPIC, min(CHUNK, rows - start))
        relay = OutboxRelay(url, producer)
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        try:
            await wait_until(
                lambda: _none_pending(connection), timeout=600, interval=0.05, what="relay"
            )
        finally:
            task.cancel()
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await connection.close()


async def _none_pending(connection: asyncpg.Connection) -> bool:
    return await _pending(connection) == 0


async def measure(rows: int) -> float:
    broker = TansuBroker()
    postgres = EmbeddedPostgres(durable=True)
    await broker.start()
    await postgres.start()
    try:
        await postgres.create_database("bench_relay")
        url = postgres.url().rsplit("/", 1)[0] + "/bench_relay"
        await migrate(url, [("runtime", RUNTIME_MIGRATIONS)])
        return await _relay_seconds(url, broker.bootstrap_servers, rows)
    finally:
        broker.stop()
        postgres.remove()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    arguments = parser.parse_args()
    seconds = asyncio.run(measure(arguments.rows))
    print(f"{arguments.rows} rows relayed in {seconds:.2f} s ({arguments.rows / seconds:,.0f}/s)")


if __name__ == "__main__":
    main()
