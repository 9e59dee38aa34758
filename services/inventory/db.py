"""Every SQL statement of the inventory service. Writes are set-based (unnest); rows that a
transaction changes on several lots are locked in (lot_id, location) order first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from services.inventory.domain import (
    Block,
    Demand,
    FefoNeed,
    Held,
    LineState,
    LotState,
    LotStatus,
    QcState,
    Reserve,
    StockLot,
    merged,
)
from services.inventory.history_facts import ImportedShipmentLine
from services.inventory.records import (
    AMOUNTS,
    Edge,
    InheritedRecall,
    LineChange,
    LockedLot,
    LotFacts,
    Movement,
    NewLine,
    NewOrder,
    OrderRevision,
    ReceivedStock,
    RegisteredLot,
    ReservedLot,
    ReturnedLine,
    ShippedEarly,
    Shipping,
    StockChange,
    StockKey,
    StockRow,
    summed,
)
from services.inventory.reporting import (
    ExpiryWindow,
    FactRules,
    LotReportFacts,
    ReturnedUnits,
    ShippedDay,
)
from shared.runtime.database import Connection, Record, columns, rows_as

T = TypeVar("T")

LOT_TOTALS = """
    l.lot_id, l.sku, l.lot_code, l.gtin, l.uom, l.supplier_id, l.expiry_date, l.received_at,
    l.unit_cost, l.currency, l.blocks, l.hold_reason, l.recall_id, l.updated_at, l.qc_state,
    coalesce(sum(s.received), 0) AS received, coalesce(sum(s.consumed), 0) AS consumed,
    coalesce(sum(s.shipped), 0) AS shipped, coalesce(sum(s.adjusted), 0) AS adjusted,
    coalesce(sum(s.reserved), 0) AS reserved, coalesce(sum(s.on_hand), 0) AS on_hand,
    coalesce(sum(s.returned), 0) AS returned,
    coalesce(sum(s.vendor_returned), 0) AS vendor_returned,
    coalesce(jsonb_agg(jsonb_build_object(
        'location', s.location, 'on_hand', s.on_hand::text, 'reserved', s.reserved::text,
        'available', (s.on_hand - s.reserved)::text) ORDER BY s.location)
        FILTER (WHERE s.location IS NOT NULL), '[]') AS locations
"""


# ------------------------------------------------------------------ lots and stock


async def upsert_received(connection: Connection, rows: Sequence[ReceivedStock]) -> None:
    """Record lots and add received quantities at their locations. A lot first named by a
    shipment or recall takes its identity from the receipt."""
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, sku, lot_code, gtin, uom, supplier_id, expiry_date,
                               received_at, unit_cost, currency)
        SELECT DISTINCT ON (lot_id) lot_id, sku, lot_code, gtin, uom, supplier_id, expiry_date,
                                    received_at, unit_cost, currency
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::date[], $8::timestamptz[], $9::numeric[], $10::text[], $11::text[],
                    $12::numeric[])
            AS d(lot_id, sku, lot_code, gtin, uom, supplier_id, expiry_date, received_at,
                 unit_cost, currency, location, quantity)
        ORDER BY lot_id
        ON CONFLICT (lot_id) DO UPDATE SET
            sku         = EXCLUDED.sku,
            lot_code    = EXCLUDED.lot_code,
            gtin        = coalesce(EXCLUDED.gtin, l.gtin),
            uom         = EXCLUDED.uom,
            supplier_id = coalesce(l.supplier_id, EXCLUDED.supplier_id),
            expiry_date = coalesce(EXCLUDED.expiry_date, l.expiry_date),
            received_at = least(l.received_at, EXCLUDED.received_at),
            unit_cost   = coalesce(EXCLUDED.unit_cost, l.unit_cost),
            currency    = coalesce(EXCLUDED.currency, l.currency),
            updated_at  = now()
        """,
        *columns(rows, ReceivedStock),
    )
    await change_stock(
        connection,
        [StockChange(row.lot_id, row.location, received=row.quantity) for row in rows],
        create=True,
    )


async def ensure_lots(connection: Connection, facts: Iterable[LotFacts]) -> None:
    """Create placeholder rows for lots an event names before their receipt is known."""
    unique = list({fact.lot_id: fact for fact in facts}.values())
    if not unique:
        return
    await connection.execute(
        """
        INSERT INTO lots (lot_id, sku, lot_code, uom)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT (lot_id) DO NOTHING
        """,
        *columns(unique, LotFacts),
    )


