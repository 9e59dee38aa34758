"""The outbox relay on a broker that forgets, against a real Tansu broker and PostgreSQL:
published rows are kept for a while and published again when the broker loses its log, never
under normal operation; a row the broker refuses is set aside; old rows are purged."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from prometheus_client import REGISTRY

from lottrace.infra import TansuBroker, free_port, wait_until
from shared.contracts.envelope import Incoming
from shared.contracts.events import OrderCancelled, OrderPlaced
from shared.runtime.consumer import BatchConsumer
from shared.runtime.database import UnitOfWork
from shared.runtime.kafka import MemoPartitioner
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings
from tests.conftest import PostgresServer
from tests.kafka_helpers import headers_of, outbox_drained, read_settled, read_topic

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"


def settings(database_url: str, broker: TansuBroker, **options: Any) -> ServiceSettings:
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        enable_idempotence=False,
        session_timeout_ms=6000,
        max_message_bytes=options.pop("max_message_bytes", 1_000_000),
    )
    options.setdefault("outbox_broker_check_seconds", 0.3)
    return ServiceSettings(
        database_url=database_url, consumer_batch_timeout_ms=20, kafka=kafka, **options
    )


def emitter_runtime(database_url: str, broker: TansuBroker, **options: Any) -> ServiceRuntime:
    """A service that only emits: the probe tables, an outbox, and its relay."""
    return ServiceRuntime(
        name="emitter",
        settings=settings(database_url, broker, **options),
        migrations=PROBE_MIGRATIONS,
    )


async def started(runtime: ServiceRuntime) -> ServiceRuntime:
    await runtime.start()
    await asyncio.wait_for(runtime.started.wait(), 60)
    return runtime


async def apply_orders(unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
    await unit.connection.executemany(
        "INSERT INTO applied (event_id, order_id, quantity) VALUES ($1, $2, $3)",
        [(e.id, e.data.order_id, e.data.lines[0].quantity) for e in events],
    )


def order(order_id: str, sequence: int) -> OrderPlaced:
    """An order whose quantity is its sequence number within its key."""
    return OrderPlaced(
        order_id=order_id,
        customer={"customer_id": "C1"},
        lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": sequence}],
    )


async def emit_orders(runtime: ServiceRuntime, keys: list[str], first: int, last: int) -> list[str]:
    """Events `first..last` of every key, a transaction per sequence number; their ids."""
    ids = []
    for sequence in range(first, last + 1):
        async with runtime.database.transaction() as unit:
            ids += [unit.emit(order(key, sequence)) for key in keys]
    return ids


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def killed_and_restarted(broker: TansuBroker, *, partitions: int) -> TansuBroker:
    """kill -9 the broker (its memory-only log is gone) and start a new one on its port, with
    its topics made again."""
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait()
    restarted = TansuBroker(broker.port)
    await restarted.start()
    await restarted.create_topics(partitions=partitions)
    return restarted


@pytest_asyncio.fixture
async def second_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    async with postgres_server.fresh_database() as url:
        yield url


async def test_after_the_broker_loses_its_log_every_event_is_published_again_in_order(
    database_url: str, second_database: str
) -> None:
    broker = TansuBroker(free_port())
    await broker.start()
    await broker.create_topics(partitions=3)
    emitter = emitter_runtime(database_url, broker)
    consumer = BatchConsumer(group_id="projection", handlers=[(OrderPlaced, apply_orders)])
    projection = ServiceRuntime(
        name="projection",
        settings=settings(second_database, broker),
        migrations=PROBE_MIGRATIONS,
        consumer=consumer,
    )
    republished_before = metric("lottrace_outbox_republished_total")
    try:
        await started(emitter)
        await started(projection)
        keys = [f"SO-{n}" for n in range(10)]
        before_crash = await emit_orders(emitter, keys, 1, 30)

        async def applied(count: int) -> bool:
            rows = await fetch(second_database, "SELECT count(*) AS n FROM applied")
            return bool(rows[0]["n"] >= count)

        await wait_until(lambda: applied(300), timeout=60, what="300 events applied")

        broker = await killed_and_restarted(broker, partitions=3)

        records = await read_topic(broker.bootstrap_servers, "order-placed", at_least=300)
        # Everything produced before the crash is there again: each event once, each key's
        # events in the order they were emitted.
        assert Counter(headers_of(r)["ce_id"] for r in records) == Counter(before_crash)
        by_key: defaultdict[bytes, list[int]] = defaultdict(list)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_key[record.key].append(int(record.value.split(b'"quantity":"')[1].split(b'"')[0]))
        assert all(sequence == list(range(1, 31)) for sequence in by_key.values())
        assert emitter.relay is not None
        assert emitter.relay.republished == 300
        assert metric("lottrace_outbox_republished_total") - republished_before == 300

        # The consumer, whose group the broker forgot too, reads it all again: nothing applies
        # twice, and what is emitted after the crash applies as usual.
        after_crash = await emit_orders(emitter, keys, 31, 32)
        await wait_until(lambda: applied(320), timeout=60, what="320 events applied")
        rows = await fetch(second_database, "SELECT event_id FROM applied")
        assert Counter(row["event_id"] for row in rows) == Counter(before_crash + after_crash)
    finally:
        await projection.stop()
        await emitter.stop()
        broker.stop()


async def test_a_broker_back_with_fewer_partitions_gets_every_event_again(
    database_url: str,
) -> None:
    """A data folder kept by `make run` outlives a release that creates fewer partitions a
    topic on the embedded broker. The relay's anchor then names a partition the new topic does
    not have: the log is gone, so everything retained is published again, not held for ever."""
    broker = TansuBroker(free_port())
    await broker.start()
    await broker.create_topics(partitions=3)
    emitter = emitter_runtime(database_url, broker)
    try:
        await started(emitter)
        keys = [key for key in (f"SO-{n}" for n in range(60)) if on_partition(key, 3) == 2][:5]
        before_restart = await emit_orders(emitter, keys, 1, 10)
        await wait_until(lambda: outbox_drained(database_url), timeout=60, what="outbox drained")
        anchors = await fetch(database_url, "SELECT partition FROM outbox_anchor")
        assert [row["partition"] for row in anchors] == [2]

        broker = await killed_and_restarted(broker, partitions=1)

        records = await read_topic(broker.bootstrap_servers, "order-placed", at_least=50)
        assert Counter(headers_of(r)["ce_id"] for r in records) == Counter(before_restart)
        assert emitter.relay is not None
        assert emitter.relay.republished == 50
    finally:
        await emitter.stop()
        broker.stop()


def on_partition(key: str, partitions: int) -> int:
    """The partition the services' producers pick for this key."""
    return MemoPartitioner()(key.encode(), list(range(partitions)), list(range(partitions)))


