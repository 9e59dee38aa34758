"""A company's history, loaded set-based into the recall and inventory projections for
`bench/scaling.py`: straight into the tables the services' migrations made, in as few
statements as PostgreSQL can run over `generate_series`, without the broker.

History lot `k` (0 <= k < lines / LINES_PER_LOT) was received 2 years x (1 - k / lots) ago,
expires 180 days after that, belongs to SKU k mod SKUS and went out in LINES_PER_LOT shipment
lines within days of its receipt; every 50th lot was made from the two lots after it. Shipments
have three lines, each of another lot, and go to customers in turn. Inventory holds the same
lots, all their stock shipped, the closed orders of those shipments and their lot history
(reserved, then shipped). A lot's id is `md5('lot-' || k)` on both sides (`lot_uuid`)."""

from __future__ import annotations

import hashlib
import re
from uuid import UUID

from shared.runtime.database import Database

LINES_PER_LOT = 200  # the same at every size: a trace's answer does not grow with history
LINES_PER_SHIPMENT = 3
SKUS = 300
CURRENT_LOTS_PER_SKU = 8
CUSTOMERS_PER_LINE = 0.05  # a customer for every 20 shipment lines
SERVER_SETTINGS = {"max_wal_size": "8GB", "maintenance_work_mem": "256MB"}


def lot_uuid(k: int) -> UUID:
    return UUID(hashlib.md5(f"lot-{k}".encode()).hexdigest())


def current_lot_uuid(sku: int, n: int) -> UUID:
    return UUID(hashlib.md5(f"now-{sku}-{n}".encode()).hexdigest())


def sku(n: int) -> str:
    return f"SKU-{n:04d}"


