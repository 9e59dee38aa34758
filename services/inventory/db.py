"""Every SQL statement of the inventory service. Writes are set-based (unnest); rows that a
transaction changes on several lots are locked in (lot_id, location) order first."""

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

StockKey = tuple[UUID, str]

LOT_TOTALS = """
    l.lot_id, l.sku, l.lot_code, l.gtin, l.uom, l.supplier_id, l.expiry_date, l.received_at,
    l.unit_cost, l.currency, l.on_hold, l.hold_reason, l.recalled, l.recall_id, l.updated_at,
    coalesce(sum(s.received), 0) AS received, coalesce(sum(s.consumed), 0) AS consumed,
    coalesce(sum(s.shipped), 0) AS shipped, coalesce(sum(s.adjusted), 0) AS adjusted,
    coalesce(sum(s.reserved), 0) AS reserved, coalesce(sum(s.on_hand), 0) AS on_hand,
    coalesce(sum(s.on_hand - s.reserved), 0) AS available,
    coalesce(jsonb_agg(jsonb_build_object(
        'location', s.location, 'on_hand', s.on_hand::text, 'reserved', s.reserved::text,
        'available', (s.on_hand - s.reserved)::text) ORDER BY s.location)
        FILTER (WHERE s.location IS NOT NULL), '[]') AS locations
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
    location: str | None = None


# ------------------------------------------------------------------ lots and stock


async def upsert_received(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Record lots and add received quantities at their locations. A lot first named by a
    shipment or recall takes its identity from the receipt."""
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, sku, lot_code, gtin, uom, supplier_id, expiry_date,
                               received_at, unit_cost, currency)
        SELECT DISTINCT ON (lot_id) *
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::date[], $8::timestamptz[], $9::numeric[], $10::text[])
            AS d(lot_id, sku, lot_code, gtin, uom, supplier_id, expiry_date, received_at,
                 unit_cost, currency)
        ORDER BY lot_id
        ON CONFLICT (lot_id) DO UPDATE SET
            sku         = EXCLUDED.sku,
            lot_code    = EXCLUDED.lot_code,
            gtin        = coalesce(EXCLUDED.gtin, l.gtin),
            uom         = EXCLUDED.uom,
            supplier_id = coalesce(l.supplier_id, EXCLUDED.supplier_id),
            expiry_date = coalesce(EXCLUDED.expiry_date, l.expiry_date),
            received_at = coalesce(l.received_at, EXCLUDED.received_at),
            unit_cost   = coalesce(EXCLUDED.unit_cost, l.unit_cost),
            currency    = coalesce(EXCLUDED.currency, l.currency),
            updated_at  = now()
        """,
        *_columns(
            rows,
            "lot_id sku lot_code gtin uom supplier_id expiry_date received_at unit_cost currency",
        ),
    )
    received: dict[StockKey, Decimal] = defaultdict(Decimal)
    for row in rows:
        received[(row["lot_id"], row["location"])] += row["quantity"]
    await add_to_stock(connection, "received", received)


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
    """Lock lots (and their stock rows) in lot id order; returns each lot with its totals."""
    ids = sorted(set(lot_ids))
    await connection.execute(
        "SELECT 1 FROM lots WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id FOR UPDATE", ids
    )
    await connection.execute(
        "SELECT 1 FROM stock WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id, location FOR UPDATE",
        ids,
    )
    return await lots_with_totals(connection, ids)


async def lots_with_totals(connection: Connection, lot_ids: Sequence[UUID]) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_TOTALS}
        FROM lots l LEFT JOIN stock s USING (lot_id)
        WHERE l.lot_id = ANY($1::uuid[])
        GROUP BY l.lot_id
        ORDER BY l.lot_id
        """,
        list(lot_ids),
    )


async def stock_of(connection: Connection, lot_ids: Iterable[UUID]) -> dict[UUID, list[Record]]:
    rows = await connection.fetch(
        """
        SELECT lot_id, location, on_hand, reserved FROM stock
        WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id, location
        """,
        sorted(set(lot_ids)),
    )
    result: dict[UUID, list[Record]] = defaultdict(list)
    for row in rows:
        result[row["lot_id"]].append(row)
    return result


