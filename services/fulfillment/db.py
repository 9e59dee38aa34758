"""Every SQL statement of the fulfillment service."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from services.fulfillment.domain import Allocated, Line, OrderStatus, Settlement, ShipLine
from services.fulfillment.records import (
    ORDER_COLUMNS,
    AllocationRecord,
    AllocationReplacement,
    AllocationUpdate,
    BackorderRecord,
    BlockedLot,
    ImportedShipmentRecord,
    LotStatusRecord,
    OrderLineRecord,
    OrderRecord,
    PlacedOrder,
    Shipment,
    ShipmentLineRecord,
    ShippedQuantity,
    StoredShipment,
)
from shared.contracts.types import Customer
from shared.records import built_from
from shared.runtime.database import Connection, Record, columns, row_as, rows_as
from shared.runtime.imports import ImportLedger

T = TypeVar("T")


def _order(row: Record) -> OrderRecord:
    values = dict(row)
    customer = values.pop("customer")
    return OrderRecord(
        **values, customer=None if customer is None else Customer.model_validate(customer)
    )


async def store_orders(
    connection: Connection, orders: Sequence[PlacedOrder], lines: Sequence[OrderLineRecord]
) -> list[str]:
    """Store orders and their lines in one statement. An order that only an allocation or a
    cancellation named so far is completed. Returns the orders stored now that were waiting:
    they may have an allocation to ship."""
    order_ids, customer_ids, customers, placed_at = columns(orders, PlacedOrder)
    rows = await connection.fetch(
        """
        WITH stored AS (
            INSERT INTO orders AS o (order_id, customer_id, customer, placed_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[])
            ON CONFLICT (order_id) DO UPDATE SET
                customer_id = EXCLUDED.customer_id, customer = EXCLUDED.customer,
                placed_at = EXCLUDED.placed_at, updated_at = now()
            WHERE o.customer_id IS NULL
            RETURNING order_id, xmax <> 0 AS was_waiting
        ), stored_lines AS (
            INSERT INTO order_lines (order_id, line_no, sku, uom, ordered)
            SELECT d.* FROM unnest($5::text[], $6::int[], $7::text[], $8::text[], $9::numeric[])
                AS d(order_id, line_no, sku, uom, ordered)
            WHERE d.order_id IN (SELECT order_id FROM stored)
            ON CONFLICT DO NOTHING
        )
        SELECT order_id FROM stored WHERE was_waiting
        """,
        order_ids,
        customer_ids,
        [customer.model_dump(mode="json", exclude_none=True) for customer in customers],
        placed_at,
        *columns(lines, OrderLineRecord),
    )
    return [row["order_id"] for row in rows]


async def claim_orders(connection: Connection, order_ids: Iterable[str]) -> dict[str, OrderRecord]:
    """Lock these orders (creating the ones not known yet), in one statement, in order id
    order: concurrent batches lock their common orders in the same order, so never deadlock."""
    rows = await connection.fetch(
        f"""
        WITH created AS (
            INSERT INTO orders (order_id) SELECT unnest($1::text[])
            ON CONFLICT DO NOTHING
            RETURNING {ORDER_COLUMNS}
        )
        SELECT {ORDER_COLUMNS} FROM orders
        WHERE order_id = ANY($1::text[])
        ORDER BY order_id
        FOR UPDATE
        """,
        sorted(set(order_ids)),
    )
    found = {row["order_id"]: _order(row) for row in rows}
    missing = sorted(set(order_ids) - set(found))
    if missing:  # created by this statement, so not visible to its own SELECT
        for order in await lock_orders(connection, missing):
            found[order.order_id] = order
    return found


async def lock_orders(connection: Connection, order_ids: Iterable[str]) -> list[OrderRecord]:
    rows = await connection.fetch(
        f"""
        SELECT {ORDER_COLUMNS}
        FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE
        """,
        sorted(set(order_ids)),
    )
    return [_order(row) for row in rows]


async def replace_allocations(connection: Connection, replacement: AllocationReplacement) -> None:
    """Put these orders' allocation and backorders in place of what they had."""
    order_ids, revisions, allocated_at = columns(replacement.updates, AllocationUpdate)
    await connection.execute(
        """
        WITH cleared AS (
            DELETE FROM allocations WHERE order_id = ANY($1::text[])
        ), cleared_backorders AS (
            DELETE FROM backorders WHERE order_id = ANY($1::text[])
        )
        UPDATE orders o SET allocation_revision = coalesce(d.revision, o.allocation_revision + 1),
                            allocated_at = d.allocated_at, updated_at = now()
        FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS d(order_id, revision, allocated_at)
        WHERE o.order_id = d.order_id
        """,
        order_ids,
        revisions,
        allocated_at,
    )
    if replacement.allocations or replacement.backorders:
        await _insert_allocations(connection, replacement.allocations, replacement.backorders)