def lots_of(lines: int) -> int:
    return max(LINES_PER_SHIPMENT, lines // LINES_PER_LOT)


# The shared vocabulary of both loaders, as SQL over a lot number k or a line number n:
# line n is line n % 3 of shipment n / 3; a window of LINES_PER_LOT shipments ships the
# three lots 3w, 3w + 1, 3w + 2, one line each (w = n / (3 x LINES_PER_LOT)).
_LOT = "md5('lot-' || {k})::uuid"
_SKU = "'SKU-' || lpad(({k} % " + str(SKUS) + ")::text, 4, '0')"
_RECEIVED = "(now() - interval '730 days' * (1 - ({k})::float8 / $2))"
_HOURS_AFTER = " + interval '1 hour' * (n / 3 % 200)"  # shipped within days of receipt
_LINE_LOT = f"((n / ({LINES_PER_SHIPMENT} * {LINES_PER_LOT})) * {LINES_PER_SHIPMENT} + n % 3)"


def _sql(template: str) -> str:
    return (
        template.replace("LOT(k)", _LOT.format(k="k"))
        .replace("SKU(k)", _SKU.format(k="k"))
        .replace("RECEIVED(k)", _RECEIVED.format(k="k"))
        .replace("LINE_LOT_ID", _LOT.format(k=_LINE_LOT))
        .replace("LINE_SKU", _SKU.format(k=_LINE_LOT))
        .replace("LINE_LOT_CODE", f"'H-' || {_LINE_LOT}")
        .replace("SHIPPED_AT", _RECEIVED.format(k=_LINE_LOT) + _HOURS_AFTER)
    )


# $1 lines, $2 lots, $3 customers
RECALL_STATEMENTS = [
    """INSERT INTO lots (lot_id, lot_code, sku, uom, supplier_id, supplier_name, purchase_order,
                         expiry_date, first_received_at, received_quantity, received)
       SELECT LOT(k), 'H-' || k, SKU(k), 'EA', 'SUP-' || k % 40, 'Supplier ' || k % 40, 'PO-' || k,
              (RECEIVED(k) + interval '180 days')::date, RECEIVED(k), 2 * $1 / $2, true
       FROM generate_series(0, $2 - 1) k""",
    """INSERT INTO receipts (receipt_id, lot_id, quantity, uom, received_at, purchase_order,
                            supplier_id, supplier_name, event_id)
       SELECT 'RC-' || k, LOT(k), 2 * $1 / $2, 'EA', RECEIVED(k), 'PO-' || k, 'SUP-' || k % 40,
              'Supplier ' || k % 40, 'history-' || k
       FROM generate_series(0, $2 - 1) k""",
    """INSERT INTO lot_inputs (receipt_id, lot_id, input_lot_id, input_lot_code, input_sku,
                              quantity, uom)
       SELECT 'RC-' || k, LOT(k), md5('lot-' || k + d)::uuid, 'H-' || k + d,
              'SKU-' || lpad(((k + d) % 300)::text, 4, '0'), 100, 'EA'
       FROM generate_series(0, $2 - 3, 50) k, (VALUES (1), (2)) AS inputs(d)""",
    """INSERT INTO customers (customer_id, name)
       SELECT 'C' || lpad(c::text, 8, '0'), 'Customer ' || c FROM generate_series(0, $3 - 1) c""",
    """INSERT INTO shipment_lines (shipment_id, line_no, lot_id, order_id, customer_id, sku,
                                  lot_code, quantity, uom, shipped_at)
       SELECT 'SH-' || n / 3, n % 3 + 1, LINE_LOT_ID, 'SO-' || n / 3,
              'C' || lpad((n / 3 % $3)::text, 8, '0'), LINE_SKU, LINE_LOT_CODE, 2, 'EA', SHIPPED_AT
       FROM generate_series(0, $1 - 1) n""",
]

# $1 lines, $2 lots, $3 customers
INVENTORY_STATEMENTS = [
    """INSERT INTO lots (lot_id, sku, lot_code, uom, supplier_id, expiry_date, received_at,
                         status)
       SELECT LOT(k), SKU(k), 'H-' || k, 'EA', 'SUP-' || k % 40,
              (RECEIVED(k) + interval '180 days')::date, RECEIVED(k), 'depleted'
       FROM generate_series(0, $2 - 1) k""",
    """INSERT INTO stock (lot_id, location, received, shipped)
       SELECT LOT(k), 'MAIN', 2 * $1 / $2, 2 * $1 / $2 FROM generate_series(0, $2 - 1) k""",
    """INSERT INTO orders (order_id, customer_id, placed_at, status, revision)
       SELECT 'SO-' || s, 'C' || lpad((s % $3)::text, 8, '0'),
              now() - interval '730 days' * (1 - (s * 3)::float8 / $1), 'closed', 2
       FROM generate_series(0, $1 / 3 - 1) s""",
    """INSERT INTO order_lines (order_id, line_no, sku, uom, ordered, shipped)
       SELECT 'SO-' || n / 3, n % 3 + 1, LINE_SKU, 'EA', 2, 2
       FROM generate_series(0, $1 / 3 * 3 - 1) n""",
    """INSERT INTO lot_history (lot_id, location, at, change, quantity, order_id, cause)
       SELECT LINE_LOT_ID, 'MAIN', SHIPPED_AT - interval '1 day' * (change = 'reserved')::int,
              change, 2, 'SO-' || n / 3, 'history'
       FROM generate_series(0, $1 - 1) n, (VALUES ('reserved'), ('shipped')) AS c(change)""",
    """INSERT INTO lot_shipped_days (lot_id, day, quantity)
       SELECT LOT(k), (RECEIVED(k) + interval '1 day')::date, 2 * $1 / $2
       FROM generate_series(0, $2 - 1) k""",
]


async def _load(database: Database, statements: list[str], lines: int) -> int:
    lots = lots_of(lines)
    customers = max(100, int(lines * CUSTOMERS_PER_LINE))
    sizes = {"$1": lines, "$2": lots, "$3": customers}  # our own integers, written in
    async with database.pool.acquire() as connection:
        for statement in statements:
            sql = re.sub(r"\$\d", lambda m: str(sizes[m.group(0)]), _sql(statement))
            await connection.execute(sql)
        await connection.execute("VACUUM ANALYZE")
    return lots


async def load_recall(database: Database, lines: int) -> int:
    """The history of `lines` shipment lines in recall's projection; returns how many lots."""
    return await _load(database, RECALL_STATEMENTS, lines)


async def load_inventory(database: Database, lines: int) -> int:
    """The same history in inventory's: lots all shipped, closed orders, lot history."""
    return await _load(database, INVENTORY_STATEMENTS, lines)
