"""Every SQL statement of the receiving service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from decimal import Decimal
from uuid import UUID

from services.receiving.domain import InputLot
from services.receiving.records import (
    LOT_COLUMNS,
    GtinOwner,
    ImportedRow,
    LotRecord,
    ProductRecord,
    ReceiptInput,
    ReceiptRecord,
    StoredReceipt,
)
from services.receiving.schemas import FoundLot, ReceiptView
from shared.runtime.database import Connection, Record, columns, row_as, rows_as
from shared.runtime.imports import ImportLedger


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
) -> StoredReceipt | None:
    row = await connection.fetchrow(
        "SELECT receipt_id, request_hash, response FROM receipts"
        " WHERE receipt_id = $1 OR idempotency_key = $2 LIMIT 1",
        receipt_id,
        idempotency_key,
    )
    if row is None:
        return None
    view = ReceiptView.model_validate(row["response"])
    return StoredReceipt(row["receipt_id"], row["request_hash"], view)


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


def _lot(row: Record | None) -> LotRecord | None:
    return row_as(row, LotRecord)


async def lock_lot_by_code(connection: Connection, sku: str, lot_code: str) -> LotRecord | None:
    return _lot(
        await connection.fetchrow(
            f"SELECT {LOT_COLUMNS} FROM lots WHERE sku = $1 AND lot_code = $2 FOR UPDATE",
            sku,
            lot_code,
        )
    )


async def insert_lot(connection: Connection, lot: LotRecord) -> bool:
    """Create the lot; False when a concurrent receipt created the same (sku, lot_code) first."""
    return await insert_lots(connection, [lot]) == 1


async def insert_lots(connection: Connection, lots: Sequence[LotRecord]) -> int:
    """Create these lots, leaving out any (sku, lot_code) that exists: how many were created."""
    inserted: int = await connection.fetchval(
        f"""
        WITH created AS (
            INSERT INTO lots ({LOT_COLUMNS}) SELECT * FROM unnest(
                $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::date[], $10::date[], $11::date[], $12::numeric[],
                $13::text[], $14::numeric[], $15::numeric[], $16::timestamptz[],
                $17::timestamptz[])
            ON CONFLICT (sku, lot_code) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM created
        """,
        *columns(lots, LotRecord),
    )
    return inserted


async def update_lot(connection: Connection, lot: LotRecord) -> None:
    """Write what a re-receipt changed on a lot this transaction holds locked."""
    await connection.execute(
        """
        UPDATE lots SET gtin = $2, production_date = $3, expiry_date = $4,
                        best_before_date = $5, unit_cost = $6, currency = $7,
                        received_quantity = $8, last_received_at = $9
        WHERE lot_id = $1
        """,
        lot.lot_id,
        lot.gtin,
        lot.production_date,
        lot.expiry_date,
        lot.best_before_date,
        lot.unit_cost,
        lot.currency,
        lot.received_quantity,
        lot.last_received_at,
    )


async def lock_input_lots(
    connection: Connection, lot_ids: list[UUID], codes: list[tuple[str, str]]
) -> list[InputLot]:
    """Lock the input lots in lot_id order, so concurrent production receipts cannot deadlock."""
    rows = await connection.fetch(
        """
        SELECT lot_id, lot_code, sku, uom, received_quantity - consumed_quantity AS available
        FROM lots
        WHERE lot_id = ANY($1::uuid[])
           OR (sku, lot_code) IN (SELECT * FROM unnest($2::text[], $3::text[]))
        ORDER BY lot_id
        FOR UPDATE
        """,
        lot_ids,
        [sku for sku, _ in codes],
        [code for _, code in codes],
    )
    return rows_as(rows, InputLot)


async def consume(connection: Connection, lot_id: UUID, quantity: Decimal) -> None:
    await connection.execute(
        "UPDATE lots SET consumed_quantity = consumed_quantity + $2 WHERE lot_id = $1",
        lot_id,
        quantity,
    )


# The receipt's columns before `response`, which is stored as JSON.
_RECEIPT_SCALARS = [field.name for field in fields(ReceiptRecord) if field.name != "response"]


async def insert_receipt(
    connection: Connection, receipt: ReceiptRecord, inputs: list[ReceiptInput]
) -> None:
    await connection.execute(
        """
        INSERT INTO receipts (receipt_id, idempotency_key, request_hash, lot_id, quantity, uom,
                              location, purchase_order, received_at, response)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
        """,
        *[getattr(receipt, name) for name in _RECEIPT_SCALARS],
        receipt.response.model_dump(mode="json"),
    )
    if inputs:
        await connection.execute(
            """
            INSERT INTO receipt_inputs (receipt_id, input_lot_id, quantity, uom)
            SELECT $1, * FROM unnest($2::uuid[], $3::numeric[], $4::text[])
            """,
            receipt.receipt_id,
            *columns(inputs, ReceiptInput),
        )


async def insert_receipts(connection: Connection, receipts: Sequence[ReceiptRecord]) -> None:
    """Many receipts without inputs (an import), in one statement."""
    await connection.execute(
        """
        INSERT INTO receipts (receipt_id, idempotency_key, request_hash, lot_id, quantity, uom,
                              location, purchase_order, received_at, response)
        SELECT receipt_id, idempotency_key, request_hash, lot_id, quantity, uom, location,
               purchase_order, received_at, response::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::numeric[], $6::text[],
                    $7::text[], $8::text[], $9::timestamptz[], $10::text[])
            AS r(receipt_id, idempotency_key, request_hash, lot_id, quantity, uom, location,
                 purchase_order, received_at, response)
        """,
        *[[getattr(receipt, name) for receipt in receipts] for name in _RECEIPT_SCALARS],
        [receipt.response.model_dump_json() for receipt in receipts],
    )


async def get_lot(connection: Connection, lot_id: UUID) -> LotRecord | None:
    return _lot(
        await connection.fetchrow(f"SELECT {LOT_COLUMNS} FROM lots WHERE lot_id = $1", lot_id)
    )


async def find_lots(
    connection: Connection, *, lot_code: str | None, sku: str | None, limit: int
) -> list[LotRecord]:
    rows = await connection.fetch(
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
    return rows_as(rows, LotRecord)


# ------------------------------------------------------------------ products


async def lock_gtins(connection: Connection, gtins: list[str]) -> list[GtinOwner]:
    rows = await connection.fetch(
        "SELECT gtin, sku FROM product_gtins WHERE gtin = ANY($1::text[]) FOR UPDATE", gtins
    )
    return rows_as(rows, GtinOwner)


async def put_product(
    connection: Connection,
    sku: str,
    *,
    description: str | None,
    uom: str,
    gtins: list[str],
    qc_required: bool,
) -> None:
    await connection.execute(
        """
        INSERT INTO products (sku, description, uom, qc_required) VALUES ($1, $2, $3, $4)
        ON CONFLICT (sku) DO UPDATE
            SET description = EXCLUDED.description, uom = EXCLUDED.uom,
                qc_required = EXCLUDED.qc_required, updated_at = now()
        """,
        sku,
        description,
        uom,
        qc_required,
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


async def get_product(connection: Connection, sku: str) -> ProductRecord | None:
    row = await connection.fetchrow(
        """
        SELECT p.sku, p.description, p.uom, p.qc_required, p.updated_at,
               coalesce(array_agg(g.gtin ORDER BY g.gtin) FILTER (WHERE g.gtin IS NOT NULL),
                        '{}') AS gtins
        FROM products p LEFT JOIN product_gtins g USING (sku)
        WHERE p.sku = $1
        GROUP BY p.sku
        """,
        sku,
    )
    return row_as(row, ProductRecord)


async def requires_qc(connection: Connection, sku: str) -> bool:
    """Whether the catalogue says lots of this SKU are received quarantined for QC."""
    required: bool | None = await connection.fetchval(
        "SELECT qc_required FROM products WHERE sku = $1", sku
    )
    return bool(required)


async def sku_for_gtin(connection: Connection, gtin: str) -> str | None:
    sku: str | None = await connection.fetchval(
        "SELECT sku FROM product_gtins WHERE gtin = $1", gtin
    )
    return sku


# ------------------------------------------------------------------ onboarding import


# One lot import batch at a time: two runs of one file cannot both take a row key.
LOT_IMPORTS = ImportLedger(lock_name="lot-import", table="imported_lot_rows")


async def record_imported_rows(connection: Connection, rows: Sequence[ImportedRow]) -> None:
    await connection.execute(
        """
        INSERT INTO imported_lot_rows (row_key, receipt_id, lot_id)
        SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
        """,
        *columns(rows, ImportedRow),
    )


async def lock_lots_by_codes(
    connection: Connection, codes: Sequence[tuple[str, str]]
) -> list[LotRecord]:
    """The lots with these (sku, lot_code), locked in lot_id order (no deadlock with receipts)."""
    rows = await connection.fetch(
        f"""
        SELECT {LOT_COLUMNS} FROM lots
        WHERE (sku, lot_code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY lot_id
        FOR UPDATE
        """,
        [sku for sku, _ in codes],
        [code for _, code in codes],
    )
    return rows_as(rows, LotRecord)


async def update_lots(connection: Connection, lots: Sequence[LotRecord]) -> None:
    """Write what receipts changed on lots this transaction holds locked."""
    await connection.execute(
        f"""
        UPDATE lots SET gtin = u.gtin, production_date = u.production_date,
                        expiry_date = u.expiry_date, best_before_date = u.best_before_date,
                        unit_cost = u.unit_cost, currency = u.currency,
                        received_quantity = u.received_quantity,
                        first_received_at = u.first_received_at,
                        last_received_at = u.last_received_at
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::text[], $9::date[], $10::date[], $11::date[],
                    $12::numeric[], $13::text[], $14::numeric[], $15::numeric[],
                    $16::timestamptz[], $17::timestamptz[]) AS u({LOT_COLUMNS})
        WHERE lots.lot_id = u.lot_id
        """,
        *columns(lots, LotRecord),
    )


async def find_lots_by_codes(
    connection: Connection, codes: Sequence[tuple[str, str]]
) -> list[FoundLot]:
    rows = await connection.fetch(
        """
        SELECT sku, lot_code, lot_id, uom FROM lots
        WHERE (sku, lot_code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """,
        [sku for sku, _ in codes],
        [code for _, code in codes],
    )
    return rows_as(rows, FoundLot)