async def test_a_broker_back_before_the_next_check_is_caught_by_its_first_acknowledgement(
    database_url: str,
) -> None:
    """The supervisor brings the embedded broker back in a fraction of a second: the relay's
    next sends succeed on the new, empty log before its next anchor check. The broker's
    acknowledgements then restart below the offsets it acknowledged before, and that alone
    makes the relay publish every retained row again."""
    broker = TansuBroker(free_port())
    await broker.start()
    await broker.create_topics(partitions=3)
    emitter = emitter_runtime(database_url, broker, outbox_broker_check_seconds=3600)
    try:
        await started(emitter)
        keys = [f"SO-{n}" for n in range(10)]
        before_crash = await emit_orders(emitter, keys, 1, 10)
        await read_topic(broker.bootstrap_servers, "order-placed", at_least=100)
        broker = await killed_and_restarted(broker, partitions=3)

        after_crash = await emit_orders(emitter, keys, 11, 12)

        records = await read_settled(broker.bootstrap_servers, "order-placed", database_url)
        assert {headers_of(r)["ce_id"] for r in records} == set(before_crash + after_crash)
        assert emitter.relay is not None
        assert emitter.relay.checks == 0  # no anchor check ran: the acknowledgements told
        assert emitter.relay.republished >= 100
    finally:
        await emitter.stop()
        broker.stop()


