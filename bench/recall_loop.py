"""`python -m bench.recall_loop`: the recall loop at scale, against a real embedded PostgreSQL.

A projection of `--lines` shipment lines in which one lot went to `--customers` customers is
seeded in SQL (the bench of ingesting it through the topic is bench/run.py's recall at scale),
and that lot is recalled. Then, timed:
- every customer's response ingested through the service's handler, in batches as the
  consumer hands them over (CONSUMER_MAX_RECORDS, 500), each batch one transaction;
- the effectiveness check of the recall (read, figured, as the JSON view);
- a drill of an ordinary lot of the projection, and of the recalled lot itself.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.measure import recall_database
from services.recall import db, effectiveness
from services.recall.drills import DrillRequest, run_drill
from services.recall.handlers import Recalls
from services.recall.responses import on_recall_responses
from shared.contracts.envelope import Incoming
from shared.contracts.events import GoodsReceived, RecallResponse, RecallScope
from shared.runtime.database import Database

BATCH = 500  # the consumer's default CONSUMER_MAX_RECORDS
LINES_PER_LOT = 1000  # the other lots of the projection: this many lines each


def _lot(code: str) -> GoodsReceived:
    return GoodsReceived(
        receipt_id=f"RC-{code}",
        lot_id=uuid.uuid4(),
        lot_code=code,
        sku=code.split("-", maxsplit=1)[0],
        quantity=10**9,
        received_at=datetime.now(UTC) - timedelta(days=3),
    )


async def _seed(
    database: Database, customers: int, lines: int
) -> tuple[GoodsReceived, GoodsReceived]:
    """The recalled lot shipped once to each customer; the other lines spread over other lots."""
    big, ordinary = _lot("BENCH-1"), _lot("OTHER-0")
    others = max(1, (lines - customers) // LINES_PER_LOT)
    async with database.transaction() as unit:
        await Recalls().on_goods_received(unit, [Incoming.direct(big, source="/bench")])
        await Recalls().on_goods_received(unit, [Incoming.direct(ordinary, source="/bench")])
        await unit.connection.execute(_SEED, big.lot_id, customers, ordinary.lot_id, others,
                                      max(0, lines - customers))  # fmt: skip
    return big, ordinary


# Shipment lines straight into the projection: the big lot to every customer, the rest to
# lots of LINES_PER_LOT lines (the first of them `ordinary`, the others placeholders).
_SEED = """
    WITH customers AS (
        INSERT INTO customers (customer_id, name)
        SELECT 'C' || lpad(n::text, 7, '0'), 'Customer ' || n FROM generate_series(1, $2) n
    ), other_lots AS (
        INSERT INTO lots (lot_id, lot_code, sku, uom)
        SELECT gen_random_uuid(), 'OTHER-' || n, 'OTHER', 'EA' FROM generate_series(1, $4 - 1) n
        RETURNING lot_id
    ), numbered AS (
        SELECT lot_id, row_number() OVER () - 1 AS k FROM other_lots
        UNION ALL SELECT $3, $4 - 1
    ), big AS (
        INSERT INTO shipment_lines (shipment_id, line_no, lot_id, order_id, customer_id, sku,
                                    lot_code, quantity, uom, shipped_at)
        SELECT 'SH-B' || n, 1, $1, 'SO-B' || n, 'C' || lpad(n::text, 7, '0'), 'BENCH', 'BENCH-1',
               2.5, 'EA', now() - interval '1 day'
        FROM generate_series(1, $2) n
    )
    INSERT INTO shipment_lines (shipment_id, line_no, lot_id, order_id, customer_id, sku,
                                lot_code, quantity, uom, shipped_at)
    SELECT 'SH-O' || n, 1, l.lot_id, 'SO-O' || n, 'C' || lpad((n % $2 + 1)::text, 7, '0'),
           'OTHER', 'OTHER', 1, 'EA', now() - interval '2 days'
    FROM generate_series(0, $5 - 1) n JOIN numbered l ON l.k = n % $4
