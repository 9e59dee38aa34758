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

from services.inventory.domain import Demand, Held, LineState, Reserve, StockLot
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
    received: dict[StockKey, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        received[(row["lot_id"], row["location"])]["received"] += row["quantity"]
    await change_stock(connection, received, create=True)


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


STOCK_COLUMNS = ("received", "consumed", "shipped", "adjusted", "reserved")


async def change_stock(
    connection: Connection,
    deltas: dict[StockKey, dict[str, Decimal]],
    *,
    create: bool = False,
) -> None:
    """Add signed amounts to stock rows, every column in one statement. `create` first adds
    the rows that may not exist yet (a receipt at a new location)."""
    if not deltas:
        return
    keys = sorted(deltas)
    lot_ids = [lot_id for lot_id, _ in keys]
    locations = [location for _, location in keys]
    if create:
        await connection.execute(
            """
            INSERT INTO stock (lot_id, location)
            SELECT * FROM unnest($1::uuid[], $2::text[])
            ON CONFLICT (lot_id, location) DO NOTHING
            """,
            lot_ids,
            locations,
        )
    zero = Decimal(0)
    await connection.execute(
        """
        UPDATE stock s SET received = s.received + d.received, consumed = s.consumed + d.consumed,
                           shipped = s.shipped + d.shipped, adjusted = s.adjusted + d.adjusted,
                           reserved = s.reserved + d.reserved
        FROM unnest($1::uuid[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[],
                    $6::numeric[], $7::numeric[])
            AS d(lot_id, location, received, consumed, shipped, adjusted, reserved)
        WHERE s.lot_id = d.lot_id AND s.location = d.location
        """,
        lot_ids,
        locations,
        *[[deltas[key].get(column, zero) for key in keys] for column in STOCK_COLUMNS],
    )


async def lock_lot_rows(connection: Connection, lot_ids: Iterable[UUID]) -> None:
    """Lock lots (not their totals) in lot id order: writers of a lot's stock take this first."""
    await connection.execute(
        "SELECT 1 FROM lots WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id FOR UPDATE",
        sorted(set(lot_ids)),
    )


async def lock_allocatable(
    connection: Connection, skus: Iterable[str], today: date
) -> list[StockLot]:
    """Stock that may be allocated, locked: its rows for update, its lots against a hold."""
    rows = await connection.fetch(
        """
        SELECT l.lot_id, l.lot_code, l.sku, l.gtin, l.uom, s.location, l.expiry_date,
               l.received_at, s.on_hand - s.reserved AS available
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
            gtin=row["gtin"],
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


async def record_inputs(connection: Connection, edges: Sequence[tuple[UUID, UUID]]) -> None:
    """Remember which lots each produced lot was made from: (lot, input lot)."""
    await connection.execute(
        """
        INSERT INTO lot_inputs (lot_id, input_lot_id)
        SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING
        """,
        [lot_id for lot_id, _ in edges],
        [input_lot_id for _, input_lot_id in edges],
    )


async def inherit_recalls(connection: Connection, lot_ids: Sequence[UUID]) -> list[Record]:
    """Recall these lots if any lot they were made from is recalled, under that recall.
    Returns (lot_id, recall_id, input_lot_id) of each lot recalled now."""
    return await connection.fetch(
        """
        WITH inherited AS (
            SELECT DISTINCT ON (i.lot_id) i.lot_id, p.recall_id, p.lot_id AS input_lot_id
            FROM lot_inputs i JOIN lots p ON p.lot_id = i.input_lot_id
            WHERE i.lot_id = ANY($1::uuid[]) AND p.recalled
            ORDER BY i.lot_id, p.recall_id, p.lot_id
        )
        UPDATE lots l SET recalled = true, recall_id = inherited.recall_id, updated_at = now()
        FROM inherited
        WHERE l.lot_id = inherited.lot_id AND NOT l.recalled
        RETURNING l.lot_id, inherited.recall_id, inherited.input_lot_id
        """,
        sorted(set(lot_ids)),
    )


async def made_from(connection: Connection, lot_ids: Sequence[UUID]) -> list[UUID]:
    """Every lot made from these lots, at any depth."""
    rows = await connection.fetch(
        """
        WITH RECURSIVE made AS (
            SELECT lot_id FROM lot_inputs WHERE input_lot_id = ANY($1::uuid[])
            UNION
            SELECT i.lot_id FROM lot_inputs i JOIN made ON i.input_lot_id = made.lot_id
        )
        SELECT lot_id FROM made ORDER BY lot_id
        """,
        sorted(set(lot_ids)),
    )
    return [row["lot_id"] for row in rows]


# ------------------------------------------------------------------ orders


async def insert_new_orders(
    connection: Connection, orders: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]
) -> list[str]:
    """Store orders never seen before with their lines, in one statement; returns their ids.
    Their first allocation will be revision 1."""
    rows = await connection.fetch(
        """
        WITH new AS (
            INSERT INTO orders (order_id, customer_id, min_remaining_shelf_life_days, placed_at,
                                revision)
            SELECT *, 1 FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[])
            ON CONFLICT (order_id) DO NOTHING
            RETURNING order_id
        ), lines AS (
            INSERT INTO order_lines (order_id, line_no, sku, uom, ordered)
            SELECT d.* FROM unnest($5::text[], $6::int[], $7::text[], $8::text[], $9::numeric[])
                AS d(order_id, line_no, sku, uom, ordered)
            WHERE d.order_id IN (SELECT order_id FROM new)
        )
        SELECT order_id FROM new
        """,
        *_columns(orders, "order_id customer_id min_remaining_shelf_life_days placed_at"),
        *_columns(lines, "order_id line_no sku uom quantity"),
    )
    return [row["order_id"] for row in rows]


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


async def reserve(
    connection: Connection,
    reserves: Sequence[Reserve],
    reasons: dict[tuple[str, int], str | None],
) -> None:
    """Reserve stock for order lines and record each allocated line's backorder reason (None
    when nothing is missing): reservations, stock and order lines in one statement."""
    merged = _merged(reserves)
    per_stock, per_line = _totals(reserves)
    for key in reasons:
        per_line.setdefault(key, Decimal(0))
    stock_keys, line_keys = sorted(per_stock), sorted(per_line)
    await connection.execute(
        """
        WITH taken AS (
            INSERT INTO reservations AS r (order_id, line_no, lot_id, location, quantity)
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::numeric[])
            ON CONFLICT (order_id, line_no, lot_id, location)
            DO UPDATE SET quantity = r.quantity + EXCLUDED.quantity
        ), stock_rows AS (
            UPDATE stock s SET reserved = s.reserved + d.quantity
            FROM unnest($6::uuid[], $7::text[], $8::numeric[]) AS d(lot_id, location, quantity)
            WHERE s.lot_id = d.lot_id AND s.location = d.location
        )
        UPDATE order_lines l
        SET reserved = l.reserved + d.quantity,
            backorder_reason = CASE WHEN d.known THEN d.reason ELSE l.backorder_reason END
        FROM unnest($9::text[], $10::int[], $11::numeric[], $12::text[], $13::bool[])
            AS d(order_id, line_no, quantity, reason, known)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        *_reservation_columns(merged),
        [lot_id for lot_id, _ in stock_keys],
        [location for _, location in stock_keys],
        [per_stock[key] for key in stock_keys],
        [order_id for order_id, _ in line_keys],
        [line_no for _, line_no in line_keys],
        [per_line[key] for key in line_keys],
        [reasons.get(key) for key in line_keys],
        [key in reasons for key in line_keys],
    )


