"""Every SQL statement of the receiving service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from shared.runtime.database import Connection, Record

LOT_COLUMNS = """
    lot_id, sku, lot_code, gtin, uom, supplier_id, supplier_name, supplier_lot_code,
    production_date, expiry_date, best_before_date, unit_cost, currency,
    received_quantity, consumed_quantity, first_received_at, last_received_at
"""


async def lock_idempotency_keys(connection: Connection, keys: list[str]) -> None:
    """Serialise requests that carry the same receipt id or idempotency key: the second sees
    the first's answer. Both keys are locked, in one order, so two requests sharing either
    one never both insert, and never deadlock."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(key, 7))"
        " FROM (SELECT DISTINCT key FROM unnest($1::text[]) AS key ORDER BY key) AS keys",
        keys,
    )


async def find_receipt(
    connection: Connection, *, receipt_id: str | None, idempotency_key: str | None
) -> Record | None:
    return await connection.fetchrow(
        "SELECT receipt_id, request_hash, response FROM receipts"
        " WHERE receipt_id = $1 OR idempotency_key = $2 LIMIT 1",
        receipt_id,
        idempotency_key,
    )


async def next_sequence(connection: Connection, sku: str, day: date) -> int:
    sequence: int = await connection.fetchval(
        """
        INSERT INTO lot_code_sequences (sku, day, last_seq) VALUES ($1, $2, 1)
        ON CONFLICT (sku, day) DO UPDATE SET last_seq = lot_code_sequences.last_seq + 1
        RETURNING last_seq
        """,
        sku,
        day,
    )
    return sequence


async def lock_lot_by_code(connection: Connection, sku: str, lot_code: str) -> Record | None:
    return await connection.fetchrow(
        f"SELECT {LOT_COLUMNS} FROM lots WHERE sku = $1 AND lot_code = $2 FOR UPDATE",
        sku,
        lot_code,
    )


async def insert_lot(connection: Connection, lot: dict[str, Any]) -> bool:
    """Create the lot; False when a concurrent receipt created the same (sku, lot_code) first."""
    inserted = await connection.fetchval(
        """
        INSERT INTO lots (lot_id, sku, lot_code, gtin, uom, supplier_id, supplier_name,
                          supplier_lot_code, production_date, expiry_date, best_before_date,
                          unit_cost, currency, received_quantity, first_received_at,
                          last_received_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
        ON CONFLICT (sku, lot_code) DO NOTHING
        RETURNING true
        """,
        lot["lot_id"],
        lot["sku"],
        lot["lot_code"],
        lot["gtin"],
        lot["uom"],
        lot["supplier_id"],
        lot["supplier_name"],
        lot["supplier_lot_code"],
        lot["production_date"],
        lot["expiry_date"],
        lot["best_before_date"],
        lot["unit_cost"],
        lot["currency"],
        lot["quantity"],
        lot["received_at"],
    )
    return bool(inserted)


async def add_to_lot(
    connection: Connection,
    lot_id: UUID,
    *,
    quantity: Decimal,
    received_at: datetime,
    production_date: date | None,
    expiry_date: date | None,
    best_before_date: date | None,
    unit_cost: Decimal | None,
    currency: str | None,
    gtin: str | None,
) -> None:
    await connection.execute(
        """
        UPDATE lots SET received_quantity = received_quantity + $2,
                        last_received_at = greatest(last_received_at, $3),
                        production_date = $4, expiry_date = $5, best_before_date = $6,
                        unit_cost = $7, currency = $8, gtin = coalesce(gtin, $9)
        WHERE lot_id = $1
        """,
        lot_id,
        quantity,
        received_at,
        production_date,
        expiry_date,
        best_before_date,
        unit_cost,
        currency,
        gtin,
    )


async def lock_input_lots(
    connection: Connection, lot_ids: list[UUID], codes: list[tuple[str, str]]
) -> list[Record]:
    """Lock the input lots in lot_id order, so concurrent production receipts cannot deadlock."""
    return await connection.fetch(
        f"""
        SELECT {LOT_COLUMNS}, received_quantity - consumed_quantity AS available FROM lots
        WHERE lot_id = ANY($1::uuid[])
           OR (sku, lot_code) IN (SELECT * FROM unnest($2::text[], $3::text[]))
        ORDER BY lot_id
        FOR UPDATE
        """,
        lot_ids,
        [sku for sku, _ in codes],
        [code for _, code in codes],
    )