"""


def _responses(recall_id: str, customers: int, big: GoodsReceived) -> list[RecallResponse]:
    """Every customer answers: half acknowledge, half report units destroyed."""
    now = datetime.now(UTC)
    return [
        RecallResponse(
            response_id=f"RESP-{n}",
            recall_id=recall_id,
            customer_id=f"C{n:07d}",
            responded_at=now,
            kind="acknowledged" if n % 2 else "units-reported",
            units=[] if n % 2 else [{"lot_id": big.lot_id, "destroyed": "2.5"}],
        )
        for n in range(1, customers + 1)
    ]


async def _ingest(database: Database, responses: Sequence[RecallResponse]) -> float:
    started = time.perf_counter()
    for first in range(0, len(responses), BATCH):
        batch = [Incoming.direct(r, source="/bench") for r in responses[first : first + BATCH]]
        async with database.transaction() as unit:
            await on_recall_responses(unit, batch)
    return time.perf_counter() - started


async def _effectiveness(database: Database, recall_id: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    async with (
        database.pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        recall = await db.get_recall(connection, recall_id)
        assert recall is not None
        check = await effectiveness.read_check(connection, recall)
        outstanding = effectiveness.outstanding_ids(check, 1000)
        names = await db.customer_names(connection, outstanding)
    view = effectiveness.view(check, names, outstanding_limit=1000).model_dump_json()
    return time.perf_counter() - started, {"bytes": len(view)}


async def _drill(database: Database, lot: GoodsReceived) -> tuple[float, dict[str, float]]:
    request = DrillRequest("bench drill", "I", RecallScope(lot_ids=[lot.lot_id]), None, "bench")
    started = time.perf_counter()
    async with database.transaction() as unit:
        drill = await run_drill(unit.connection, request)
    return time.perf_counter() - started, drill.stages


async def measure(customers: int, lines: int) -> dict[str, Any]:
    async with recall_database("bench_recall_loop") as database:
        return await _run(database, customers, lines)


async def _run(database: Database, customers: int, lines: int) -> dict[str, Any]:
    big, ordinary = await _seed(database, customers, lines)
    async with database.pool.acquire() as connection:
        await connection.execute("ANALYZE")
    async with database.transaction() as unit:
        scope = RecallScope(lot_ids=[big.lot_id])
        issued = await Recalls().issue(unit, reason="bench", classification="I", scope=scope,
                                       actor="bench")  # fmt: skip
    responses_s = await _ingest(database, _responses(issued.recall_id, customers, big))
    effectiveness_s, view = await _effectiveness(database, issued.recall_id)
    drill_s, stages = await _drill(database, ordinary)
    big_drill_s, big_stages = await _drill(database, big)
    return {
        "shipment_lines": lines,
        "customers": issued.affected_customer_count,
        "responses_s": responses_s,
        "responses_per_s": customers / responses_s,
        "effectiveness_s": effectiveness_s,
        "effectiveness_bytes": view["bytes"],
        "drill_s": drill_s,
        "drill_stages_ms": stages,
        "recalled_lot_drill_s": big_drill_s,
        "recalled_lot_drill_stages_ms": big_stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recall_loop", description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    arguments = parser.parse_args()
    result = asyncio.run(measure(arguments.customers, arguments.lines))
    print(f"{result['customers']:,} customers, {result['shipment_lines']:,} shipment lines")
    print(f"  responses ingested:     {result['responses_s']:8.2f} s (target < 10)")
    print(f"  effectiveness check:    {result['effectiveness_s']:8.2f} s (target < 1)")
    print(f"  drill, ordinary lot:    {result['drill_s']:8.2f} s (target < 2)")
    print(f"  drill, recalled lot:    {result['recalled_lot_drill_s']:8.2f} s")
    print(f"  stages (ms):            {result['recalled_lot_drill_stages_ms']}")


if __name__ == "__main__":
    main()