async def release(
    connection: Connection,
    releases: Sequence[Reserve],
    shipped: dict[tuple[str, int, UUID, str], Decimal] | None = None,
) -> None:
    """Give reservations back, in one statement: reservations, stock and order lines. With
    `shipped`, they go because the stock left: shipped quantities are added to the stock rows
    and order lines in the same statement. Callers never release more than a reservation holds.
    """
    merged = _merged(releases)
    reserved_stock, reserved_lines = _totals(releases)
    shipped_stock: dict[StockKey, Decimal] = defaultdict(Decimal)
    shipped_lines: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for (order_id, line_no, lot_id, location), quantity in (shipped or {}).items():
        shipped_stock[(lot_id, location)] += quantity
        shipped_lines[(order_id, line_no)] += quantity
    stock_keys = sorted(set(reserved_stock) | set(shipped_stock))
    line_keys = sorted(set(reserved_lines) | set(shipped_lines))
    zero = Decimal(0)
    await connection.execute(
        """
        WITH d AS (
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::numeric[])
                AS d(order_id, line_no, lot_id, location, quantity)
        ), gone AS (
            DELETE FROM reservations r USING d
            WHERE (r.order_id, r.line_no, r.lot_id, r.location)
                = (d.order_id, d.line_no, d.lot_id, d.location)
              AND r.quantity <= d.quantity
        ), shrunk AS (
            UPDATE reservations r SET quantity = r.quantity - d.quantity FROM d
            WHERE (r.order_id, r.line_no, r.lot_id, r.location)
                = (d.order_id, d.line_no, d.lot_id, d.location)
              AND r.quantity > d.quantity
        ), stock_rows AS (
            UPDATE stock s SET reserved = s.reserved - x.reserved, shipped = s.shipped + x.shipped
            FROM unnest($6::uuid[], $7::text[], $8::numeric[], $9::numeric[])
                AS x(lot_id, location, reserved, shipped)
            WHERE s.lot_id = x.lot_id AND s.location = x.location
        )
        UPDATE order_lines l SET reserved = l.reserved - y.reserved, shipped = l.shipped + y.shipped
        FROM unnest($10::text[], $11::int[], $12::numeric[], $13::numeric[])
            AS y(order_id, line_no, reserved, shipped)
        WHERE l.order_id = y.order_id AND l.line_no = y.line_no
        """,
        *_reservation_columns(merged),
        [lot_id for lot_id, _ in stock_keys],
        [location for _, location in stock_keys],
        [reserved_stock.get(key, zero) for key in stock_keys],
        [shipped_stock.get(key, zero) for key in stock_keys],
        [order_id for order_id, _ in line_keys],
        [line_no for _, line_no in line_keys],
        [reserved_lines.get(key, zero) for key in line_keys],
        [shipped_lines.get(key, zero) for key in line_keys],
    )