async def _insert_allocations(
    connection: Connection,
    allocations: Sequence[AllocationRecord],
    backorders: Sequence[BackorderRecord],
) -> None:
    await connection.execute(
        """
        WITH stored AS (
            INSERT INTO allocations (line_no, sku, lot_id, lot_code, quantity, uom, expiry_date,
                                     gtin, order_id, location)
            SELECT * FROM unnest($1::int[], $2::text[], $3::uuid[], $4::text[], $5::numeric[],
                                 $6::text[], $7::date[], $8::text[], $9::text[], $10::text[])
            ON CONFLICT (order_id, line_no, lot_id) DO UPDATE
                SET quantity = allocations.quantity + EXCLUDED.quantity
        )
        INSERT INTO backorders (order_id, line_no, sku, quantity, uom, reason)
        SELECT * FROM unnest($11::text[], $12::int[], $13::text[], $14::numeric[], $15::text[],
                             $16::text[])
        ON CONFLICT (order_id, line_no) DO UPDATE SET quantity = EXCLUDED.quantity
        """,
        *columns(allocations, AllocationRecord),
        *columns(backorders, BackorderRecord),
    )


async def cancel_orders(connection: Connection, cancellations: dict[str, str | None]) -> list[str]:
    rows = await connection.fetch(
        """
        INSERT INTO orders AS o (order_id, status, cancel_reason)
        SELECT id, $3, reason FROM unnest($1::text[], $2::text[]) AS d(id, reason)
        ON CONFLICT (order_id) DO UPDATE
            SET status = $3, cancel_reason = EXCLUDED.cancel_reason, updated_at = now()
        WHERE o.status = $4
        RETURNING order_id
        """,
        list(cancellations),
        list(cancellations.values()),
        OrderStatus.CANCELLED.value,
        OrderStatus.OPEN.value,
    )
    return [row["order_id"] for row in rows]


async def block_lots(connection: Connection, lots: Sequence[BlockedLot], reason: str) -> None:
    await connection.execute(
        """
        INSERT INTO blocked_lots (lot_id, lot_code, recall_id, reason)
        SELECT lot_id, lot_code, recall_id, $4 FROM unnest($1::uuid[], $2::text[], $3::text[])
            AS d(lot_id, lot_code, recall_id)
        ON CONFLICT (lot_id) DO NOTHING
        """,
        *columns(lots, BlockedLot),
        reason,
    )


async def blocked_among(
    connection: Connection, lot_ids: Iterable[UUID], *, shippable: Sequence[str]
) -> dict[UUID, str]:
    """Which of these lots may not ship, and why: recalled, or announced in a status other
    than the `shippable` ones (a recall wins)."""
    rows = await connection.fetch(
        """
        SELECT DISTINCT ON (lot_id) lot_id, reason FROM (
            SELECT lot_id, reason, 0 AS rank FROM blocked_lots WHERE lot_id = ANY($1::uuid[])
            UNION ALL
            SELECT lot_id, status, 1 FROM lot_statuses
            WHERE lot_id = ANY($1::uuid[]) AND NOT status = ANY($2::text[])
        ) AS b
        ORDER BY lot_id, rank
        """,
        sorted(set(lot_ids)),
        list(shippable),
    )
    return {row["lot_id"]: row["reason"] for row in rows}


