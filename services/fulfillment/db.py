"""Every SQL statement of the fulfillment service."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.fulfillment.domain import Allocated, Line, ShipLine
from shared.runtime.database import Connection, Record


async def store_orders(
    connection: Connection, orders: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]
) -> list[tuple[str, bool]]:
    """Store orders and their lines in one statement. An order that only an allocation or a
    cancellation named so far is completed. Returns (order id, was waiting) for each order
    stored now: one that was waiting may have an allocation to ship."""
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
        SELECT order_id, was_waiting FROM stored
        """,
        [o["order_id"] for o in orders],
        [o["customer_id"] for o in orders],
        [o["customer"] for o in orders],
        [o["placed_at"] for o in orders],
        *[
            [line[name] for line in lines]
            for name in ["order_id", "line_no", "sku", "uom", "quantity"]
        ],
    )
    return [(row["order_id"], row["was_waiting"]) for row in rows]


async def claim_orders(connection: Connection, order_ids: Iterable[str]) -> dict[str, Record]:
    """Lock these orders (creating the ones not known yet), in one statement, in order id
    order: concurrent batches lock their common orders in the same order, so never deadlock."""
    rows = await connection.fetch(
        """
        WITH created AS (
            INSERT INTO orders (order_id) SELECT unnest($1::text[])
            ON CONFLICT DO NOTHING
            RETURNING order_id, customer_id, customer, status, allocation_revision
        )
        SELECT order_id, customer_id, customer, status, allocation_revision FROM orders
        WHERE order_id = ANY($1::text[])
        ORDER BY order_id
        FOR UPDATE
        """,
        sorted(set(order_ids)),
    )
    found = {row["order_id"]: row for row in rows}
    missing = sorted(set(order_ids) - set(found))
    if missing:  # created by this statement, so not visible to its own SELECT
        for row in await connection.fetch(
            "SELECT order_id, customer_id, customer, status, allocation_revision FROM orders"
            " WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE",
            missing,
        ):
            found[row["order_id"]] = row
    return found


async def lock_orders(connection: Connection, order_ids: Iterable[str]) -> list[Record]:
    return await connection.fetch(
        """
        SELECT order_id, customer_id, customer, status, allocation_revision
        FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE
        """,
        sorted(set(order_ids)),
    )


async def replace_allocations(
    connection: Connection,
    order_ids: Sequence[str],
    revisions: Sequence[int | None],
    allocated_at: Sequence[datetime | None],
    allocations: Sequence[dict[str, Any]],
    backorders: Sequence[dict[str, Any]],
    shipped_in_full: Sequence[bool] | None = None,
) -> None:
    """Put these orders' allocation and backorders in place of what they had; mark the ones
    a shipment in this transaction completed."""
    await connection.execute(
        """
        WITH cleared AS (
            DELETE FROM allocations WHERE order_id = ANY($1::text[])
        ), cleared_backorders AS (
            DELETE FROM backorders WHERE order_id = ANY($1::text[])
        )
        UPDATE orders o SET allocation_revision = coalesce(d.revision, o.allocation_revision + 1),
                            allocated_at = d.allocated_at, updated_at = now(),
                            status = CASE WHEN d.complete AND o.status = 'open' THEN 'shipped'
                                          ELSE o.status END
        FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::bool[])
            AS d(order_id, revision, allocated_at, complete)
        WHERE o.order_id = d.order_id
        """,
        list(order_ids),
        list(revisions),
        list(allocated_at),
        list(shipped_in_full) if shipped_in_full is not None else [False] * len(order_ids),
    )
    if not allocations and not backorders:
        return
    await connection.execute(
        """
        WITH stored AS (
            INSERT INTO allocations (order_id, line_no, lot_id, lot_code, sku, quantity, uom,
                                     expiry_date, location, gtin)
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                                 $6::numeric[], $7::text[], $8::date[], $9::text[], $10::text[])
            ON CONFLICT (order_id, line_no, lot_id) DO UPDATE
                SET quantity = allocations.quantity + EXCLUDED.quantity
        )
        INSERT INTO backorders (order_id, line_no, sku, quantity, uom, reason)
        SELECT * FROM unnest($11::text[], $12::int[], $13::text[], $14::numeric[], $15::text[],
                             $16::text[])
        ON CONFLICT (order_id, line_no) DO UPDATE SET quantity = EXCLUDED.quantity
        """,
        *[
            [a[name] for a in allocations]
            for name in [
                "order_id",
                "line_no",
                "lot_id",
                "lot_code",
                "sku",
                "quantity",
                "uom",
                "expiry_date",
                "location",
                "gtin",
            ]
        ],
        *[
            [b[name] for b in backorders]
            for name in ["order_id", "line_no", "sku", "quantity", "uom", "reason"]
        ],
    )