async def test_relays_of_several_databases_on_one_broker_never_republish(
    database_url: str, second_database: str, postgres_server: PostgresServer, broker: TansuBroker
) -> None:
    third = await postgres_server.create_database()
    urls = [database_url, second_database, postgres_server.url(third)]
    republished_before = metric("lottrace_outbox_republished_total")
    emitters = [
        ServiceRuntime(
            name=f"emitter-{n}",
            settings=settings(url, broker, outbox_broker_check_seconds=0.1),
            migrations=PROBE_MIGRATIONS,
        )
        for n, url in enumerate(urls)
    ]
    try:
        for emitter in emitters:
            await started(emitter)
        ids: list[str] = []
        for round_ in range(1, 6):  # the relays take turns on the same partitions
            for n, emitter in enumerate(emitters):
                ids += await emit_orders(
                    emitter, [f"SO-{n}-{k}" for k in range(20)], round_, round_
                )
        records = await read_topic(broker.bootstrap_servers, "order-placed", at_least=300)

        async def each_checked_its_anchor_often() -> bool:
            return all(e.relay is not None and e.relay.checks >= 10 for e in emitters)

        await wait_until(each_checked_its_anchor_often, timeout=30, what="10 checks per relay")
        records = await read_topic(broker.bootstrap_servers, "order-placed", at_least=300)
        assert sorted(headers_of(r)["ce_id"] for r in records) == sorted(ids)
        assert [e.relay.republished for e in emitters if e.relay is not None] == [0, 0, 0]
        assert metric("lottrace_outbox_republished_total") == republished_before
    finally:
        for emitter in emitters:
            await emitter.stop()
        await postgres_server.drop_database(third)


async def test_a_row_the_broker_refuses_is_set_aside_and_the_next_rows_go_out(
    database_url: str, broker: TansuBroker
) -> None:
    emitter = emitter_runtime(database_url, broker, max_message_bytes=10_000)
    rejected_before = metric("lottrace_outbox_rejected_total", topic="order-cancelled")
    try:
        await started(emitter)
        async with emitter.database.transaction() as unit:
            unit.emit(OrderCancelled(order_id="SO-before"))
            # Written in SQL, as recall writes its notices: no size check on the way in.
            await unit.connection.execute(
                """WITH written AS (
                       INSERT INTO outbox (topic, key, value, headers) VALUES
                       ('order-cancelled', 'SO-huge', $1, '[["ce_id", "huge"]]') RETURNING id
                   )
                   INSERT INTO outbox_pending SELECT id FROM written""",
                b"x" * 20_000,
            )
            unit.outbox_written_in_sql()
            unit.emit(OrderCancelled(order_id="SO-after"))
        records = await read_topic(broker.bootstrap_servers, "order-cancelled", at_least=2)
        assert sorted(r.key for r in records) == [b"SO-after", b"SO-before"]
        [aside] = await fetch(database_url, "SELECT key, reason FROM outbox_rejected")
        assert aside["key"] == b"SO-huge"
        assert "10000" in aside["reason"]
        assert await outbox_drained(database_url)
        rejected = metric("lottrace_outbox_rejected_total", topic="order-cancelled")
        assert rejected - rejected_before == 1
    finally:
        await emitter.stop()


async def test_published_rows_are_kept_for_the_retention_and_then_purged(
    database_url: str, broker: TansuBroker
) -> None:
    emitter = emitter_runtime(database_url, broker, outbox_retention_seconds=3600)
    # Rows published two hours ago and a minute ago, before the relay starts.
    await emitter.database.open()
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS), ("emitter", PROBE_MIGRATIONS)])
    async with emitter.database.transaction() as unit:
        old = [unit.emit(OrderCancelled(order_id=f"SO-old-{n}")) for n in range(3)]
        recent = [unit.emit(OrderCancelled(order_id=f"SO-recent-{n}")) for n in range(3)]
    await fetch(  # published: written two hours ago and a minute ago
        database_url,
        """WITH dated AS (
               UPDATE outbox SET created_at = now() - CASE WHEN key LIKE 'SO-old%'
               THEN interval '2 hours' ELSE interval '1 minute' END RETURNING id
           )
           DELETE FROM outbox_pending USING dated WHERE outbox_pending.id = dated.id""",
    )
    async with emitter.database.transaction() as unit:
        new = [unit.emit(OrderCancelled(order_id=f"SO-new-{n}")) for n in range(3)]
    await emitter.database.close()
    try:
        await started(emitter)

        async def old_rows_purged_and_new_ones_published() -> bool:
            gone = await fetch(database_url, "SELECT 1 FROM outbox WHERE key LIKE 'SO-old%'")
            return await outbox_drained(database_url) and not gone

        await wait_until(old_rows_purged_and_new_ones_published, timeout=30, what="purge")
        rows = await fetch(database_url, "SELECT headers FROM outbox ORDER BY id")
        kept = [dict(json.loads(row["headers"]))["ce_id"] for row in rows]
        assert kept == recent + new  # published within the retention: kept
        records = await read_topic(broker.bootstrap_servers, "order-cancelled", at_least=3)
        assert sorted(headers_of(r)["ce_id"] for r in records) == sorted(new)
        assert old  # never published by this relay: only purged
    finally:
        await emitter.stop()
