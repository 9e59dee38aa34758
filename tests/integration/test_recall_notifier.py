"""The recall notifier against a real PostgreSQL: two replicas share a recall's chunks of
customers (none taken twice, every customer notified exactly once), and a replica that dies
in the middle of a chunk leaves nothing of it: the next attempt writes its notices once.

What is checked is what the notifier leaves for the relay and the recall view: the notices
in the outbox (`recall-issued` rows of the notice type) and the `recall_notices` log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from lottrace.infra import wait_until
from services.recall.handlers import Recalls, run_notifier
from shared.contracts.events import OrderShipped
from shared.runtime.database import Database, UnitOfWork
from tests.integration.events import lot, shipment_of
from tests.integration.recall_database import SOURCE, issued_recall

NOTICE = "lottrace.recall-customer-notice.v1"
CHUNK = 3  # customers per chunk: eleven customers make four chunks
# Small enough that the customer with many shipments gets several notices.
MESSAGE_LIMIT = 6_000
CHEESE = lot("CHEESE-9")
SHIPMENTS = {f"C{n:02d}": 1 + n % 2 for n in range(10)} | {"BIG": 40}


def recalls() -> Recalls:
    return Recalls(notice_chunk=CHUNK, max_message_bytes=MESSAGE_LIMIT)


def shipment(customer_id: str, number: int) -> OrderShipped:
    return shipment_of(
        {"customer_id": customer_id, "name": f"Customer {customer_id}"},
        CHEESE,
        quantity=3,
        shipped_at=datetime.now(UTC) - timedelta(minutes=number),
        number=f"{customer_id}-{number}",
    )


@pytest_asyncio.fixture
async def recall_database(database_url: str) -> AsyncIterator[str]:
    """A recall database that knows the lot, its shipments, and a recall of it to notify."""
    shipments = [
        shipment(customer, n) for customer, count in SHIPMENTS.items() for n in range(count)
    ]
    async with issued_recall(database_url, recalls(), CHEESE, shipments, reason="listeria"):
        pass  # the notifiers under test open their own connections
    yield database_url


@contextlib.asynccontextmanager
async def replica(url: str) -> AsyncIterator[Database]:
    database = Database(url, source=SOURCE, min_size=1, max_size=2)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def notifiers_until_done(*databases: Database) -> None:
    """Run a notifier on each database, as the replicas do, until the recall is notified."""
    tasks = [asyncio.create_task(run_notifier(recalls(), db, idle_seconds=0.1)) for db in databases]

    async def done() -> bool:
        return bool(
            await databases[0].pool.fetchval(
                "SELECT bool_and(notices_done_at IS NOT NULL) FROM recalls"
            )
        )

    try:
        await wait_until(done, timeout=30, what="every notice written")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def notices_written(url: str) -> dict[str, list[list[str]]]:
    """Per customer, the shipment ids of each notice waiting in (or published from) the
    outbox, and the same count of notices logged in `recall_notices`."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT value FROM outbox WHERE topic = 'recall-issued'")
        logged = await connection.fetch("SELECT customer_id FROM recall_notices")
    finally:
        await connection.close()
    per_customer: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        event = json.loads(row["value"])
        if event["type"] == NOTICE:
            data = event["data"]
            shipments = [s["shipment_id"] for s in data["shipments"]]
            per_customer[data["customer"]["customer_id"]].append(shipments)
    assert Counter(row["customer_id"] for row in logged) == {
        customer: len(notices) for customer, notices in per_customer.items()
    }
    return dict(per_customer)


def assert_each_customer_notified_once(written: dict[str, list[list[str]]]) -> None:
    assert set(written) == set(SHIPMENTS)
    for customer_id, count in SHIPMENTS.items():
        expected = sorted(f"SH-{customer_id}-{n}" for n in range(count))
        assert sorted(s for notice in written[customer_id] for s in notice) == expected
    assert all(len(written[c]) == 1 for c in SHIPMENTS if c != "BIG")
    assert len(written["BIG"]) > 1  # split to fit the limit: each shipment in exactly one part


async def test_two_replicas_share_the_chunks_and_every_customer_gets_one_notice(
    recall_database: str,
) -> None:
    async with replica(recall_database) as first, replica(recall_database) as second:
        async with first.transaction() as unit:
            held = await recalls().notify_chunk(unit)  # its chunk stays locked until commit
            # The other replica neither waits for that chunk nor takes it: it takes the next.
            taken = await asyncio.wait_for(second.run(recalls().notify_chunk), 10)
        await notifiers_until_done(first, second)
        chunks = await first.pool.fetch("SELECT chunk, notified_at FROM recall_chunks")

    assert (held, taken) == (CHUNK, CHUNK)
    assert len(chunks) == 4
    assert all(chunk["notified_at"] is not None for chunk in chunks)
    assert_each_customer_notified_once(await notices_written(recall_database))


async def test_a_replica_that_dies_mid_chunk_leaves_nothing_and_the_next_writes_it_once(
    recall_database: str,
) -> None:
    async with replica(recall_database) as dying, replica(recall_database) as survivor:

        async def die_before_commit(unit: UnitOfWork) -> None:
            # Its notices are written; then its connection dies, as with a killed process.
            assert await recalls().notify_chunk(unit) == CHUNK
            await survivor.pool.execute(
                "SELECT pg_terminate_backend($1)", unit.connection.get_server_pid()
            )

        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await in_one_transaction(dying, die_before_commit)
        assert await notices_written(recall_database) == {}
        pending = await survivor.pool.fetchval(
            "SELECT count(*) FROM recall_chunks WHERE notified_at IS NULL"
        )
        assert pending == 4

        await notifiers_until_done(survivor)
    assert_each_customer_notified_once(await notices_written(recall_database))


async def in_one_transaction(
    database: Database, work: Callable[[UnitOfWork], Awaitable[None]]
) -> None:
    async with database.transaction() as unit:
        await work(unit)