async def consume(connection: Connection, lot_id: UUID, quantity: Decimal) -> None:
    await connection.execute(
        "UPDATE lots SET consumed_quantity = consumed_quantity + $2 WHERE lot_id = $1",
        lot_id,
        quantity,
    )


async def insert_receipt(
    connection: Connection,
    *,
    receipt_id: str,
    idempotency_key: str | None,
    request_hash: str,
    lot_id: UUID,
    quantity: Decimal,
    uom: str,
    location: str,
    purchase_order: str | None,
    received_at: datetime,
    response: dict[str, Any],
    inputs: list[tuple[UUID, Decimal, str]],
) -> None:
    await connection.execute(
        """
        INSERT INTO receipts (receipt_id, idempotency_key, request_hash, lot_id, quantity, uom,
                              location, purchase_order, received_at, response)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
        """,
        receipt_id,
        idempotency_key,
        request_hash,
        lot_id,
        quantity,
        uom,
        location,
        purchase_order,
        received_at,
        response,
    )
    if inputs:
        await connection.execute(
            """
            INSERT INTO receipt_inputs (receipt_id, input_lot_id, quantity, uom)
            SELECT $1, * FROM unnest($2::uuid[], $3::numeric[], $4::text[])
            """,
            receipt_id,
            [lot_id for lot_id, _, _ in inputs],
            [quantity for _, quantity, _ in inputs],
            [uom for _, _, uom in inputs],
        )


async def get_lot(connection: Connection, lot_id: UUID) -> Record | None:
    return await connection.fetchrow(f"SELECT {LOT_COLUMNS} FROM lots WHERE lot_id = $1", lot_id)


async def find_lots(
    connection: Connection, *, lot_code: str | None, sku: str | None, limit: int
) -> list[Record]:
    return await connection.fetch(
        f"""
        SELECT {LOT_COLUMNS} FROM lots
        WHERE ($1::text IS NULL OR lot_code = $1) AND ($2::text IS NULL OR sku = $2)
        ORDER BY first_received_at DESC, lot_id
        LIMIT $3
        """,
        lot_code,
        sku,
        limit,
    )


# ------------------------------------------------------------------ products


async def lock_gtins(connection: Connection, gtins: list[str]) -> list[Record]:
    return await connection.fetch(
        "SELECT gtin, sku FROM product_gtins WHERE gtin = ANY($1::text[]) FOR UPDATE", gtins
    )


async def put_product(
    connection: Connection, sku: str, *, description: str | None, uom: str, gtins: list[str]
) -> None:
    await connection.execute(
        """
        INSERT INTO products (sku, description, uom) VALUES ($1, $2, $3)
        ON CONFLICT (sku) DO UPDATE
            SET description = EXCLUDED.description, uom = EXCLUDED.uom, updated_at = now()
        """,
        sku,
        description,
        uom,
    )
    await connection.execute(
        "DELETE FROM product_gtins WHERE sku = $1 AND gtin <> ALL($2::text[])", sku, gtins
    )
    await connection.execute(
        """
        INSERT INTO product_gtins (gtin, sku) SELECT unnest($2::text[]), $1
        ON CONFLICT (gtin) DO NOTHING
        """,
        sku,
        gtins,
    )


async def get_product(connection: Connection, sku: str) -> Record | None:
    return await connection.fetchrow(
        """
        SELECT p.sku, p.description, p.uom, p.updated_at,
               coalesce(array_agg(g.gtin ORDER BY g.gtin) FILTER (WHERE g.gtin IS NOT NULL),
                        '{}') AS gtins
        FROM products p LEFT JOIN product_gtins g USING (sku)
        WHERE p.sku = $1
        GROUP BY p.sku
        """,
        sku,
    )


async def sku_for_gtin(connection: Connection, gtin: str) -> str | None:
    sku: str | None = await connection.fetchval(
        "SELECT sku FROM product_gtins WHERE gtin = $1", gtin
    )
    return sku