async def ensure_and_lock_lots(connection: Connection, facts: Iterable[LotFacts]) -> None:
    """Lock the lots (not their totals) these facts name, in lot id order, creating the
    placeholder rows of those not known yet, in one statement."""
    unique = sorted({fact.lot_id: fact for fact in facts}.values(), key=lambda f: f.lot_id)
    if not unique:
        return
    # ON CONFLICT DO UPDATE locks every conflicting row, FOR UPDATE, even where its WHERE
    # updates none: a lot stays as the first event that named it made it, as with DO NOTHING.
    # A lot another transaction creates meanwhile is waited for, then locked: a SELECT ... FOR
    # UPDATE in this statement would not see it.
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, sku, lot_code, uom)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
            AS d(lot_id, sku, lot_code, uom)
        ORDER BY lot_id
        ON CONFLICT (lot_id) DO UPDATE SET lot_id = EXCLUDED.lot_id WHERE false
        """,
        *columns(unique, LotFacts),
    )


async def lock_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[LockedLot]:
    """Lock lots (and their stock rows) in lot id order."""
    ids = sorted(set(lot_ids))
    rows = await connection.fetch(
        """
        SELECT lot_id, sku, lot_code, blocks, gtin, supplier_id, uom FROM lots
        WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id FOR UPDATE
        """,
        ids,
    )
    await connection.execute(
        "SELECT 1 FROM stock WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id, location FOR UPDATE",
        ids,
    )
    return rows_as(rows, LockedLot)


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


async def stock_of(connection: Connection, lot_ids: Iterable[UUID]) -> dict[UUID, list[StockRow]]:
    rows = await connection.fetch(
        """
        SELECT lot_id, location, on_hand, reserved FROM stock
        WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id, location
        """,
        sorted(set(lot_ids)),
    )
    result: dict[UUID, list[StockRow]] = defaultdict(list)
    for row in rows_as(rows, StockRow):
        result[row.lot_id].append(row)
    return result


_STOCK_UPDATE_PARAMETERS = 2 + len(AMOUNTS)


def _stock_update(first: int) -> str:
    """Adds the signed amounts of `StockChange` rows (lot, location, then each of `AMOUNTS`),
    given as arrays from parameter `first`."""
    amounts = [f"${first + 2 + n}::numeric[]" for n in range(len(AMOUNTS))]
    return f"""
        UPDATE stock s SET {", ".join(f"{name} = s.{name} + d.{name}" for name in AMOUNTS)}
        FROM unnest(${first}::uuid[], ${first + 1}::text[], {", ".join(amounts)})
            AS d(lot_id, location, {", ".join(AMOUNTS)})
        WHERE s.lot_id = d.lot_id AND s.location = d.location
    """


async def change_stock(
    connection: Connection, changes: Iterable[StockChange], *, create: bool = False
) -> None:
    """Add signed amounts to stock rows, every column in one statement. `create` first adds
    the rows that may not exist yet (a receipt at a new location)."""
    merged = summed(changes)
    if not merged:
        return
    if create:
        await create_stock_rows(connection, [change.key for change in merged])
    await connection.execute(_stock_update(1), *columns(merged, StockChange))


async def create_stock_rows(connection: Connection, keys: Sequence[StockKey]) -> None:
    """Add the stock rows, empty, of those (lot, location) pairs that have none yet."""
    await connection.execute(
        """
        INSERT INTO stock (lot_id, location)
        SELECT * FROM unnest($1::uuid[], $2::text[])
        ON CONFLICT (lot_id, location) DO NOTHING
        """,
        [lot_id for lot_id, _ in keys],
        [location for _, location in keys],
    )


async def lock_lot_rows(connection: Connection, lot_ids: Iterable[UUID]) -> None:
    """Lock lots (not their totals) in lot id order: writers of a lot's stock take this first."""
    await connection.execute(
        "SELECT 1 FROM lots WHERE lot_id = ANY($1::uuid[]) ORDER BY lot_id FOR UPDATE",
        sorted(set(lot_ids)),
    )


# The stock rows that may be allocated from; parameters: blocking blocks, earliest expiry,
# unpickable locations.
_ALLOCATABLE = """
    NOT l.blocks && $1::text[] AND (l.expiry_date IS NULL OR l.expiry_date >= $2)
    AND s.on_hand > s.reserved AND NOT s.location = ANY($3::text[])
"""


async def lock_allocatable(
    connection: Connection,
    needs: Sequence[FefoNeed],
    *,
    blocking: Sequence[Block],
    earliest_expiry: date,
    unpickable: Sequence[str],
) -> list[StockLot]:
    """Stock that may be allocated, locked: its rows for update, its lots against a hold. The
    rule is the domain's: lots with none of the `blocking` blocks, not expiring before
    `earliest_expiry`, at none of the `unpickable` locations. Of each need's SKU, only the lots
    in FEFO order (`domain.fefo_order`) up to those that cover the need (`FefoNeed`).

    The lots are chosen on the statement's snapshot and locked after: a change committed in
    between can leave them short, which `domain.needs_read_whole` tells. A known lot that a
    receipt committed in between dates earlier may go unread, as a lot first received in
    between always did: the next batch sees it."""
    if not needs:
        return []
    rows = await connection.fetch(
        f"""
        WITH need AS (
            SELECT * FROM unnest($4::text[], $5::text[], $6::numeric[], $7::date[])
                WITH ORDINALITY AS n(sku, uom, quantity, cutoff, need_no)
        ), candidate AS (
            SELECT l.lot_id, l.sku, l.uom, l.expiry_date, l.received_at,
                   s.on_hand - s.reserved AS available
            FROM lots l JOIN stock s USING (lot_id)
            WHERE l.sku = ANY($4::text[]) AND {_ALLOCATABLE}
        ), before AS (
            SELECT c.lot_id, n.quantity, coalesce(sum(c.available) FILTER (
                       WHERE c.uom = n.uom
                         AND (c.expiry_date IS NULL OR c.expiry_date >= n.cutoff)
                   ) OVER (
                       PARTITION BY n.need_no
                       ORDER BY c.expiry_date NULLS LAST, c.received_at NULLS LAST, c.lot_id
                       GROUPS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
                   ), 0) AS covered
            FROM candidate c JOIN need n USING (sku)
        )
        SELECT l.lot_id, l.lot_code, l.sku, l.uom, s.on_hand - s.reserved AS available,
               l.expiry_date, l.received_at, s.location, l.gtin
        FROM lots l JOIN stock s USING (lot_id)
        WHERE l.lot_id = ANY(ARRAY(
                  SELECT lot_id FROM before WHERE quantity IS NULL OR covered < quantity))
          AND {_ALLOCATABLE}
        ORDER BY l.lot_id, s.location
        FOR UPDATE OF s
        FOR SHARE OF l
        """,
        list(blocking),
        earliest_expiry,
        list(unpickable),
        *columns(needs, FefoNeed),
    )
    return rows_as(rows, StockLot)