async def record_lot_statuses(connection: Connection, statuses: Sequence[LotStatusRecord]) -> None:
    """Keep each lot's latest announced status; an older announcement changes nothing."""
    await connection.execute(
        """
        INSERT INTO lot_statuses AS s (lot_id, lot_code, status, changed_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
        ON CONFLICT (lot_id) DO UPDATE
            SET lot_code = EXCLUDED.lot_code, status = EXCLUDED.status,
                changed_at = EXCLUDED.changed_at
            WHERE s.changed_at <= EXCLUDED.changed_at
        """,
        *columns(statuses, LotStatusRecord),
    )


async def lines_of(connection: Connection, order_ids: Sequence[str]) -> dict[str, list[Line]]:
    rows = await connection.fetch(
        """
        SELECT order_id, line_no, sku, uom, ordered, shipped FROM order_lines
        WHERE order_id = ANY($1::text[]) ORDER BY order_id, line_no
        """,
        list(order_ids),
    )
    return _per_order(order_ids, rows, Line)


async def orders_allocated_from(connection: Connection, lot_ids: Sequence[UUID]) -> list[str]:
    """The orders whose stored allocation takes from these lots, oldest id first."""
    rows = await connection.fetch(
        "SELECT DISTINCT order_id FROM allocations WHERE lot_id = ANY($1::uuid[]) ORDER BY 1",
        list(lot_ids),
    )
    return [row["order_id"] for row in rows]


async def allocations_of(
    connection: Connection, order_ids: Sequence[str]
) -> dict[str, list[Allocated]]:
    rows = await connection.fetch(
        """
        SELECT order_id, line_no, sku, lot_id, lot_code, quantity, uom, expiry_date, gtin
        FROM allocations WHERE order_id = ANY($1::text[])
        """,
        list(order_ids),
    )
    return _per_order(order_ids, rows, Allocated)


async def shipped_newest_first(
    connection: Connection, order_ids: Sequence[str]
) -> dict[str, list[ShipLine]]:
    """Each order's shipped lines, the newest shipment's first. An order's shipments are made
    one at a time under its lock, and announced on `order-shipped` in that order."""
    rows = await connection.fetch(
        """
        SELECT s.order_id, l.line_no, l.sku, l.lot_id, l.lot_code, l.quantity, l.uom
        FROM shipments s JOIN shipment_lines l USING (shipment_id)
        WHERE s.order_id = ANY($1::text[])
        ORDER BY s.order_id, s.shipped_at DESC, s.created_at DESC, s.shipment_id DESC,
                 l.line_no, l.lot_id
        """,
        list(order_ids),
    )
    return _per_order(order_ids, rows, ShipLine)