async def add_to_stock(
    connection: Connection, column: str, amounts: dict[StockKey, Decimal]
) -> None:
    """Add signed amounts to one quantity column of stock rows, creating rows as needed."""
    assert column in {"received", "consumed", "shipped", "adjusted", "reserved"}
    if not amounts:
        return
    keys = sorted(amounts)
    lot_ids = [lot_id for lot_id, _ in keys]
    locations = [location for _, location in keys]
    # Two steps, not INSERT .. ON CONFLICT DO UPDATE: PostgreSQL checks the CHECK constraints
    # of the row it would insert, and a negative amount alone is not a valid row.
    await connection.execute(
        """
        INSERT INTO stock (lot_id, location)
        SELECT * FROM unnest($1::uuid[], $2::text[])
        ON CONFLICT (lot_id, location) DO NOTHING
        """,
        lot_ids,
        locations,
    )
    await connection.execute(
        f"""
        UPDATE stock s SET {column} = s.{column} + d.amount
        FROM unnest($1::uuid[], $2::text[], $3::numeric[]) AS d(lot_id, location, amount)
        WHERE s.lot_id = d.lot_id AND s.location = d.location
        """,
        lot_ids,
        locations,
        [amounts[key] for key in keys],
    )
    await connection.execute(
        "UPDATE lots SET updated_at = now() WHERE lot_id = ANY($1::uuid[])",
        sorted({lot_id for lot_id, _ in keys}),
    )


async def lock_allocatable(
    connection: Connection, skus: Iterable[str], today: date
) -> list[StockLot]:
    """Stock that may be allocated, locked: its rows for update, its lots against a hold."""
    rows = await connection.fetch(
        """
        SELECT l.lot_id, l.lot_code, l.sku, l.uom, s.location, l.expiry_date, l.received_at,
               s.on_hand - s.reserved AS available
        FROM lots l JOIN stock s USING (lot_id)
        WHERE l.sku = ANY($1::text[]) AND NOT l.on_hold AND NOT l.recalled
          AND (l.expiry_date IS NULL OR l.expiry_date >= $2) AND s.on_hand > s.reserved
        ORDER BY l.lot_id, s.location
        FOR UPDATE OF s
        FOR SHARE OF l
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
        sorted(set(lot_ids)),
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
    """Unallocated demand of open orders, their lines locked, oldest order first."""
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


async def lock_order_lines(connection: Connection, order_ids: Iterable[str]) -> None:
    await connection.execute(
        """
        SELECT 1 FROM order_lines WHERE order_id = ANY($1::text[])
        ORDER BY order_id, line_no FOR UPDATE
        """,
        sorted(set(order_ids)),
    )


# ------------------------------------------------------------------ reservations


async def add_reservations(connection: Connection, reserves: Sequence[Reserve]) -> None:
    if not reserves:
        return
    merged = _merged(reserves)
    await connection.execute(
        """
        INSERT INTO reservations AS r (order_id, line_no, lot_id, location, quantity)
        SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::numeric[])
        ON CONFLICT (order_id, line_no, lot_id, location)
        DO UPDATE SET quantity = r.quantity + EXCLUDED.quantity
        """,
        *_reservation_columns(merged),
    )
    await _shift_reserved(connection, reserves, sign=1)


async def release_reservations(connection: Connection, releases: Sequence[Reserve]) -> None:
    """Give reservations back. Callers never release more than a reservation holds."""
    if not releases:
        return
    arguments = _reservation_columns(_merged(releases))
    await connection.execute(
        """
        DELETE FROM reservations r
        USING unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::numeric[])
            AS d(order_id, line_no, lot_id, location, quantity)
        WHERE (r.order_id, r.line_no, r.lot_id, r.location)
            = (d.order_id, d.line_no, d.lot_id, d.location)
          AND r.quantity <= d.quantity
        """,
        *arguments,
    )
    await connection.execute(
        """
        UPDATE reservations r SET quantity = r.quantity - d.quantity
        FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::numeric[])
            AS d(order_id, line_no, lot_id, location, quantity)
        WHERE (r.order_id, r.line_no, r.lot_id, r.location)
            = (d.order_id, d.line_no, d.lot_id, d.location)
          AND r.quantity > d.quantity
        """,
        *arguments,
    )
    await _shift_reserved(connection, releases, sign=-1)


def _merged(changes: Sequence[Reserve]) -> dict[tuple[str, int, UUID, str], Decimal]:
    merged: dict[tuple[str, int, UUID, str], Decimal] = defaultdict(Decimal)
    for r in changes:
        merged[(r.order_id, r.line_no, r.lot_id, r.location)] += r.quantity
    return merged


def _reservation_columns(merged: dict[tuple[str, int, UUID, str], Decimal]) -> list[list[Any]]:
    keys = sorted(merged)
    return [
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [merged[k] for k in keys],
    ]


async def _shift_reserved(connection: Connection, changes: Sequence[Reserve], *, sign: int) -> None:
    per_stock: dict[StockKey, Decimal] = defaultdict(Decimal)
    per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for change in changes:
        per_stock[(change.lot_id, change.location)] += change.quantity * sign
        per_line[(change.order_id, change.line_no)] += change.quantity * sign
    await add_to_stock(connection, "reserved", per_stock)
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


_HELD = """
    SELECT r.order_id, r.line_no, r.lot_id, r.quantity, l.expiry_date, r.location
    FROM reservations r JOIN lots l USING (lot_id)