async def cancel_orders(connection: Connection, cancellations: dict[str, str | None]) -> list[str]:
    rows = await connection.fetch(
        """
        INSERT INTO orders AS o (order_id, status, cancel_reason)
        SELECT id, 'cancelled', reason FROM unnest($1::text[], $2::text[]) AS d(id, reason)
        ON CONFLICT (order_id) DO UPDATE
            SET status = 'cancelled', cancel_reason = EXCLUDED.cancel_reason, updated_at = now()
        WHERE o.status = 'open'
        RETURNING order_id
        """,
        list(cancellations),
        list(cancellations.values()),
    )
    return [row["order_id"] for row in rows]


async def block_lots(
    connection: Connection, lots: Sequence[tuple[UUID, str, str]], reason: str
) -> None:
    await connection.execute(
        """
        INSERT INTO blocked_lots (lot_id, lot_code, recall_id, reason)
        SELECT lot_id, lot_code, recall_id, $4 FROM unnest($1::uuid[], $2::text[], $3::text[])
            AS d(lot_id, lot_code, recall_id)
        ON CONFLICT (lot_id) DO NOTHING
        """,
        [lot_id for lot_id, _, _ in lots],
        [code for _, code, _ in lots],
        [recall for _, _, recall in lots],
        reason,
    )


async def blocked_among(connection: Connection, lot_ids: Iterable[UUID]) -> dict[UUID, str]:
    rows = await connection.fetch(
        "SELECT lot_id, reason FROM blocked_lots WHERE lot_id = ANY($1::uuid[])",
        sorted(set(lot_ids)),
    )
    return {row["lot_id"]: row["reason"] for row in rows}


async def shippable_orders(connection: Connection, order_ids: Sequence[str]) -> list[str]:
    """Orders that are open, complete (the order itself arrived) and have something allocated."""
    rows = await connection.fetch(
        """
        SELECT o.order_id FROM orders o
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open' AND o.customer_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM allocations a WHERE a.order_id = o.order_id)
        ORDER BY o.order_id
        """,
        list(order_ids),
    )
    return [row["order_id"] for row in rows]