def _per_order(
    order_ids: Sequence[str], rows: Sequence[Record], kind: Callable[..., T]
) -> dict[str, list[T]]:
    """Rows keyed by `order_id` as records of `kind`, grouped per order; every order asked
    for has a list, empty when it has no rows."""
    result: dict[str, list[T]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        values = dict(row)
        result[values.pop("order_id")].append(kind(**values))
    return result


async def record_shipments(connection: Connection, shipments: Sequence[Shipment]) -> None:
    """Store shipments and their lines, and add to the order lines' shipped quantities, in one
    statement."""
    if not shipments:
        return
    lines = [
        built_from(ShipmentLineRecord, line, shipment_id=s.shipment_id)
        for s in shipments
        for line in s.lines
    ]
    await connection.execute(
        """
        WITH stored AS (
            INSERT INTO shipments (shipment_id, order_id, shipped_at, shipped_by)
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
        ), stored_lines AS (
            INSERT INTO shipment_lines (line_no, sku, lot_id, lot_code, quantity, uom,
                                        shipment_id)
            SELECT * FROM unnest($5::int[], $6::text[], $7::uuid[], $8::text[], $9::numeric[],
                                 $10::text[], $11::text[])
        )
        UPDATE order_lines l SET shipped = l.shipped + d.quantity
        FROM unnest($12::text[], $13::int[], $14::numeric[]) AS d(order_id, line_no, quantity)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
          AND l.order_id = ANY($12::text[])  -- through the key, not a hash of the whole table
        """,
        *columns(shipments, StoredShipment),
        *columns(lines, ShipmentLineRecord),
        *columns(_shipped_per_line(shipments), ShippedQuantity),
    )


def _shipped_per_line(shipments: Sequence[Shipment]) -> list[ShippedQuantity]:
    per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for shipment in shipments:
        for line in shipment.lines:
            per_line[(shipment.order_id, line.line_no)] += line.quantity
    return [ShippedQuantity(*key, quantity) for key, quantity in per_line.items()]


async def mark_shipped(connection: Connection, order_ids: Sequence[str]) -> None:
    """The domain found these orders shipped in full."""
    await connection.execute(
        "UPDATE orders SET status = $2, updated_at = now() WHERE order_id = ANY($1::text[])",
        sorted(set(order_ids)),
        OrderStatus.SHIPPED.value,
    )


async def settle_allocations(connection: Connection, order_id: str, settled: Settlement) -> None:
    """Write what a shipment left of an order's allocation, as the domain settled it."""
    await connection.execute(
        """
        WITH gone AS (
            DELETE FROM allocations a USING unnest($4::int[], $5::uuid[]) AS d(line_no, lot_id)
            WHERE a.order_id = $1 AND a.line_no = d.line_no AND a.lot_id = d.lot_id
        )
        UPDATE allocations a SET quantity = d.quantity
        FROM unnest($2::int[], $3::uuid[], $6::numeric[]) AS d(line_no, lot_id, quantity)
        WHERE a.order_id = $1 AND a.line_no = d.line_no AND a.lot_id = d.lot_id
        """,
        order_id,
        [a.line_no for a in settled.reduced],
        [a.lot_id for a in settled.reduced],
        [line_no for line_no, _ in settled.used_up],
        [lot_id for _, lot_id in settled.used_up],
        [a.quantity for a in settled.reduced],
    )


_SHIPMENT_COLUMNS = "shipment_id, order_id, shipped_at, shipped_by"


async def find_shipment(connection: Connection, shipment_id: str) -> StoredShipment | None:
    row = await connection.fetchrow(
        f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE shipment_id = $1", shipment_id
    )
    return row_as(row, StoredShipment)


async def shipment_lines(
    connection: Connection, shipment_ids: Sequence[str]
) -> list[ShipmentLineRecord]:
    rows = await connection.fetch(
        """
        SELECT shipment_id, line_no, lot_id, lot_code, sku, quantity, uom FROM shipment_lines
        WHERE shipment_id = ANY($1::text[]) ORDER BY shipment_id, line_no, lot_code
        """,
        list(shipment_ids),
    )
    return rows_as(rows, ShipmentLineRecord)


async def get_order(connection: Connection, order_id: str) -> OrderRecord | None:
    row = await connection.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id
    )
    return None if row is None else _order(row)


async def backorders_of(connection: Connection, order_id: str) -> list[BackorderRecord]:
    rows = await connection.fetch(
        "SELECT order_id, line_no, sku, quantity, uom, reason FROM backorders"
        " WHERE order_id = $1 ORDER BY line_no",
        order_id,
    )
    return rows_as(rows, BackorderRecord)


async def shipments_of(connection: Connection, order_id: str) -> list[StoredShipment]:
    rows = await connection.fetch(
        f"SELECT {_SHIPMENT_COLUMNS} FROM shipments WHERE order_id = $1 ORDER BY shipped_at",
        order_id,
    )
    return rows_as(rows, StoredShipment)


# ------------------------------------------------------------------ onboarding import


# One shipment import batch at a time: two runs of one file cannot both take a row key.
SHIPMENT_IMPORTS = ImportLedger(lock_name="shipment-import", table="imported_shipment_rows")


async def record_imported_shipments(
    connection: Connection, rows: Sequence[ImportedShipmentRecord]
) -> None:
    await connection.execute(
        """
        INSERT INTO imported_shipment_rows (row_key, shipment_id, order_id, line_no, customer_id,
                                            sku, lot_id, lot_code, quantity, uom, shipped_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
                             $6::text[], $7::uuid[], $8::text[], $9::numeric[], $10::text[],
                             $11::timestamptz[])
        """,
        *columns(rows, ImportedShipmentRecord),
    )