async def skus_of(connection: Connection, lot_ids: Iterable[UUID]) -> set[str]:
    rows = await connection.fetch(
        "SELECT DISTINCT sku FROM lots WHERE lot_id = ANY($1::uuid[])", list(lot_ids)
    )
    return {row["sku"] for row in rows}


async def set_hold(connection: Connection, lot_id: UUID, *, reason: str | None) -> None:
    """Put a lot under a quality hold with its reason, or (no reason) release the hold."""
    await connection.execute(
        """
        UPDATE lots SET blocks = CASE WHEN $2::text IS NULL THEN array_remove(blocks, $3)
                                      ELSE array_append(array_remove(blocks, $3), $3) END,
                        hold_reason = $2, updated_at = now()
        WHERE lot_id = $1
        """,
        lot_id,
        reason,
        Block.QUARANTINED,
    )


async def set_qc(
    connection: Connection,
    lot_ids: Iterable[UUID],
    *,
    state: QcState,
    add: Sequence[Block] = (),
    remove: Sequence[Block] = (),
    hold_reason: str | None = None,
) -> None:
    """Record where lots stand in QC: their QC state, the blocks it adds and removes, and the
    hold reason shown while they are quarantined."""
    await connection.execute(
        """
        UPDATE lots SET
            blocks = ARRAY(SELECT DISTINCT b FROM unnest(array_cat(blocks, $3::text[])) AS b
                           WHERE b = ANY($3::text[]) OR NOT b = ANY($4::text[])),
            qc_state = $2, hold_reason = coalesce($5, hold_reason), updated_at = now()
        WHERE lot_id = ANY($1::uuid[])
        """,
        sorted(set(lot_ids)),
        state,
        list(add),
        list(remove),
        hold_reason,
    )


async def qc_state_of(connection: Connection, lot_id: UUID) -> str | None:
    state: str | None = await connection.fetchval(
        "SELECT qc_state FROM lots WHERE lot_id = $1", lot_id
    )
    return state


def _lot_states(lot_ids: str, unpickable: str, *, changed_stock: str | None = None) -> str:
    """Selects what decides the status of each lot of `lot_ids` (its stock at the locations it
    may be picked from, none of `unpickable`), and the status last announced; both parameters.
    `changed_stock`, a CTE of the stock rows this statement updated (lot_id, location,
    on_hand), stands for those rows: the statement itself does not see its updates."""
    on_hand, joined = "s.on_hand", ""
    if changed_stock:
        on_hand = "coalesce(c.on_hand, s.on_hand)"
        joined = f"LEFT JOIN {changed_stock} c USING (lot_id, location)"
    return f"""
        SELECT l.lot_id, l.lot_code, l.sku, l.blocks, l.expiry_date,
               coalesce((SELECT sum({on_hand}) FROM stock s {joined}
                         WHERE s.lot_id = l.lot_id AND NOT s.location = ANY({unpickable}::text[])),
                        0) AS on_hand,
               l.status AS announced
        FROM lots l WHERE l.lot_id = ANY({lot_ids}::uuid[]) ORDER BY l.lot_id
    """


async def lot_states(
    connection: Connection, lot_ids: Iterable[UUID], *, unpickable: Sequence[str]
) -> list[LotState]:
    """What decides each lot's status (its stock at the locations it may be picked from), and
    the status last announced, the lots locked."""
    rows = await connection.fetch(
        f"{_lot_states('$1', '$2')} FOR UPDATE OF l", sorted(set(lot_ids)), list(unpickable)
    )
    return rows_as(rows, LotState)


async def set_announced(connection: Connection, statuses: Sequence[tuple[UUID, str]]) -> None:
    await connection.execute(
        """
        UPDATE lots l SET status = d.status
        FROM unnest($1::uuid[], $2::text[]) AS d(lot_id, status) WHERE l.lot_id = d.lot_id
        """,
        [lot_id for lot_id, _ in statuses],
        [status for _, status in statuses],
    )


async def past_expiry_announced_as(
    connection: Connection, *, earliest_expiry: date, statuses: Sequence[LotStatus]
) -> list[UUID]:
    """Lots expiring before `earliest_expiry` (the domain's cutoff) still announced with one of
    `statuses` (those expiry replaces)."""
    rows = await connection.fetch(
        """
        SELECT lot_id FROM lots WHERE expiry_date < $1 AND status = ANY($2::text[])
        ORDER BY lot_id LIMIT 10000
        """,
        earliest_expiry,
        list(statuses),
    )
    return [row["lot_id"] for row in rows]


async def mark_recalled(
    connection: Connection, lot_ids: Sequence[UUID], recall_id: str
) -> list[UUID]:
    rows = await connection.fetch(
        """
        UPDATE lots SET blocks = array_append(blocks, $3), recall_id = $2, updated_at = now()
        WHERE lot_id = ANY($1::uuid[]) AND NOT $3 = ANY(blocks)
        RETURNING lot_id
        """,
        sorted(set(lot_ids)),
        recall_id,
        Block.RECALLED,
    )
    return [row["lot_id"] for row in rows]