def _merged(changes: Sequence[Reserve]) -> dict[tuple[str, int, UUID, str], Decimal]:
    merged: dict[tuple[str, int, UUID, str], Decimal] = defaultdict(Decimal)
    for r in changes:
        merged[(r.order_id, r.line_no, r.lot_id, r.location)] += r.quantity
    return merged


def _totals(
    changes: Sequence[Reserve],
) -> tuple[dict[StockKey, Decimal], dict[tuple[str, int], Decimal]]:
    per_stock: dict[StockKey, Decimal] = defaultdict(Decimal)
    per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for change in changes:
        per_stock[(change.lot_id, change.location)] += change.quantity
        per_line[(change.order_id, change.line_no)] += change.quantity
    return per_stock, per_line


def _reservation_columns(merged: dict[tuple[str, int, UUID, str], Decimal]) -> list[list[Any]]:
    keys = sorted(merged)
    return [
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        [merged[k] for k in keys],
    ]


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


async def reservations_for(
    connection: Connection, keys: Iterable[tuple[str, int, UUID]]
) -> list[Reserve]:
    """The reservations of these (order, line, lot), at whichever locations hold them."""
    keys = list(keys)
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.lot_id, r.location, r.quantity
        FROM reservations r
        JOIN unnest($1::text[], $2::int[], $3::uuid[]) AS d(order_id, line_no, lot_id)
          ON r.order_id = d.order_id AND r.line_no = d.line_no AND r.lot_id = d.lot_id
        ORDER BY r.order_id, r.line_no, r.lot_id, r.location
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return [
        Reserve(row["order_id"], row["line_no"], row["lot_id"], row["quantity"], row["location"])
        for row in rows
    ]


async def over_reserved_lines(connection: Connection, order_ids: Sequence[str]) -> list[LineState]:
    """Lines whose reservations plus shipments exceed what was ordered."""
    rows = await connection.fetch(
        """
        SELECT order_id, line_no, sku, uom, ordered, shipped, reserved, backorder_reason
        FROM order_lines
        WHERE order_id = ANY($1::text[]) AND shipped + reserved > ordered AND reserved > 0
        """,
        list(order_ids),
    )
    return [LineState(**dict(row)) for row in rows]


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
               l.expiry_date, l.gtin
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
