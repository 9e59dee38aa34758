"""Every SQL statement of the inventory service. Writes are set-based (unnest); rows that a
transaction changes on several lots are locked in lot_id order first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.inventory.domain import Demand, Held, LineState, Reserve, Shortfall, StockLot
from shared.runtime.database import Connection, Record

LOT_VIEW_COLUMNS = """
    lot_id, sku, lot_code, gtin, uom, location, supplier_id, expiry_date, received_at,
    unit_cost, currency, received, consumed, shipped, adjusted, reserved, on_hand,
    on_hand - reserved AS available, on_hold, hold_reason, recalled, recall_id, updated_at
"""


@dataclass(frozen=True)
class LotFacts:
    """What an event tells about a lot, enough to create it if it is not known yet."""

    lot_id: UUID
    sku: str
    lot_code: str
    uom: str


@dataclass(frozen=True)
class Movement:
    lot_id: UUID
    change: str
    quantity: Decimal | None
    cause: str
    order_id: str | None = None
    detail: str | None = None


# ------------------------------------------------------------------ lots


async def upsert_received(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add received quantities; a lot first named by a shipment or recall takes its identity."""
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, sku, lot_code, gtin, uom, location, supplier_id,
                               expiry_date, received_at, unit_cost, currency, received)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::date[], $9::timestamptz[],
                             $10::numeric[], $11::text[], $12::numeric[])
        ON CONFLICT (lot_id) DO UPDATE SET
            received    = l.received + EXCLUDED.received,
            sku         = EXCLUDED.sku,
            lot_code    = EXCLUDED.lot_code,
            gtin        = coalesce(EXCLUDED.gtin, l.gtin),
            uom         = EXCLUDED.uom,
            location    = CASE WHEN l.received_at IS NULL THEN EXCLUDED.location
                               ELSE l.location END,
            supplier_id = coalesce(l.supplier_id, EXCLUDED.supplier_id),
            expiry_date = coalesce(EXCLUDED.expiry_date, l.expiry_date),
            received_at = coalesce(l.received_at, EXCLUDED.received_at),
            unit_cost   = coalesce(EXCLUDED.unit_cost, l.unit_cost),
            currency    = coalesce(EXCLUDED.currency, l.currency),
            updated_at  = now()
        """,
        *_columns(
            rows,
            "lot_id sku lot_code gtin uom location supplier_id expiry_date received_at"
            " unit_cost currency quantity",
        ),
    )


async def ensure_lots(connection: Connection, facts: Iterable[LotFacts]) -> None:
    """Create placeholder rows for lots an event names before their receipt is known."""
    unique = {fact.lot_id: fact for fact in facts}
    if not unique:
        return
    await connection.execute(
        """
        INSERT INTO lots (lot_id, sku, lot_code, uom)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT (lot_id) DO NOTHING
        """,
        [f.lot_id for f in unique.values()],
        [f.sku for f in unique.values()],
        [f.lot_code for f in unique.values()],
        [f.uom for f in unique.values()],
    )


async def lock_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[Record]:
    return await connection.fetch(
        f"SELECT {LOT_VIEW_COLUMNS} FROM lots WHERE lot_id = ANY($1::uuid[])"
        " ORDER BY lot_id FOR UPDATE",
        sorted(set(lot_ids)),
    )


async def add_to_lot_column(
    connection: Connection, column: str, amounts: dict[UUID, Decimal]
) -> None:
    assert column in {"consumed", "shipped", "adjusted", "reserved"}
    if not amounts:
        return
    await connection.execute(
        f"""
        UPDATE lots SET {column} = lots.{column} + d.amount, updated_at = now()
        FROM unnest($1::uuid[], $2::numeric[]) AS d(lot_id, amount)
        WHERE lots.lot_id = d.lot_id
        """,
        list(amounts),
        list(amounts.values()),
    )


async def lock_allocatable(
    connection: Connection, skus: Iterable[str], today: date
) -> list[StockLot]:
    rows = await connection.fetch(
        """
        SELECT lot_id, lot_code, sku, uom, location, expiry_date, received_at,
               on_hand - reserved AS available
        FROM lots
        WHERE sku = ANY($1::text[]) AND NOT on_hold AND NOT recalled
          AND (expiry_date IS NULL OR expiry_date >= $2) AND on_hand > reserved
        ORDER BY lot_id
        FOR UPDATE
        """,
        sorted(set(skus)),
        today,
    )
    return [
        StockLot(
            lot_id=row["lot_id"],
            lot_code=row["lot_code"],
            sku=row["sku"],
            uom=row["uom"],
            available=row["available"],
            expiry_date=row["expiry_date"],
            received_at=row["received_at"],
            location=row["location"],
        )
        for row in rows
    ]


async def skus_of(connection: Connection, lot_ids: Iterable[UUID]) -> set[str]:
    rows = await connection.fetch(
        "SELECT DISTINCT sku FROM lots WHERE lot_id = ANY($1::uuid[])", list(lot_ids)
    )
    return {row["sku"] for row in rows}


async def set_hold(
    connection: Connection, lot_id: UUID, *, on_hold: bool, reason: str | None
) -> None:
    await connection.execute(
        "UPDATE lots SET on_hold = $2, hold_reason = $3, updated_at = now() WHERE lot_id = $1",
        lot_id,
        on_hold,
        reason,
    )


async def mark_recalled(
    connection: Connection, lot_ids: Sequence[UUID], recall_id: str
) -> list[UUID]:
    rows = await connection.fetch(
        """
        UPDATE lots SET recalled = true, recall_id = $2, updated_at = now()
        WHERE lot_id = ANY($1::uuid[]) AND NOT recalled
        RETURNING lot_id
        """,
        list(lot_ids),
        recall_id,
    )
    return [row["lot_id"] for row in rows]


# ------------------------------------------------------------------ orders


async def insert_orders(connection: Connection, orders: Sequence[dict[str, Any]]) -> list[str]:
    """Store new orders; returns the ids that were new (an order cancelled before it was
    placed is completed but stays cancelled)."""
    rows = await connection.fetch(
        """
        INSERT INTO orders AS o (order_id, customer_id, min_remaining_shelf_life_days, placed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[])
        ON CONFLICT (order_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id,
            min_remaining_shelf_life_days = EXCLUDED.min_remaining_shelf_life_days,
            placed_at = EXCLUDED.placed_at
        WHERE o.customer_id IS NULL
        RETURNING order_id
        """,
        *_columns(orders, "order_id customer_id min_remaining_shelf_life_days placed_at"),
    )
    return [row["order_id"] for row in rows]


async def insert_order_lines(connection: Connection, lines: Sequence[dict[str, Any]]) -> None:
    await connection.execute(
        """
        INSERT INTO order_lines (order_id, line_no, sku, uom, ordered)
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::numeric[])
        ON CONFLICT DO NOTHING
        """,
        *_columns(lines, "order_id line_no sku uom quantity"),
    )


async def cancel_orders(connection: Connection, order_ids: Sequence[str]) -> list[str]:
    """Cancel open orders (or remember the cancellation of an order not seen yet)."""
    rows = await connection.fetch(
        """
        INSERT INTO orders AS o (order_id, status)
        SELECT id, 'cancelled' FROM unnest($1::text[]) AS id
        ON CONFLICT (order_id) DO UPDATE SET status = 'cancelled' WHERE o.status = 'open'
        RETURNING order_id
        """,
        list(order_ids),
    )
    return [row["order_id"] for row in rows]


async def close_fulfilled_orders(connection: Connection, order_ids: Sequence[str]) -> None:
    await connection.execute(
        """
        UPDATE orders o SET status = 'closed'
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open'
          AND NOT EXISTS (SELECT 1 FROM order_lines l
                          WHERE l.order_id = o.order_id AND l.shipped < l.ordered)
        """,
        list(order_ids),
    )


async def open_demand(connection: Connection, order_ids: Sequence[str]) -> list[Demand]:
    rows = await connection.fetch(
        """
        SELECT l.order_id, l.line_no, l.sku, l.uom, l.ordered - l.shipped - l.reserved AS open,
               o.min_remaining_shelf_life_days AS shelf_life
        FROM order_lines l JOIN orders o USING (order_id)
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open'
          AND l.ordered > l.shipped + l.reserved
        ORDER BY o.arrival, l.line_no
        FOR UPDATE OF l
        """,
        list(order_ids),
    )
    return [
        Demand(
            order_id=row["order_id"],
            line_no=row["line_no"],
            sku=row["sku"],
            uom=row["uom"],
            quantity=row["open"],
            min_remaining_shelf_life_days=row["shelf_life"],
        )
        for row in rows
    ]


async def orders_waiting_for(
    connection: Connection, skus: Iterable[str], limit: int = 10_000
) -> list[str]:
    """Open orders with unallocated demand for these SKUs, oldest first."""
    rows = await connection.fetch(
        """
        SELECT o.order_id FROM orders o
        WHERE o.status = 'open' AND EXISTS (
            SELECT 1 FROM order_lines l
            WHERE l.order_id = o.order_id AND l.sku = ANY($1::text[])
              AND l.ordered > l.shipped + l.reserved)
        ORDER BY o.arrival
        LIMIT $2
        """,
        sorted(set(skus)),
        limit,
    )
    return [row["order_id"] for row in rows]


async def set_backorder_reasons(
    connection: Connection, demands: Sequence[Demand], shortfalls: Sequence[Shortfall]
) -> None:
    reasons = {(s.order_id, s.line_no): s.reason.value for s in shortfalls}
    keys = [(d.order_id, d.line_no) for d in demands]
    if not keys:
        return
    await connection.execute(
        """
        UPDATE order_lines l SET backorder_reason = d.reason
        FROM unnest($1::text[], $2::int[], $3::text[]) AS d(order_id, line_no, reason)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        [order_id for order_id, _ in keys],
        [line_no for _, line_no in keys],
        [reasons.get(key) for key in keys],
    )