async def record_inputs(connection: Connection, edges: Sequence[Edge]) -> None:
    """Remember which lots each produced lot was made from."""
    await connection.execute(
        """
        INSERT INTO lot_inputs (lot_id, input_lot_id)
        SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING
        """,
        *columns(edges, Edge),
    )


async def inherit_recalls(connection: Connection, lot_ids: Sequence[UUID]) -> list[InheritedRecall]:
    """Recall these lots if any lot they were made from is recalled, under that recall."""
    rows = await connection.fetch(
        """
        WITH inherited AS (
            SELECT DISTINCT ON (i.lot_id) i.lot_id, p.recall_id, p.lot_id AS input_lot_id
            FROM lot_inputs i JOIN lots p ON p.lot_id = i.input_lot_id
            WHERE i.lot_id = ANY($1::uuid[]) AND $2 = ANY(p.blocks)
            ORDER BY i.lot_id, p.recall_id, p.lot_id
        )
        UPDATE lots l SET blocks = array_append(l.blocks, $2),
                          recall_id = inherited.recall_id, updated_at = now()
        FROM inherited
        WHERE l.lot_id = inherited.lot_id AND NOT $2 = ANY(l.blocks)
        RETURNING l.lot_id, inherited.recall_id, inherited.input_lot_id
        """,
        sorted(set(lot_ids)),
        Block.RECALLED,
    )
    return rows_as(rows, InheritedRecall)


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


async def lock_orders(connection: Connection, order_ids: Iterable[str]) -> None:
    """Serialize the handlers that meet on an order before it is stored (its placement and a
    shipment that came first), in one order so that two replicas never deadlock. A statement
    of its own: what follows must see what the other committed."""
    await connection.execute(
        """
        SELECT pg_advisory_xact_lock(hashtextextended('order:' || id, 0))
        FROM (SELECT DISTINCT id FROM unnest($1::text[]) AS id ORDER BY id) AS ids
        """,
        list(order_ids),
    )


async def insert_new_orders(
    connection: Connection, orders: Sequence[NewOrder], lines: Sequence[NewLine]
) -> tuple[list[str], list[ShippedEarly]]:
    """Store orders never seen before with their lines, in one statement; returns their ids,
    and what their lines had shipped already (claimed from `early_shipments`). Their first
    allocation will be revision 1."""
    rows = await connection.fetch(
        """
        WITH new AS (
            INSERT INTO orders (order_id, customer_id, min_remaining_shelf_life_days, placed_at,
                                revision)
            SELECT *, 1 FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[])
            ON CONFLICT (order_id) DO NOTHING
            RETURNING order_id
        ), early AS (
            DELETE FROM early_shipments e WHERE e.order_id IN (SELECT order_id FROM new)
            RETURNING e.order_id, e.line_no, e.shipped
        ), lines AS (
            INSERT INTO order_lines (order_id, line_no, sku, uom, ordered, shipped)
            SELECT d.*, coalesce(early.shipped, 0)
            FROM unnest($5::text[], $6::int[], $7::text[], $8::text[], $9::numeric[])
                AS d(order_id, line_no, sku, uom, ordered)
            LEFT JOIN early USING (order_id, line_no)
            WHERE d.order_id IN (SELECT order_id FROM new)
        )
        SELECT new.order_id, early.line_no, early.shipped
        FROM new LEFT JOIN early USING (order_id)
        """,
        *columns(orders, NewOrder),
        *columns(lines, NewLine),
    )
    created = list(dict.fromkeys(row["order_id"] for row in rows))
    early = [
        ShippedEarly(row["order_id"], row["line_no"], row["shipped"])
        for row in rows
        if row["line_no"] is not None
    ]
    return created, early


def _remember_early_shipments(first: int) -> str:
    """Keeps what shipped on lines of orders inventory does not know yet, for their arrival:
    `ShippedEarly` rows, as arrays from parameter `first`."""
    p = [f"${first + n}" for n in range(3)]
    return f"""
        INSERT INTO early_shipments (order_id, line_no, shipped)
        SELECT order_id, line_no, sum(shipped)
        FROM unnest({p[0]}::text[], {p[1]}::int[], {p[2]}::numeric[])
            AS e(order_id, line_no, shipped)
        GROUP BY order_id, line_no
        ON CONFLICT (order_id, line_no)
            DO UPDATE SET shipped = early_shipments.shipped + EXCLUDED.shipped
    """


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


def _close_fulfilled(order_ids: str, *, changed_lines: str | None = None) -> str:
    """Closes the open orders among `order_ids` (a parameter) none of whose lines shipped less
    than ordered. `changed_lines`, a CTE of the lines this statement updated (order_id,
    line_no, shipped), stands for those lines: the statement itself does not see its updates."""
    shipped = "l.shipped"
    joined = ""
    if changed_lines:
        shipped = "coalesce(c.shipped, l.shipped)"
        joined = f"LEFT JOIN {changed_lines} c USING (order_id, line_no)"
    # One grouped join, not a NOT EXISTS per order: PostgreSQL ran that as a scan of the whole
    # `changed_lines` CTE for each order, 650 of a 710 ms statement for a batch of 500 orders
    # (auto_explain during `python -m bench.pipeline`'s burst).
    return f"""
        UPDATE orders o SET status = 'closed'
        FROM (SELECT l.order_id FROM order_lines l {joined}
              WHERE l.order_id = ANY({order_ids}::text[])
              GROUP BY l.order_id
              HAVING bool_and({shipped} >= l.ordered)) fulfilled
        WHERE o.order_id = fulfilled.order_id AND o.status = 'open'
          AND o.order_id = ANY({order_ids}::text[])
    """