async def lines_of(connection: Connection, order_ids: Sequence[str]) -> dict[str, list[Line]]:
    rows = await connection.fetch(
        """
        SELECT order_id, line_no, sku, uom, ordered, shipped FROM order_lines
        WHERE order_id = ANY($1::text[]) ORDER BY order_id, line_no
        """,
        list(order_ids),
    )
    result: dict[str, list[Line]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        result[row["order_id"]].append(
            Line(row["line_no"], row["sku"], row["uom"], row["ordered"], row["shipped"])
        )
    return result


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
    result: dict[str, list[Allocated]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        result[row["order_id"]].append(
            Allocated(
                row["line_no"],
                row["sku"],
                row["lot_id"],
                row["lot_code"],
                row["quantity"],
                row["uom"],
                row["expiry_date"],
                row["gtin"],
            )
        )
    return result


async def record_shipments(
    connection: Connection,
    shipments: Sequence[tuple[str, str, datetime, str, Sequence[ShipLine]]],
    *,
    close_orders: bool = True,
) -> None:
    """Store shipments (id, order, when, by whom, lines) and add to the lines' shipped
    quantities in one statement; then (unless the caller does it) mark the orders that
    shipped in full."""
    if not shipments:
        return
    flat = [(s[0], s[1], line) for s in shipments for line in s[4]]
    per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for _, order_id, line in flat:
        per_line[(order_id, line.line_no)] += line.quantity
    await connection.execute(
        """
        WITH stored AS (
            INSERT INTO shipments (shipment_id, order_id, shipped_at, shipped_by)
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
        ), stored_lines AS (
            INSERT INTO shipment_lines (shipment_id, line_no, lot_id, lot_code, sku, quantity,
                                        uom)
            SELECT * FROM unnest($5::text[], $6::int[], $7::uuid[], $8::text[], $9::text[],
                                 $10::numeric[], $11::text[])
        )
        UPDATE order_lines l SET shipped = l.shipped + d.quantity
        FROM unnest($12::text[], $13::int[], $14::numeric[]) AS d(order_id, line_no, quantity)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        [s[0] for s in shipments],
        [s[1] for s in shipments],
        [s[2] for s in shipments],
        [s[3] for s in shipments],
        [shipment_id for shipment_id, _, _ in flat],
        [line.line_no for _, _, line in flat],
        [line.lot_id for _, _, line in flat],
        [line.lot_code for _, _, line in flat],
        [line.sku for _, _, line in flat],
        [line.quantity for _, _, line in flat],
        [line.uom for _, _, line in flat],
        [order_id for order_id, _ in per_line],
        [line_no for _, line_no in per_line],
        list(per_line.values()),
    )
    if not close_orders:
        return
    await connection.execute(
        """
        UPDATE orders o SET status = 'shipped', updated_at = now()
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open'
          AND NOT EXISTS (SELECT 1 FROM order_lines l
                          WHERE l.order_id = o.order_id AND l.shipped < l.ordered)
        """,
        sorted({s[1] for s in shipments}),
    )


async def take_from_allocations(
    connection: Connection, order_id: str, lines: Sequence[ShipLine]
) -> None:
    """What a shipment took is no longer allocated to its order."""
    per_allocation: dict[tuple[int, UUID], Decimal] = defaultdict(Decimal)
    for line in lines:
        per_allocation[(line.line_no, line.lot_id)] += line.quantity
    await connection.execute(
        """
        WITH d AS (
            SELECT * FROM unnest($2::int[], $3::uuid[], $4::numeric[])
                AS d(line_no, lot_id, quantity)
        ), gone AS (
            DELETE FROM allocations a USING d
            WHERE a.order_id = $1 AND a.line_no = d.line_no AND a.lot_id = d.lot_id
              AND a.quantity <= d.quantity
        )
        UPDATE allocations a SET quantity = a.quantity - d.quantity FROM d
        WHERE a.order_id = $1 AND a.line_no = d.line_no AND a.lot_id = d.lot_id
          AND a.quantity > d.quantity
        """,
        order_id,
        [line_no for line_no, _ in per_allocation],
        [lot_id for _, lot_id in per_allocation],
        list(per_allocation.values()),
    )


async def find_shipment(connection: Connection, shipment_id: str) -> Record | None:
    return await connection.fetchrow(
        "SELECT shipment_id, order_id, shipped_at, shipped_by FROM shipments"
        " WHERE shipment_id = $1",
        shipment_id,
    )


async def shipment_lines(connection: Connection, shipment_ids: Sequence[str]) -> list[Record]:
    return await connection.fetch(
        """
        SELECT shipment_id, line_no, lot_id, lot_code, sku, quantity, uom FROM shipment_lines
        WHERE shipment_id = ANY($1::text[]) ORDER BY shipment_id, line_no, lot_code
        """,
        list(shipment_ids),
    )


async def get_order(connection: Connection, order_id: str) -> Record | None:
    return await connection.fetchrow(
        """
        SELECT order_id, customer_id, customer, placed_at, status, allocation_revision,
               allocated_at, cancel_reason
        FROM orders WHERE order_id = $1
        """,
        order_id,
    )


async def backorders_of(connection: Connection, order_id: str) -> list[Record]:
    return await connection.fetch(
        "SELECT line_no, sku, quantity, uom, reason FROM backorders"
        " WHERE order_id = $1 ORDER BY line_no",
        order_id,
    )


async def shipments_of(connection: Connection, order_id: str) -> list[Record]:
    return await connection.fetch(
        "SELECT shipment_id, shipped_at, shipped_by FROM shipments"
        " WHERE order_id = $1 ORDER BY shipped_at",
        order_id,
    )