async def add_line_shipped(connection: Connection, shipped: dict[tuple[str, int], Decimal]) -> None:
    if not shipped:
        return
    await connection.execute(
        """
        UPDATE order_lines l SET shipped = l.shipped + d.quantity
        FROM unnest($1::text[], $2::int[], $3::numeric[]) AS d(order_id, line_no, quantity)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        [order_id for order_id, _ in shipped],
        [line_no for _, line_no in shipped],
        list(shipped.values()),
    )


async def line_states(connection: Connection, order_ids: Sequence[str]) -> list[LineState]:
    rows = await connection.fetch(
        """
        SELECT order_id, line_no, sku, uom, ordered, shipped, reserved, backorder_reason
        FROM order_lines WHERE order_id = ANY($1::text[]) ORDER BY order_id, line_no
        """,
        list(order_ids),
    )
    return [LineState(**dict(row)) for row in rows]


# ------------------------------------------------------------------ reservations


async def add_reservations(connection: Connection, reserves: Sequence[Reserve]) -> None:
    if not reserves:
        return
    merged: dict[tuple[str, int, UUID], Decimal] = defaultdict(Decimal)
    for r in reserves:
        merged[(r.order_id, r.line_no, r.lot_id)] += r.quantity
    await connection.execute(
        """
        INSERT INTO reservations AS r (order_id, line_no, lot_id, quantity)
        SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
        ON CONFLICT (order_id, line_no, lot_id)
        DO UPDATE SET quantity = r.quantity + EXCLUDED.quantity
        """,
        [k[0] for k in merged],
        [k[1] for k in merged],
        [k[2] for k in merged],
        list(merged.values()),
    )
    await _shift_reserved(connection, reserves, sign=1)


async def release_reservations(connection: Connection, releases: Sequence[Reserve]) -> None:
    if not releases:
        return
    merged: dict[tuple[str, int, UUID], Decimal] = defaultdict(Decimal)
    for r in releases:
        merged[(r.order_id, r.line_no, r.lot_id)] += r.quantity
    arguments = (
        [k[0] for k in merged],
        [k[1] for k in merged],
        [k[2] for k in merged],
        list(merged.values()),
    )
    # Callers never release more than a reservation holds (the domain sees to it).
    await connection.execute(
        """
        DELETE FROM reservations r
        USING unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
        WHERE r.order_id = d.order_id AND r.line_no = d.line_no AND r.lot_id = d.lot_id
          AND r.quantity <= d.quantity
        """,
        *arguments,
    )
    await connection.execute(
        """
        UPDATE reservations r SET quantity = r.quantity - d.quantity
        FROM unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
        WHERE r.order_id = d.order_id AND r.line_no = d.line_no AND r.lot_id = d.lot_id
          AND r.quantity > d.quantity
        """,
        *arguments,
    )
    await _shift_reserved(connection, releases, sign=-1)


async def _shift_reserved(connection: Connection, changes: Sequence[Reserve], *, sign: int) -> None:
    per_lot: dict[UUID, Decimal] = defaultdict(Decimal)
    per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for change in changes:
        per_lot[change.lot_id] += change.quantity * sign
        per_line[(change.order_id, change.line_no)] += change.quantity * sign
    await add_to_lot_column(connection, "reserved", per_lot)
    await connection.execute(
        """
        UPDATE order_lines l SET reserved = l.reserved + d.quantity
        FROM unnest($1::text[], $2::int[], $3::numeric[]) AS d(order_id, line_no, quantity)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        [k[0] for k in per_line],
        [k[1] for k in per_line],
        list(per_line.values()),
    )