async def close_fulfilled_orders(connection: Connection, order_ids: Sequence[str]) -> None:
    await connection.execute(_close_fulfilled("$1"), list(order_ids))


async def open_demand(connection: Connection, order_ids: Sequence[str]) -> list[Demand]:
    """Unallocated demand of open orders, their lines locked, oldest order first."""
    rows = await connection.fetch(
        """
        SELECT l.order_id, l.line_no, l.sku, l.uom, l.ordered - l.shipped - l.reserved AS quantity,
               o.min_remaining_shelf_life_days
        FROM order_lines l JOIN orders o USING (order_id)
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open'
          AND l.ordered > l.shipped + l.reserved
        ORDER BY o.arrival, l.line_no
        FOR UPDATE OF l
        """,
        list(order_ids),
    )
    return rows_as(rows, Demand)


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
    return rows_as(rows, LineState)


async def lock_order_lines(
    connection: Connection, order_ids: Iterable[str]
) -> set[tuple[str, int]]:
    """Lock the orders' lines; returns the (order, line) pairs inventory knows."""
    rows = await connection.fetch(
        """
        SELECT order_id, line_no FROM order_lines WHERE order_id = ANY($1::text[])
        ORDER BY order_id, line_no FOR UPDATE
        """,
        sorted(set(order_ids)),
    )
    return {(row["order_id"], row["line_no"]) for row in rows}


# ------------------------------------------------------------------ reservations


async def reserve(
    connection: Connection,
    reserves: Sequence[Reserve],
    reasons: Sequence[LineChange],
    movements: Sequence[Movement],
) -> None:
    """Reserve stock for order lines, record each allocated line's backorder reason (None
    when nothing is missing) and the lots' history rows: reservations, stock, order lines and
    history in one statement (one round trip of a placed order's few)."""
    stock = [StockChange(r.lot_id, r.location, reserved=r.quantity) for r in reserves]
    lines = [LineChange(r.order_id, r.line_no, reserved=r.quantity) for r in reserves]
    history = 6 + _STOCK_UPDATE_PARAMETERS + _LINE_UPDATE_PARAMETERS
    await connection.execute(
        f"""
        WITH taken AS (
            INSERT INTO reservations AS r (order_id, line_no, lot_id, quantity, location)
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[], $5::text[])
            ON CONFLICT (order_id, line_no, lot_id, location)
            DO UPDATE SET quantity = r.quantity + EXCLUDED.quantity
        ), stock_rows AS ({_stock_update(6)}
        ), history AS ({_history_insert(history)})
        {_line_update(6 + _STOCK_UPDATE_PARAMETERS)}
        """,
        *columns(merged(reserves), Reserve),
        *columns(summed(stock), StockChange),
        *columns(summed([*lines, *reasons]), LineChange),
        *columns(movements, Movement),
    )


def _release_ctes(first: int) -> str:
    """CTEs that give reservations back (`Reserve` rows, as arrays from parameter `first`): the
    reservations deleted or shrunk, and the stock rows' amounts added (`StockChange` arrays from
    parameter `first + 5`). Callers never release more than a reservation holds."""
    p = [f"${first + n}" for n in range(5)]
    return f"""
        d AS (
            SELECT * FROM unnest({p[0]}::text[], {p[1]}::int[], {p[2]}::uuid[], {p[3]}::numeric[],
                                 {p[4]}::text[])
                AS d(order_id, line_no, lot_id, quantity, location)
        ), gone AS (
            DELETE FROM reservations r USING d
            WHERE (r.order_id, r.line_no, r.lot_id, r.location)
                = (d.order_id, d.line_no, d.lot_id, d.location)
              AND r.order_id = ANY({p[0]}::text[])
              AND r.quantity <= d.quantity
        ), shrunk AS (
            UPDATE reservations r SET quantity = r.quantity - d.quantity FROM d
            WHERE (r.order_id, r.line_no, r.lot_id, r.location)
                = (d.order_id, d.line_no, d.lot_id, d.location)
              AND r.order_id = ANY({p[0]}::text[])
              AND r.quantity > d.quantity
        ), stock_rows AS ({_stock_update(first + 5)} RETURNING s.lot_id, s.location, s.on_hand)
    """


_RELEASE_PARAMETERS = 5 + _STOCK_UPDATE_PARAMETERS


def _released(releases: Sequence[Reserve], shipped: Sequence[Reserve]) -> list[list[Any]]:
    """The arrays of `_release_ctes` then `_line_update`: reservations given back and, with
    `shipped`, the shipped quantities added to their stock rows and order lines."""
    stock = [StockChange(r.lot_id, r.location, reserved=-r.quantity) for r in releases]
    stock += [StockChange(s.lot_id, s.location, shipped=s.quantity) for s in shipped]
    lines = [LineChange(r.order_id, r.line_no, reserved=-r.quantity) for r in releases]
    lines += [LineChange(s.order_id, s.line_no, shipped=s.quantity) for s in shipped]
    return [
        *columns(merged(releases), Reserve),
        *columns(summed(stock), StockChange),
        *columns(summed(lines), LineChange),
    ]