"""


async def held_on_lots(connection: Connection, lot_ids: Sequence[UUID]) -> list[Held]:
    rows = await connection.fetch(
        f"""
        {_HELD} JOIN orders o USING (order_id)
        WHERE r.lot_id = ANY($1::uuid[])
        ORDER BY o.arrival, r.line_no, r.lot_id, r.location
        """,
        list(lot_ids),
    )
    return [Held(**dict(row)) for row in rows]


async def held_on_stock(connection: Connection, keys: Sequence[StockKey]) -> list[Held]:
    rows = await connection.fetch(
        f"""
        {_HELD} JOIN orders o USING (order_id)
        WHERE (r.lot_id, r.location) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
        ORDER BY o.arrival, r.line_no
        """,
        [lot_id for lot_id, _ in keys],
        [location for _, location in keys],
    )
    return [Held(**dict(row)) for row in rows]


async def held_for_orders(connection: Connection, order_ids: Sequence[str]) -> list[Held]:
    rows = await connection.fetch(f"{_HELD} WHERE r.order_id = ANY($1::text[])", list(order_ids))
    return [Held(**dict(row)) for row in rows]


async def held_for_lines(connection: Connection, keys: Iterable[tuple[str, int]]) -> list[Held]:
    keys = list(keys)
    rows = await connection.fetch(
        f"""
        {_HELD}
        WHERE (r.order_id, r.line_no) IN (SELECT * FROM unnest($1::text[], $2::int[]))
        """,
        [order_id for order_id, _ in keys],
        [line_no for _, line_no in keys],
    )
    return [Held(**dict(row)) for row in rows]


async def consume_reservations(
    connection: Connection, shipped: dict[tuple[str, int, UUID], Decimal]
) -> list[Reserve]:
    """Shipping turns reservations into shipments: each (order line, lot) shipment uses up the
    line's reservations of that lot, at whichever locations hold them. Returns what it used."""
    if not shipped:
        return []
    keys = list(shipped)
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, r.location, r.quantity, d.quantity AS shipped
        FROM reservations r
        JOIN unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
          ON r.order_id = d.order_id AND r.line_no = d.line_no AND r.lot_id = d.lot_id
        ORDER BY r.order_id, r.line_no, r.lot_id, r.location
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        list(shipped.values()),
    )
    remaining = dict(shipped)
    used: list[Reserve] = []
    for row in rows:
        key = (row["order_id"], row["line_no"], row["lot_id"])
        take = min(row["quantity"], remaining[key])
        if take > 0:
            used.append(Reserve(key[0], key[1], key[2], take, row["location"]))
            remaining[key] -= take
    await release_reservations(connection, used)
    return used