async def held_on_lots(connection: Connection, lot_ids: Sequence[UUID]) -> list[Held]:
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, r.quantity, l.expiry_date
        FROM reservations r JOIN lots l USING (lot_id) JOIN orders o USING (order_id)
        WHERE r.lot_id = ANY($1::uuid[])
        ORDER BY o.arrival, r.line_no
        """,
        list(lot_ids),
    )
    return [Held(**dict(row)) for row in rows]


async def held_for_orders(connection: Connection, order_ids: Sequence[str]) -> list[Held]:
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, r.quantity, l.expiry_date
        FROM reservations r JOIN lots l USING (lot_id)
        WHERE r.order_id = ANY($1::text[])
        """,
        list(order_ids),
    )
    return [Held(**dict(row)) for row in rows]


async def lock_order_lines(connection: Connection, order_ids: Iterable[str]) -> None:
    await connection.execute(
        """
        SELECT 1 FROM order_lines WHERE order_id = ANY($1::text[])
        ORDER BY order_id, line_no FOR UPDATE
        """,
        sorted(set(order_ids)),
    )


async def overcommitted_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[UUID]:
    """Lots whose on-hand stock fell below what is reserved from them."""
    rows = await connection.fetch(
        "SELECT lot_id FROM lots"
        " WHERE lot_id = ANY($1::uuid[]) AND reserved > greatest(on_hand, 0)",
        sorted(set(lot_ids)),
    )
    return [row["lot_id"] for row in rows]