async def release(
    connection: Connection, releases: Sequence[Reserve], movements: Sequence[Movement]
) -> None:
    """Give reservations back with their history rows, in one statement: reservations, stock,
    order lines and history."""
    history = _RELEASE_PARAMETERS + _LINE_UPDATE_PARAMETERS + 1
    await connection.execute(
        f"""
        WITH {_release_ctes(1)}, history AS ({_history_insert(history)})
        {_line_update(_RELEASE_PARAMETERS + 1)}
        """,
        *_released(releases, ()),
        *columns(movements, Movement),
    )


async def ship(
    connection: Connection, shipment: Shipping, *, unpickable: Sequence[str]
) -> list[LotState]:
    """Record a batch of shipments in one statement: the reservations they used given back,
    the shipped quantities added to stock rows and order lines, their history rows and days,
    what shipped on lines not known yet (`early_shipments`), and the orders it fulfilled
    closed. Returns the states of the lots it shipped from, as `lot_states` would after it;
    the caller holds their locks."""
    lines = _RELEASE_PARAMETERS + 1
    history = lines + _LINE_UPDATE_PARAMETERS
    days = history + len(fields(Movement))
    early = days + len(fields(ShippedDay))
    orders = early + len(fields(ShippedEarly))
    rows = await connection.fetch(
        f"""
        WITH {_release_ctes(1)},
        changed_lines AS ({_line_update(lines)} RETURNING l.order_id, l.line_no, l.shipped),
        history AS ({_history_insert(history)}),
        days AS ({_add_shipped_days(days)}),
        early AS ({_remember_early_shipments(early)}),
        closed AS ({_close_fulfilled(f"${orders}", changed_lines="changed_lines")})
        {_lot_states(f"${orders + 1}", f"${orders + 2}", changed_stock="stock_rows")}
        """,
        *_released(shipment.used, shipment.shipped),
        *columns(shipment.movements, Movement),
        *columns(shipment.days, ShippedDay),
        *columns(shipment.early, ShippedEarly),
        list(shipment.order_ids),
        sorted(shipment.lot_ids),
        list(unpickable),
    )
    return rows_as(rows, LotState)


_LINE_UPDATE_PARAMETERS = 6


def _line_update(first: int) -> str:
    """Adds the amounts of `LineChange` rows, given as arrays from parameter `first`, and sets
    the backorder reason of those that carry one.

    The `= ANY` on the order ids repeats the join to the planner. Without it, PostgreSQL joined
    a batch of 1,500 lines to order_lines by hashing the whole table, whose cost grows with
    every order ever placed (14 of a 60 ms statement at 45,000 lines, auto_explain during
    `python -m bench.pipeline --orders 15000`); with it, it reads only the batch's orders
    through the primary key. The other keyed batch statements on growing tables do the same."""
    p = [f"${first + n}" for n in range(_LINE_UPDATE_PARAMETERS)]
    return f"""
        UPDATE order_lines l
        SET reserved = l.reserved + d.reserved, shipped = l.shipped + d.shipped,
            backorder_reason = CASE WHEN d.sets_reason THEN d.reason ELSE l.backorder_reason END
        FROM unnest({p[0]}::text[], {p[1]}::int[], {p[2]}::numeric[], {p[3]}::numeric[],
                    {p[4]}::text[], {p[5]}::bool[])
            AS d(order_id, line_no, reserved, shipped, reason, sets_reason)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
          AND l.order_id = ANY({p[0]}::text[])
    """


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
    return rows_as(rows, Held)


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
    return rows_as(rows, Held)


async def held_for_orders(connection: Connection, order_ids: Sequence[str]) -> list[Held]:
    rows = await connection.fetch(f"{_HELD} WHERE r.order_id = ANY($1::text[])", list(order_ids))
    return rows_as(rows, Held)


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
    return rows_as(rows, Held)


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
        WHERE r.order_id = ANY($1::text[])
        ORDER BY r.order_id, r.line_no, r.lot_id, r.location
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return rows_as(rows, Reserve)


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
    return rows_as(rows, LineState)


async def overcommitted_stock(connection: Connection, lot_ids: Iterable[UUID]) -> list[StockRow]:
    """Stock rows whose on-hand quantity fell below what is reserved from them."""
    rows = await connection.fetch(
        """
        SELECT lot_id, location, on_hand, reserved FROM stock
        WHERE lot_id = ANY($1::uuid[]) AND reserved > greatest(on_hand, 0)
        ORDER BY lot_id, location
        """,
        sorted(set(lot_ids)),
    )
    return rows_as(rows, StockRow)


async def stock_rows(connection: Connection, keys: Sequence[StockKey]) -> dict[StockKey, StockRow]:
    rows = await connection.fetch(
        """
        SELECT lot_id, location, on_hand, reserved FROM stock
        WHERE (lot_id, location) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
        """,
        [lot_id for lot_id, _ in keys],
        [location for _, location in keys],
    )
    return {(row.lot_id, row.location): row for row in rows_as(rows, StockRow)}


async def expired_with_reservations(connection: Connection, *, earliest_expiry: date) -> list[UUID]:
    """Lots with reservations that expire before `earliest_expiry`, the domain's cutoff."""
    rows = await connection.fetch(
        """
        SELECT DISTINCT l.lot_id FROM lots l JOIN stock s USING (lot_id)
        WHERE l.expiry_date < $1 AND s.reserved > 0 ORDER BY l.lot_id
        """,
        earliest_expiry,
    )
    return [row["lot_id"] for row in rows]


# ------------------------------------------------------------------ allocation snapshots