async def overcommitted_stock(connection: Connection, lot_ids: Iterable[UUID]) -> list[StockKey]:
    """Stock rows whose on-hand quantity fell below what is reserved from them."""
    rows = await connection.fetch(
        """
        SELECT lot_id, location FROM stock
        WHERE lot_id = ANY($1::uuid[]) AND reserved > greatest(on_hand, 0)
        ORDER BY lot_id, location
        """,
        sorted(set(lot_ids)),
    )
    return [(row["lot_id"], row["location"]) for row in rows]


async def stock_rows(connection: Connection, keys: Sequence[StockKey]) -> dict[StockKey, Record]:
    rows = await connection.fetch(
        """
        SELECT lot_id, location, on_hand, reserved FROM stock
        WHERE (lot_id, location) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
        """,
        [lot_id for lot_id, _ in keys],
        [location for _, location in keys],
    )
    return {(row["lot_id"], row["location"]): row for row in rows}


async def expired_with_reservations(connection: Connection, today: date) -> list[UUID]:
    rows = await connection.fetch(
        """
        SELECT DISTINCT l.lot_id FROM lots l JOIN stock s USING (lot_id)
        WHERE l.expiry_date < $1 AND s.reserved > 0 ORDER BY l.lot_id
        """,
        today,
    )
    return [row["lot_id"] for row in rows]


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
        SELECT r.order_id, r.line_no, r.quantity, r.location, l.lot_id, l.lot_code, l.sku, l.uom,
               l.expiry_date
        FROM reservations r JOIN lots l USING (lot_id)
        WHERE r.order_id = ANY($1::text[])
        ORDER BY r.order_id, r.line_no, l.expiry_date NULLS LAST, l.lot_id, r.location
        """,
        list(order_ids),
    )


# ------------------------------------------------------------------ history


async def record_movements(connection: Connection, movements: Sequence[Movement]) -> None:
    if not movements:
        return
    await connection.execute(
        """
        INSERT INTO lot_history (lot_id, location, change, quantity, order_id, cause, detail)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::text[],
                             $6::text[], $7::text[])
        """,
        [m.lot_id for m in movements],
        [m.location for m in movements],
        [m.change for m in movements],
        [m.quantity for m in movements],
        [m.order_id for m in movements],
        [m.cause for m in movements],
        [m.detail for m in movements],
    )


# ------------------------------------------------------------------ reads


async def get_lot(connection: Connection, lot_id: UUID) -> Record | None:
    rows = await lots_with_totals(connection, [lot_id])
    return rows[0] if rows else None


async def stock(connection: Connection, sku: str | None, limit: int) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_TOTALS}
        FROM lots l LEFT JOIN stock s USING (lot_id)
        WHERE ($1::text IS NULL OR l.sku = $1)
        GROUP BY l.lot_id
        ORDER BY l.sku, l.expiry_date NULLS LAST, l.received_at NULLS LAST, l.lot_id
        LIMIT $2
        """,
        sku,
        limit,
    )


async def expiring(connection: Connection, until: date, limit: int) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_TOTALS}
        FROM lots l LEFT JOIN stock s USING (lot_id)
        WHERE l.expiry_date <= $1
        GROUP BY l.lot_id
        HAVING coalesce(sum(s.on_hand), 0) > 0
        ORDER BY l.expiry_date, l.sku, l.lot_id
        LIMIT $2
        """,
        until,
        limit,
    )


async def lot_history(connection: Connection, lot_id: UUID, limit: int) -> list[Record]:
    return await connection.fetch(
        """
        SELECT at, change, quantity, location, order_id, cause, detail FROM lot_history
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
        SELECT l.sku, l.lot_id, l.lot_code, sum(s.on_hand) AS on_hand, l.unit_cost, l.currency,
               sum(s.on_hand) * l.unit_cost AS value
        FROM lots l JOIN stock s USING (lot_id)
        WHERE ($1::text IS NULL OR l.sku = $1)
        GROUP BY l.lot_id
        HAVING sum(s.on_hand) <> 0
        ORDER BY l.sku, l.lot_id
        """,
        sku,
    )


def _columns(rows: Sequence[dict[str, Any]], names: str) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in names.split()]
