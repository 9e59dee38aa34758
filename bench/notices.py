"""`python -m bench.notices`: what a chunk of recall notices costs each way, against a real
embedded PostgreSQL. The set-based path (`db.write_notices`: PostgreSQL builds and writes the
CloudEvents in one statement) against the model path (the same notices read back, built with
`RecallCustomerNotice` by services/recall/notices.py, encoded by `shared.contracts` and
written through the unit of work's outbox). Each run is rolled back, so every run writes the
same notices."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.measure import RECALL_SOURCE, recall_database
from services.recall import db
from services.recall.handlers import Recalls, notice_requests
from services.recall.notices import NoticeBuilder
from services.recall.records import Chunk, PendingRecall
from shared.contracts.envelope import Incoming
from shared.contracts.events import GoodsReceived, OrderShipped, RecallScope
from shared.runtime.database import MAX_MESSAGE_BYTES, Connection, Database, UnitOfWork

Work = Callable[[Connection], Awaitable[int]]


def _line(lot: GoodsReceived) -> dict[str, Any]:
    return {"line_no": 1, "sku": lot.sku, "lot_id": lot.lot_id, "lot_code": lot.lot_code,
            "quantity": "2.5"}  # fmt: skip


def _shipments(lot: GoodsReceived, customers: int, per_customer: int) -> list[OrderShipped]:
    now = datetime.now(UTC)
    return [
        OrderShipped(
            shipment_id=f"SH-{c:06d}-{n}",
            order_id=f"SO-{c:06d}-{n}",
            customer={"customer_id": f"C{c:06d}", "name": f"Customer {c}", "phone": "+1 555"},
            shipped_at=now - timedelta(minutes=n, microseconds=c),
            lines=[_line(lot)],
        )
        for c in range(customers)
        for n in range(per_customer)
    ]


async def _seed(database: Database, customers: int, per_customer: int) -> None:
    """One lot, shipped to every customer, and a recall of it with its notices pending."""
    lot = GoodsReceived(
        receipt_id="RC-BENCH",
        lot_id=uuid.uuid4(),
        lot_code="BENCH-1",
        sku="BENCH",
        quantity=10**9,
        received_at=datetime.now(UTC) - timedelta(days=2),
    )
    recalls = Recalls(notice_chunk=customers)
    async with database.transaction() as unit:
        await recalls.on_goods_received(unit, [Incoming.direct(lot, source="/bench")])
        events = [
            Incoming.direct(e, source="/bench") for e in _shipments(lot, customers, per_customer)
        ]
        await recalls.on_order_shipped(unit, events)
    async with database.transaction() as unit:
        scope = RecallScope(lot_ids=[lot.lot_id])
        await recalls.issue(unit, reason="bench", classification="II", scope=scope, actor="bench")


async def _next_chunk(connection: Connection) -> tuple[PendingRecall, Chunk]:
    """The recall the seed left pending and its first chunk of customers: both paths start
    here."""
    recall = await db.recall_with_pending_notices(connection)
    assert recall is not None
    chunk = await db.take_chunk(connection, recall.recall_id)
    assert chunk is not None
    return recall, chunk


async def _sql_path(connection: Connection) -> int:
    builder = NoticeBuilder(source=RECALL_SOURCE, max_message_bytes=MAX_MESSAGE_BYTES)
    recall, chunk = await _next_chunk(connection)
    left = await db.write_notices(
        connection,
        recall=recall,
        chunk=chunk,
        max_value_bytes=builder.value_budget_for_sql,
        max_shipments=None,
        source=RECALL_SOURCE,
    )
    return chunk.customers - len(left)


async def _model_path(connection: Connection) -> int:
    builder = NoticeBuilder(source=RECALL_SOURCE, max_message_bytes=MAX_MESSAGE_BYTES)
    recall, chunk = await _next_chunk(connection)
    customer_ids = await connection.fetch(
        "SELECT DISTINCT customer_id FROM shipment_lines"
        " WHERE customer_id BETWEEN $1 AND $2 ORDER BY customer_id",
        chunk.first_customer,
        chunk.last_customer,
    )
    unit = UnitOfWork(connection, source=RECALL_SOURCE)
    built = []
    for request in await notice_requests(connection, recall, [r[0] for r in customer_ids]):
        for notice in builder.build(request):
            unit.emit_message(notice.message)
            built.append(notice)
    await unit.flush_outbox()
    return len(built)


async def _timed(database: Database, work: Work, runs: int) -> tuple[list[float], int]:
    seconds, written = [], 0
    for _ in range(runs):
        async with database.pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            started = time.perf_counter()
            written = await work(connection)
            seconds.append(time.perf_counter() - started)
            await transaction.rollback()
    return seconds, written


async def measure(customers: int, per_customer: int, runs: int) -> dict[str, float]:
    """Median seconds of each path for one chunk of `customers` notices."""
    async with recall_database("bench_notices") as database:
        await _seed(database, customers, per_customer)
        sql, sql_notices = await _timed(database, _sql_path, runs)
        model, model_notices = await _timed(database, _model_path, runs)
    assert sql_notices == model_notices == customers, (sql_notices, model_notices)
    return {"sql_seconds": statistics.median(sql), "model_seconds": statistics.median(model)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notices", description=__doc__)
    parser.add_argument("--customers", type=int, default=5000, help="notices in the chunk")
    parser.add_argument("--shipments", type=int, default=3, help="shipments per customer")
    parser.add_argument("--runs", type=int, default=5, help="runs of each path (median)")
    arguments = parser.parse_args()
    result = asyncio.run(measure(arguments.customers, arguments.shipments, arguments.runs))
    sql, model = result["sql_seconds"], result["model_seconds"]
    print(f"{arguments.customers} customers x {arguments.shipments} shipments, one chunk")
    print(f"  set-based SQL (db.write_notices): {sql * 1000:9.1f} ms")
    print(f"  contract models (notices.py):     {model * 1000:9.1f} ms")
    print(f"  ratio model / SQL:                {model / sql:9.2f}x")


if __name__ == "__main__":
    main()