async def bump_revisions(connection: Connection, order_ids: Sequence[str]) -> list[OrderRevision]:
    rows = await connection.fetch(
        """
        UPDATE orders SET revision = revision + 1
        WHERE order_id = ANY($1::text[]) AND customer_id IS NOT NULL
        RETURNING order_id, customer_id, revision, status
        """,
        list(order_ids),
    )
    return rows_as(rows, OrderRevision)


async def reservations_with_lots(
    connection: Connection, order_ids: Sequence[str]
) -> list[ReservedLot]:
    """Each order's reservations with their lots, by order and line (`domain.in_shipping_order`
    puts each line's lots in the order they ship)."""
    rows = await connection.fetch(
        """
        SELECT r.order_id, r.line_no, r.quantity, r.location, l.lot_id, l.lot_code, l.sku, l.uom,
               l.expiry_date, l.received_at, l.gtin
        FROM reservations r JOIN lots l USING (lot_id)
        WHERE r.order_id = ANY($1::text[])
        ORDER BY r.order_id, r.line_no
        """,
        list(order_ids),
    )
    return rows_as(rows, ReservedLot)


# ------------------------------------------------------------------ returns


async def lots_named(
    connection: Connection, lot_ids: Sequence[UUID], codes: Sequence[tuple[str, str]]
) -> list[LockedLot]:
    """The lots these ids, or these (sku, lot code) pairs, name; those that exist."""
    rows = await connection.fetch(
        """
        SELECT lot_id, sku, lot_code, blocks, gtin, supplier_id, uom FROM lots
        WHERE lot_id = ANY($1::uuid[])
           OR (sku, lot_code) IN (SELECT * FROM unnest($2::text[], $3::text[]))
        ORDER BY lot_id
        """,
        list(lot_ids),
        [sku for sku, _ in codes],
        [code for _, code in codes],
    )
    return rows_as(rows, LockedLot)


async def returnable(
    connection: Connection, customer_id: str, lot_ids: Iterable[UUID]
) -> dict[UUID, Decimal]:
    """Per lot, what inventory saw shipped to this customer (imported shipments included) less
    what the customer returned."""
    rows = await connection.fetch(
        """
        WITH wanted AS (SELECT DISTINCT unnest($2::uuid[]) AS lot_id),
        shipped AS (
            SELECT lot_id, sum(quantity) AS quantity FROM (
                SELECT h.lot_id, h.quantity
                FROM lot_history h JOIN orders o USING (order_id)
                WHERE h.change = 'shipped' AND o.customer_id = $1
                  AND h.lot_id IN (SELECT lot_id FROM wanted)
                UNION ALL
                SELECT lot_id, quantity FROM imported_shipment_lines
                WHERE customer_id = $1 AND lot_id IN (SELECT lot_id FROM wanted)
            ) AS lines
            GROUP BY lot_id
        ), returned AS (
            SELECT lot_id, sum(quantity) AS quantity FROM return_lines
            WHERE customer_id = $1 AND lot_id IN (SELECT lot_id FROM wanted) GROUP BY lot_id
        )
        SELECT w.lot_id, coalesce(s.quantity, 0) - coalesce(r.quantity, 0) AS returnable
        FROM wanted w LEFT JOIN shipped s USING (lot_id) LEFT JOIN returned r USING (lot_id)
        """,
        customer_id,
        sorted(set(lot_ids)),
    )
    return {row["lot_id"]: row["returnable"] for row in rows}


async def insert_return_lines(
    connection: Connection, lines: Sequence[ReturnedLine]
) -> list[ReturnedLine]:
    """Record the lines of a return not recorded yet; returns those, the ones to take in."""
    rows = await connection.fetch(
        """
        INSERT INTO return_lines (return_id, line_no, lot_id, customer_id, order_id, recall_id,
                                  quantity, location, reason, condition, beyond_shipped,
                                  returned_at)
        SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                             $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[],
                             $11::numeric[], $12::timestamptz[])
        ON CONFLICT (return_id, line_no) DO NOTHING
        RETURNING line_no
        """,
        *columns(lines, ReturnedLine),
    )
    taken = {row["line_no"] for row in rows}
    return [line for line in lines if line.line_no in taken]


# ------------------------------------------------------------------ history


def _history_insert(first: int) -> str:
    """Inserts `Movement` rows, given as arrays from parameter `first`, into the history."""
    p = [f"${first + n}" for n in range(7)]
    return f"""
        INSERT INTO lot_history (lot_id, change, quantity, cause, order_id, detail, location)
        SELECT * FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::numeric[], {p[3]}::text[],
                             {p[4]}::text[], {p[5]}::text[], {p[6]}::text[])
    """


async def record_movements(connection: Connection, movements: Sequence[Movement]) -> None:
    if not movements:
        return
    await connection.execute(_history_insert(1), *columns(movements, Movement))


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
    """The lot's history; `cause` is who or what did it (`user:<name>`, an event id, a
    `rule:`), `detail` why."""
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


# ------------------------------------------------------------------ reports (reporting.py)


def _add_shipped_days(first: int) -> str:
    """Adds what each lot shipped to its day's total (the sell rates of the reports):
    `ShippedDay` rows, as arrays from parameter `first`."""
    p = [f"${first + n}" for n in range(3)]
    return f"""
        INSERT INTO lot_shipped_days AS t (lot_id, day, quantity)
        SELECT lot_id, day, sum(quantity)
        FROM unnest({p[0]}::uuid[], {p[1]}::date[], {p[2]}::numeric[]) AS s(lot_id, day, quantity)
        GROUP BY lot_id, day ORDER BY lot_id, day
        ON CONFLICT (lot_id, day) DO UPDATE SET quantity = t.quantity + EXCLUDED.quantity
    """