async def expired_with_reservations(connection: Connection, today: date) -> list[UUID]:
    rows = await connection.fetch(
        "SELECT lot_id FROM lots WHERE expiry_date < $1 AND reserved > 0 ORDER BY lot_id", today
    )
    return [row["lot_id"] for row in rows]


async def held_for_lines(connection: Connection, keys: Iterable[tuple[str, int]]) -> list[Held]:
    keys = list(keys)
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, r.quantity, l.expiry_date
        FROM reservations r JOIN lots l USING (lot_id)
        WHERE (r.order_id, r.line_no) IN (SELECT * FROM unnest($1::text[], $2::int[]))
        """,
        [order_id for order_id, _ in keys],
        [line_no for _, line_no in keys],
    )
    return [Held(**dict(row)) for row in rows]


async def consume_reservations(
    connection: Connection, shipped: dict[tuple[str, int, UUID], Decimal]
) -> list[Reserve]:
    """Shipping turns reservations into shipments: reduce each by what shipped, up to what it
    held. Returns the reductions."""
    if not shipped:
        return []
    keys = list(shipped)
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, least(r.quantity, d.quantity) AS used
        FROM reservations r
        JOIN unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
          ON r.order_id = d.order_id AND r.line_no = d.line_no AND r.lot_id = d.lot_id
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        list(shipped.values()),
    )
    used = [Reserve(row["order_id"], row["line_no"], row["lot_id"], row["used"]) for row in rows]
    await release_reservations(connection, used)
    return used


# ------------------------------------------------------------------ allocation snapshots


async def bump_revisions(connection: Connection, order_ids: Sequence[str]) -> list[Record]:
    return await connection.fetch(
        """
        UPDATE orders SET revision = revision + 1
        WHERE order_id = ANY($1::text[]) AND customer_id IS NOT NULL
        RETURNING order_id, customer_id, revision, status
        """,
        list(order_ids),
    )


async def reservations_with_lots(connection: Connection, order_ids: Sequence[str]) -> list[Record]:
    return await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.quantity, l.lot_id, l.lot_code, l.sku, l.uom,
               l.expiry_date, l.location
        FROM reservations r JOIN lots l USING (lot_id)
        WHERE r.order_id = ANY($1::text[])
        ORDER BY r.order_id, r.line_no, l.expiry_date NULLS LAST, l.lot_id
        """,
        list(order_ids),
    )


