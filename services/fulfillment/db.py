"""Every SQL statement of the fulfillment service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.fulfillment.domain import Allocated, Line, ShipLine
from shared.runtime.database import Connection, Record


async def upsert_orders(connection: Connection, orders: Sequence[dict[str, Any]]) -> list[str]:
    """Store orders; one that only an allocation or cancellation named so far is completed.
    Returns the ids stored or completed now."""
    rows = await connection.fetch(
        """
        INSERT INTO orders AS o (order_id, customer_id, customer, placed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[])
        ON CONFLICT (order_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, customer = EXCLUDED.customer,
            placed_at = EXCLUDED.placed_at, updated_at = now()
        WHERE o.customer_id IS NULL
        RETURNING order_id
        """,
        [o["order_id"] for o in orders],
        [o["customer_id"] for o in orders],
        [o["customer"] for o in orders],
        [o["placed_at"] for o in orders],
    )
    return [row["order_id"] for row in rows]


async def insert_lines(connection: Connection, lines: Sequence[dict[str, Any]]) -> None:
    if not lines:
        return
    await connection.execute(
        """
        INSERT INTO order_lines (order_id, line_no, sku, uom, ordered)
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::numeric[])
        ON CONFLICT DO NOTHING
        """,
        [line["order_id"] for line in lines],
        [line["line_no"] for line in lines],
        [line["sku"] for line in lines],
        [line["uom"] for line in lines],
        [line["quantity"] for line in lines],
    )


async def ensure_orders(connection: Connection, order_ids: Iterable[str]) -> None:
    await connection.execute(
        "INSERT INTO orders (order_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        sorted(set(order_ids)),
    )


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
) -> None:
    await connection.execute(
        "DELETE FROM allocations WHERE order_id = ANY($1::text[])", list(order_ids)
    )
    await connection.execute(
        "DELETE FROM backorders WHERE order_id = ANY($1::text[])", list(order_ids)
    )
    await connection.execute(
        """
        UPDATE orders o SET allocation_revision = coalesce(d.revision, o.allocation_revision + 1),
                            allocated_at = d.allocated_at, updated_at = now()
        FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS d(order_id, revision, allocated_at)
        WHERE o.order_id = d.order_id
        """,
        list(order_ids),
        list(revisions),
        list(allocated_at),
    )
    if allocations:
        await connection.execute(
            """
            INSERT INTO allocations (order_id, line_no, lot_id, lot_code, sku, quantity, uom,
                                     expiry_date, location)
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                                 $6::numeric[], $7::text[], $8::date[], $9::text[])
            ON CONFLICT (order_id, line_no, lot_id) DO UPDATE
                SET quantity = allocations.quantity + EXCLUDED.quantity
            """,
            *[
                [a[name] for a in allocations]
                for name in (
                    [
                        "order_id",
                        "line_no",
                        "lot_id",
                        "lot_code",
                        "sku",
                        "quantity",
                        "uom",
                        "expiry_date",
                        "location",
                    ]
                )
            ],
        )
    if backorders:
        await connection.execute(
            """
            INSERT INTO backorders (order_id, line_no, sku, quantity, uom, reason)
            SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::numeric[], $5::text[],
                                 $6::text[])
            ON CONFLICT (order_id, line_no) DO UPDATE SET quantity = EXCLUDED.quantity
            """,
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
        SELECT order_id, line_no, sku, lot_id, lot_code, quantity, uom, expiry_date
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
            )
        )
    return result


async def record_shipments(
    connection: Connection,
    shipments: Sequence[tuple[str, str, datetime, str, Sequence[ShipLine]]],
) -> None:
    """Store shipments (id, order, when, by whom, lines), add to the lines' shipped
    quantities, take the shipped part off the allocations, and close fulfilled orders."""
    if not shipments:
        return
    await connection.execute(
        """
        INSERT INTO shipments (shipment_id, order_id, shipped_at, shipped_by)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])
        """,
        [s[0] for s in shipments],
        [s[1] for s in shipments],
        [s[2] for s in shipments],
        [s[3] for s in shipments],
    )
    flat = [(s[0], s[1], line) for s in shipments for line in s[4]]
    await connection.execute(
        """
        INSERT INTO shipment_lines (shipment_id, line_no, lot_id, lot_code, sku, quantity, uom)
        SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                             $6::numeric[], $7::text[])
        """,
        [shipment_id for shipment_id, _, _ in flat],
        [line.line_no for _, _, line in flat],
        [line.lot_id for _, _, line in flat],
        [line.lot_code for _, _, line in flat],
        [line.sku for _, _, line in flat],
        [line.quantity for _, _, line in flat],
        [line.uom for _, _, line in flat],
    )
    per_line: dict[tuple[str, int], Decimal] = {}
    per_allocation: dict[tuple[str, int, UUID], Decimal] = {}
    for _, order_id, line in flat:
        per_line[(order_id, line.line_no)] = (
            per_line.get((order_id, line.line_no), Decimal(0)) + line.quantity
        )
        key = (order_id, line.line_no, line.lot_id)
        per_allocation[key] = per_allocation.get(key, Decimal(0)) + line.quantity
    await connection.execute(
        """
        UPDATE order_lines l SET shipped = l.shipped + d.quantity
        FROM unnest($1::text[], $2::int[], $3::numeric[]) AS d(order_id, line_no, quantity)
        WHERE l.order_id = d.order_id AND l.line_no = d.line_no
        """,
        [k[0] for k in per_line],
        [k[1] for k in per_line],
        list(per_line.values()),
    )
    arguments = (
        [k[0] for k in per_allocation],
        [k[1] for k in per_allocation],
        [k[2] for k in per_allocation],
        list(per_allocation.values()),
    )
    await connection.execute(
        """
        DELETE FROM allocations a
        USING unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
        WHERE a.order_id = d.order_id AND a.line_no = d.line_no AND a.lot_id = d.lot_id
          AND a.quantity <= d.quantity
        """,
        *arguments,
    )
    await connection.execute(
        """
        UPDATE allocations a SET quantity = a.quantity - d.quantity
        FROM unnest($1::text[], $2::int[], $3::uuid[], $4::numeric[])
            AS d(order_id, line_no, lot_id, quantity)
        WHERE a.order_id = d.order_id AND a.line_no = d.line_no AND a.lot_id = d.lot_id
          AND a.quantity > d.quantity
        """,
        *arguments,
    )
    await connection.execute(
        """
        UPDATE orders o SET status = 'shipped', updated_at = now()
        WHERE o.order_id = ANY($1::text[]) AND o.status = 'open'
          AND NOT EXISTS (SELECT 1 FROM order_lines l
                          WHERE l.order_id = o.order_id AND l.shipped < l.ordered)
        """,
        sorted({s[1] for s in shipments}),
    )


async def find_shipment(connection: Connection, shipment_id: str) -> Record | None:
    return await connection.fetchrow(
        "SELECT shipment_id, order_id, shipped_at FROM shipments WHERE shipment_id = $1",
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