async def record_shipped_days(connection: Connection, shipped: Sequence[ShippedDay]) -> None:
    await connection.execute(_add_shipped_days(1), *columns(shipped, ShippedDay))


async def lot_report_facts(
    connection: Connection,
    rules: FactRules,
    *,
    received_since: date | None = None,
    with_stock: bool = False,
    expiring: ExpiryWindow | None = None,
) -> list[LotReportFacts]:
    """Received lots (since that day, or with stock on hand when `with_stock`, or expiring in
    the window): totals here, what shipped before lottrace (imported shipments), QC, recall,
    whether a quality hold other than the QC quarantine on receipt ever touched them, last
    day shipped."""
    rows = await connection.fetch(
        """
        SELECT l.lot_id, l.lot_code, l.sku, l.supplier_id, l.received_at, l.expiry_date,
               l.blocks, l.qc_state, l.recall_id,
               coalesce(s.received, 0) AS received_here, coalesce(s.shipped, 0) AS shipped_here,
               (SELECT coalesce(sum(i.quantity), 0) FROM imported_shipment_lines i
                WHERE i.lot_id = l.lot_id) AS shipped_before,
               coalesce(s.on_hand, 0) AS on_hand, coalesce(s.sellable, 0) AS sellable,
               (SELECT max(d.day) FROM lot_shipped_days d WHERE d.lot_id = l.lot_id)
                   AS last_shipped,
               EXISTS (SELECT 1 FROM lot_history h
                       WHERE h.lot_id = l.lot_id AND h.change = $4
                         AND h.detail IS DISTINCT FROM $5) AS held
        FROM lots l
        LEFT JOIN LATERAL (
            SELECT sum(received) AS received, sum(shipped) AS shipped, sum(on_hand) AS on_hand,
                   sum(on_hand) FILTER (WHERE NOT location = ANY($3::text[])) AS sellable
            FROM stock WHERE stock.lot_id = l.lot_id
        ) s ON true
        WHERE l.received_at IS NOT NULL
          AND ($1::date IS NULL OR l.received_at >= ($1::date)::timestamp AT TIME ZONE 'UTC'
               OR ($6 AND s.on_hand > 0))
          AND ($2::date IS NULL OR l.expiry_date BETWEEN $2 AND $7)
        ORDER BY l.sku, l.received_at, l.lot_id
        """,
        received_since,
        expiring.first if expiring else None,
        list(rules.unpickable),
        rules.held_change,
        rules.qc_hold_reason,
        with_stock,
        expiring.last if expiring else None,
    )
    return rows_as(rows, LotReportFacts)


async def shipped_per_sku(
    connection: Connection, skus: Iterable[str], since: date
) -> dict[str, Decimal]:
    """What each SKU shipped from the day `since` on."""
    rows = await connection.fetch(
        """
        SELECT l.sku, sum(d.quantity) AS shipped
        FROM lot_shipped_days d JOIN lots l USING (lot_id)
        WHERE d.day >= $2 AND l.sku = ANY($1::text[])
        GROUP BY l.sku
        """,
        sorted(set(skus)),
        since,
    )
    return {row["sku"]: row["shipped"] for row in rows}


async def returned_units(connection: Connection, lot_ids: Iterable[UUID]) -> list[ReturnedUnits]:
    """What customers returned of these lots, per reason."""
    rows = await connection.fetch(
        """
        SELECT lot_id, reason, sum(quantity) AS quantity FROM return_lines
        WHERE lot_id = ANY($1::uuid[]) GROUP BY lot_id, reason ORDER BY lot_id, reason
        """,
        sorted(set(lot_ids)),
    )
    return rows_as(rows, ReturnedUnits)


async def insert_imported_shipment_lines(
    connection: Connection, lines: Sequence[ImportedShipmentLine]
) -> list[ImportedShipmentLine]:
    """Keep the lines of shipments imported at onboarding (history_facts.py) not kept yet;
    returns those."""
    rows = await connection.fetch(
        """
        INSERT INTO imported_shipment_lines (event_id, line_no, shipment_id, order_id,
                                             customer_id, lot_id, quantity, shipped_at)
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[],
                             $6::uuid[], $7::numeric[], $8::timestamptz[])
        ON CONFLICT (event_id, line_no) DO NOTHING
        RETURNING event_id, line_no
        """,
        *columns(lines, ImportedShipmentLine),
    )
    kept = {(row["event_id"], row["line_no"]) for row in rows}
    return [line for line in lines if (line.event_id, line.line_no) in kept]


async def register_lots(connection: Connection, lots: Sequence[RegisteredLot]) -> None:
    """Lots known without stock (`lot-registered`, registrations.py): the lot, no stock row.
    What a receipt already said of a lot stays; a lot a shipment named first is filled in."""
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
            gtin        = coalesce(l.gtin, EXCLUDED.gtin),
            supplier_id = coalesce(l.supplier_id, EXCLUDED.supplier_id),
            expiry_date = coalesce(l.expiry_date, EXCLUDED.expiry_date),
            received_at = least(l.received_at, EXCLUDED.received_at),
            unit_cost   = CASE WHEN l.unit_cost IS NULL THEN EXCLUDED.unit_cost
                               ELSE l.unit_cost END,
            currency    = CASE WHEN l.unit_cost IS NULL THEN EXCLUDED.currency
                               ELSE l.currency END,
            updated_at  = now()
        """,
        *columns(lots, RegisteredLot),
    )