# ------------------------------------------------------------------ history


async def record_movements(connection: Connection, movements: Sequence[Movement]) -> None:
    if not movements:
        return
    await connection.execute(
        """
        INSERT INTO lot_history (lot_id, change, quantity, order_id, cause, detail)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::text[], $5::text[],
                             $6::text[])
        """,
        [m.lot_id for m in movements],
        [m.change for m in movements],
        [m.quantity for m in movements],
        [m.order_id for m in movements],
        [m.cause for m in movements],
        [m.detail for m in movements],
    )


# ------------------------------------------------------------------ reads


async def get_lot(connection: Connection, lot_id: UUID) -> Record | None:
    return await connection.fetchrow(
        f"SELECT {LOT_VIEW_COLUMNS} FROM lots WHERE lot_id = $1", lot_id
    )


async def stock(connection: Connection, sku: str | None, limit: int) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_VIEW_COLUMNS} FROM lots
        WHERE ($1::text IS NULL OR sku = $1)
        ORDER BY sku, expiry_date NULLS LAST, received_at NULLS LAST, lot_id
        LIMIT $2
        """,
        sku,
        limit,
    )


async def expiring(connection: Connection, until: date, limit: int) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_VIEW_COLUMNS} FROM lots
        WHERE expiry_date <= $1 AND received - consumed - shipped + adjusted > 0
        ORDER BY expiry_date, sku, lot_id
        LIMIT $2
        """,
        until,
        limit,
    )


async def lot_history(connection: Connection, lot_id: UUID, limit: int) -> list[Record]:
    return await connection.fetch(
        """
        SELECT at, change, quantity, order_id, cause, detail FROM lot_history
        WHERE lot_id = $1 ORDER BY id LIMIT $2
        """,
        lot_id,
        limit,
    )


async def get_order(connection: Connection, order_id: str) -> Record | None:
    return await connection.fetchrow(
        "SELECT order_id, customer_id, status, revision, min_remaining_shelf_life_days, placed_at"
        " FROM orders WHERE order_id = $1",
        order_id,
    )


async def valuation(connection: Connection, sku: str | None) -> list[Record]:
    return await connection.fetch(
        """
        SELECT sku, lot_id, lot_code, on_hand, unit_cost, currency, on_hand * unit_cost AS value
        FROM lots
        WHERE ($1::text IS NULL OR sku = $1) AND on_hand <> 0
        ORDER BY sku, lot_id
        """,
        sku,
    )


def _columns(rows: Sequence[dict[str, Any]], names: str) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in names.split()]
