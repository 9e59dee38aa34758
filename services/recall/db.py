"""Every SQL statement of the recall service. The recall path is set-based: scope, genealogy
closure and affected customers are computed in the database, not row by row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from services.recall.domain import Edge
from services.recall.quality import QualityLot, UnreceivedLot
from services.recall.records import (
    AffectedTotals,
    Answers,
    Chunk,
    CustomerGroup,
    CustomerRow,
    CustomerStanding,
    DrillRow,
    InputRow,
    LotRecall,
    LotRow,
    LotStatusRow,
    LotUnits,
    MovementRow,
    NewRecall,
    OpenRecallLot,
    PendingRecall,
    PlaceholderLot,
    RecallLotRef,
    RecallLotRow,
    RecallState,
    ReceiptRow,
    ReportedUnitsRow,
    ReportFilter,
    ResponseRow,
    ReturnCountRow,
    ShipmentLineRow,
)
from services.recall.schemas import DataQualityReport
from shared.contracts.events import NoticeShipment, RecallCustomerNotice, RecallScope
from shared.contracts.types import Customer
from shared.ids import random_uuid_bytes
from shared.runtime.database import Connection, Record, columns, rows_as

R = TypeVar("R")

# Shipment ingestion holds this lock shared; issuing a recall holds it exclusively, so a
# recall's watermark splits shipment lines cleanly into "known at issue" and "late".
SHIPMENTS_LOCK = 0x72636C6C  # "rcll"
# The data-quality check runs on one replica at a time (quality_check.py).
QUALITY_LOCK = 0x64716368  # "dqch"


async def lock_shipments_shared(connection: Connection) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", SHIPMENTS_LOCK)


async def lock_shipments_exclusive(connection: Connection) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock($1)", SHIPMENTS_LOCK)


# ------------------------------------------------------------------ projection


async def upsert_lots(connection: Connection, rows: Sequence[LotRow]) -> None:
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, lot_code, sku, gtin, uom, supplier_id, supplier_name,
                               supplier_lot_code, purchase_order, location, production_date,
                               expiry_date, best_before_date, first_received_at,
                               received_quantity, received)
        SELECT *, true FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                   $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                   $11::date[], $12::date[], $13::date[], $14::timestamptz[],
                                   $15::numeric[])
        ON CONFLICT (lot_id) DO UPDATE SET
            lot_code = EXCLUDED.lot_code, sku = EXCLUDED.sku,
            gtin = coalesce(EXCLUDED.gtin, l.gtin), uom = EXCLUDED.uom,
            supplier_id = coalesce(l.supplier_id, EXCLUDED.supplier_id),
            supplier_name = coalesce(l.supplier_name, EXCLUDED.supplier_name),
            supplier_lot_code = coalesce(l.supplier_lot_code, EXCLUDED.supplier_lot_code),
            purchase_order = coalesce(l.purchase_order, EXCLUDED.purchase_order),
            location = coalesce(l.location, EXCLUDED.location),
            production_date = coalesce(EXCLUDED.production_date, l.production_date),
            expiry_date = coalesce(EXCLUDED.expiry_date, l.expiry_date),
            best_before_date = coalesce(EXCLUDED.best_before_date, l.best_before_date),
            first_received_at = least(l.first_received_at, EXCLUDED.first_received_at),
            received_quantity = l.received_quantity + EXCLUDED.received_quantity,
            received = true
        """,
        *columns(rows, LotRow),
    )


async def ensure_lots(connection: Connection, lots: Iterable[PlaceholderLot]) -> None:
    """Placeholder rows for lots named before their receipt."""
    unique = list({lot.lot_id: lot for lot in lots}.values())
    if not unique:
        return
    await connection.execute(
        """
        INSERT INTO lots (lot_id, lot_code, sku, uom)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT (lot_id) DO NOTHING
        """,
        *columns(unique, PlaceholderLot),
    )


async def insert_receipts(connection: Connection, rows: Sequence[ReceiptRow]) -> None:
    await connection.execute(
        """
        INSERT INTO receipts (receipt_id, lot_id, quantity, uom, received_at, location,
                              purchase_order, supplier_id, supplier_name, event_id)
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::numeric[], $4::text[],
                             $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::text[])
        ON CONFLICT (receipt_id) DO NOTHING
        """,
        *columns(rows, ReceiptRow),
    )


async def insert_inputs(connection: Connection, rows: Sequence[InputRow]) -> None:
    if not rows:
        return
    await connection.execute(
        """
        INSERT INTO lot_inputs (receipt_id, lot_id, input_lot_id, input_lot_code, input_sku,
                                quantity, uom)
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::numeric[], $7::text[])
        ON CONFLICT DO NOTHING
        """,
        *columns(rows, InputRow),
    )


async def upsert_customers(
    connection: Connection, customers: Sequence[CustomerRow], *, history: bool = False
) -> None:
    """Current contact details replace the kept ones; `history` (an imported shipment's) only
    fills the ones missing."""
    if not customers:
        return
    await connection.execute(
        """
        INSERT INTO customers AS c (customer_id, name, email, phone, address)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
        ON CONFLICT (customer_id) DO UPDATE SET
            name = CASE WHEN $6 THEN coalesce(c.name, EXCLUDED.name)
                        ELSE coalesce(EXCLUDED.name, c.name) END,
            email = CASE WHEN $6 THEN coalesce(c.email, EXCLUDED.email)
                         ELSE coalesce(EXCLUDED.email, c.email) END,
            phone = CASE WHEN $6 THEN coalesce(c.phone, EXCLUDED.phone)
                         ELSE coalesce(EXCLUDED.phone, c.phone) END,
            address = CASE WHEN $6 THEN coalesce(c.address, EXCLUDED.address)
                           ELSE coalesce(EXCLUDED.address, c.address) END,
            updated_at = now()
        """,
        *columns(customers, CustomerRow),
        history,
    )


_SHIPMENT_LINE = (
    "shipment_id, line_no, lot_id, order_id, customer_id, sku, lot_code, quantity, uom, shipped_at"
)


async def insert_shipment_lines(
    connection: Connection, rows: Sequence[ShipmentLineRow]
) -> list[ShipmentLineRow]:
    """Store lines; returns the ones that were new."""
    new = await connection.fetch(
        f"""
        INSERT INTO shipment_lines ({_SHIPMENT_LINE})
        SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::numeric[], $9::text[], $10::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING {_SHIPMENT_LINE}
        """,
        *columns(rows, ShipmentLineRow),
    )
    return [ShipmentLineRow(*row) for row in new]


# ------------------------------------------------------------------ recalls


async def scope_roots(connection: Connection, scope: RecallScope) -> list[Record]:
    """The known lots a recall's scope names, each condition it leaves out matching all."""
    return await connection.fetch(
        """
        SELECT lot_id, lot_code, sku, supplier_id FROM lots
        WHERE ($1::uuid[] IS NULL OR lot_id = ANY($1))
          AND ($2::text[] IS NULL OR lot_code = ANY($2))
          AND ($3::text IS NULL OR sku = $3)
          AND ($4::text IS NULL OR supplier_id = $4)
          AND ($5::date IS NULL OR first_received_at >= $5::date)
          AND ($6::date IS NULL OR first_received_at < $6::date + 1)
          AND ($7::text[] IS NULL OR supplier_lot_code = ANY($7))
          AND ($8::text IS NULL OR gtin = $8)
        ORDER BY lot_id
        """,
        scope.lot_ids,
        scope.lot_codes,
        scope.sku,
        scope.supplier_id,
        scope.received_from,
        scope.received_to,
        scope.supplier_lot_codes,
        scope.gtin,
    )


def _affected_lines(recall: str, *, known_at: str | None = None) -> str:
    """The one statement of which shipment lines (`s`) a recall affects: those of its lots;
    with a watermark, only those known when it was issued (the others are late)."""
    known = f" AND s.seq <= {known_at}" if known_at is not None else ""
    return f"s.lot_id IN (SELECT lot_id FROM recall_lots WHERE recall_id = {recall}){known}"


def _utc_text(timestamp: str) -> str:
    """A timestamptz as the contract encodes it (`datetime.isoformat`, UTC as `Z`): the
    fraction only when there is one."""
    utc = f"({timestamp}) AT TIME ZONE 'UTC'"
    return (
        f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
        f" || CASE WHEN date_trunc('second', {utc}) = {utc} THEN ''"
        f" ELSE to_char({utc}, '.US') END || 'Z'"
    )


async def create_recall(
    connection: Connection,
    recall: NewRecall,
    lots: Sequence[RecallLotRow],
    *,
    chunk_size: int,
) -> AffectedTotals:
    """Store the recall, its lots, and its affected customers in chunks to notify."""
    # Under the exclusive shipments lock no line is mid-insert, so the identity sequence's last
    # value is the newest committed line (or above it, after a rollback): O(1), unlike max(seq).
    watermark = await connection.fetchval(
        "SELECT coalesce(pg_sequence_last_value("
        "pg_get_serial_sequence('shipment_lines', 'seq')::regclass), 0)"
    )
    await connection.execute(
        """
        INSERT INTO recalls (recall_id, issued_at, reason, classification, scope, requested_by,
                             check_level, target_percent, shipment_watermark,
                             affected_customer_count, shipped_quantity)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0)
        """,
        *astuple(recall),
        watermark,
    )
    await add_recall_lots(connection, lots)
    totals = await _chunk_affected_customers(connection, recall.recall_id, watermark, chunk_size)
    await connection.execute(
        "UPDATE recalls SET affected_customer_count = $2, shipped_quantity = $3"
        " WHERE recall_id = $1",
        recall.recall_id,
        totals.customers,
        totals.shipped_quantity,
    )
    return totals


async def _chunk_affected_customers(
    connection: Connection, recall_id: str, watermark: int, chunk_size: int
) -> AffectedTotals:
    row = await connection.fetchrow(
        f"""
        WITH affected AS (
            SELECT s.customer_id, s.quantity FROM shipment_lines s
            WHERE {_affected_lines("$1", known_at="$2")}
        ), numbered AS (
            SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1) / $3 AS chunk
            FROM (SELECT DISTINCT customer_id FROM affected) AS customers
        ), chunks AS (
            INSERT INTO recall_chunks (recall_id, chunk, first_customer, last_customer, customers)
            SELECT $1, chunk, min(customer_id), max(customer_id), count(*)
            FROM numbered GROUP BY chunk
            RETURNING customers
        )
        SELECT (SELECT coalesce(sum(customers), 0) FROM chunks) AS customers,
               (SELECT coalesce(sum(quantity), 0) FROM affected) AS quantity
        """,
        recall_id,
        watermark,
        chunk_size,
    )
    assert row is not None
    return AffectedTotals(int(row["customers"]), Decimal(row["quantity"]))


async def recall_with_pending_notices(connection: Connection) -> PendingRecall | None:
    """The oldest recall whose notices are not all written yet."""
    row = await connection.fetchrow(
        """
        SELECT r.recall_id, r.reason, r.classification, r.shipment_watermark
        FROM recalls r
        WHERE r.notices_done_at IS NULL
        ORDER BY r.issued_at, r.recall_id
        LIMIT 1
        """
    )
    return None if row is None else PendingRecall(*row)


async def take_chunk(connection: Connection, recall_id: str) -> Chunk | None:
    """The next chunk of customers to notify (one another replica holds is skipped)."""
    row = await connection.fetchrow(
        """
        SELECT chunk, first_customer, last_customer, customers FROM recall_chunks
        WHERE recall_id = $1 AND notified_at IS NULL
        ORDER BY chunk
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        recall_id,
    )
    return None if row is None else Chunk(*row)


async def chunk_notified(connection: Connection, recall_id: str, chunk: int) -> None:
    await connection.execute(
        "UPDATE recall_chunks SET notified_at = now() WHERE recall_id = $1 AND chunk = $2",
        recall_id,
        chunk,
    )


# The set-based notice path: PostgreSQL builds each CloudEvent exactly as
# `shared.contracts.envelope.encode` encodes a `RecallCustomerNotice` (tests/integration/
# test_recall_notice_encoding.py proves it field for field), keeps those that fit whole,
# writes them to the outbox and the notice log, and names the customers it left.
# Each notice is spliced from JSON-escaped parts (`to_json(text)`), the customer too: the
# json_build_object the parts replaced, stripped of nulls over the whole, was parsed and
# printed once more per notice. Only the address can hold nulls at any depth: it alone goes
# through json_strip_nulls. A NULL part makes a NULL notice, which never fits: that
# customer's notice is left to the model path. The event ids come drawn in one piece ($12,
# 16 bytes each, in customer order): gen_random_uuid() reads the OS's random source per id,
# which cost a fifth of the statement (EXPLAIN ANALYZE, 5,000 notices). The envelope is
# MATERIALIZED: inlined, its parts (the time's to_char among them) were computed again for
# every notice, 85 of the statement's 290 ms (`python -m bench.notice_chunks --explain`).
_WRITE_NOTICES = f"""
    WITH lines AS (
        SELECT s.customer_id, s.shipment_id, s.order_id, s.shipped_at, s.sku, s.lot_id,
               s.lot_code, s.quantity, s.uom, s.line_no
        FROM shipment_lines s
        WHERE {_affected_lines("$1", known_at="$3")} AND s.customer_id BETWEEN $2 AND $9
    ), per_customer AS (
        SELECT customer_id, count(*) AS shipments,
               row_number() OVER (ORDER BY customer_id) AS number,
               '[' || string_agg(
                   '{{"shipment_id":' || to_json(shipment_id)::text
                   || ',"order_id":' || to_json(order_id)::text
                   || ',"shipped_at":"' || {_utc_text("shipped_at")}
                   || '","sku":' || to_json(sku)::text
                   || ',"lot_id":"' || lot_id::text
                   || '","lot_code":' || to_json(lot_code)::text
                   || ',"quantity":"' || trim_scale(quantity)::text
                   || '","uom":' || to_json(uom)::text || '}}',
                   ',' ORDER BY shipped_at, shipment_id, line_no) || ']' AS list
        FROM lines GROUP BY customer_id
    ), envelope AS MATERIALIZED (
        SELECT '{{"specversion" : "1.0", "id" : "' AS before_id,
               '", "type" : ' || to_json($6::text)::text
               || ', "source" : ' || to_json($5::text)::text
               || ', "time" : "' || {_utc_text("now()")}
               || '", "subject" : ' || to_json($1::text)::text
               || ', "datacontenttype" : "application/json", "data" : {{"recall_id":'
               || to_json($1::text)::text || ',"customer":' AS before_customer,
               ',"late":false,"reason":' || to_json($7::text)::text
               || ',"classification":' || to_json($8::text)::text
               || ',"reminder":0}}}}' AS after_shipments
    ), notices AS (
        SELECT p.customer_id, p.shipments, p.list,
               nullif(encode(substr($12::bytea, 16 * p.number::int - 15, 16), 'hex'), '')
                   ::uuid::text AS event_id,
               '{{"customer_id":' || to_json(p.customer_id)::text
               || coalesce(',"name":' || to_json(c.name)::text, '')
               || coalesce(',"email":' || to_json(c.email)::text, '')
               || coalesce(',"phone":' || to_json(c.phone)::text, '')
               || coalesce(',"address":'
                           || json_strip_nulls(nullif(c.address, 'null')::json)::text, '')
               || '}}' AS customer
        FROM per_customer p LEFT JOIN customers c USING (customer_id)
    ), encoded AS (
        SELECT customer_id, shipments, event_id, value,
               coalesce(octet_length(value) <= $10, false)
                   AND ($4::int IS NULL OR shipments <= $4) AS fits
        FROM (
            SELECT n.customer_id, n.shipments, n.event_id,
                   convert_to(e.before_id || n.event_id || e.before_customer || n.customer
                              || ',"shipments":' || n.list || e.after_shipments, 'UTF8') AS value
            FROM notices n CROSS JOIN envelope e
        ) AS built
    ), written AS (
        INSERT INTO outbox (topic, key, value, headers)
        SELECT $11::text, convert_to($1, 'UTF8'), value,
               to_jsonb(ARRAY[
                   ARRAY['content-type', 'application/cloudevents+json'],
                   ARRAY['ce_id', event_id],
                   ARRAY['ce_type', $6::text],
                   ARRAY['ce_source', $5::text]])
        FROM encoded WHERE fits
        RETURNING id
    ), pending AS (
        INSERT INTO outbox_pending SELECT id FROM written
    ), logged AS (
        INSERT INTO recall_notices (event_id, recall_id, customer_id, late, shipments, part,
                                    parts)
        SELECT event_id, $1, customer_id, false, shipments, 1, 1 FROM encoded WHERE fits
    )
    SELECT customer_id FROM encoded WHERE NOT fits ORDER BY customer_id
"""


async def write_notices(
    connection: Connection,
    *,
    recall: PendingRecall,
    chunk: Chunk,
    max_value_bytes: int,
    max_shipments: int | None,
    source: str,
) -> list[str]:
    """Write the notices of the chunk's customers straight into the outbox, in one statement.
    A notice is written only when it fits whole: at most `max_value_bytes` of JSON (and
    `max_shipments` shipments, when set). Returns the customers left for the caller, whose
    notices must be split."""
    rows = await connection.fetch(
        _WRITE_NOTICES,
        recall.recall_id,
        chunk.first_customer,
        recall.shipment_watermark,
        max_shipments,
        source,
        RecallCustomerNotice.event_type,
        recall.reason,
        recall.classification,
        chunk.last_customer,
        max_value_bytes,
        RecallCustomerNotice.topic,
        random_uuid_bytes(chunk.customers),
    )
    return [row["customer_id"] for row in rows]


async def finish_notices_if_done(connection: Connection, recall_id: str) -> bool:
    done = await connection.fetchval(
        """
        UPDATE recalls SET notices_done_at = now()
        WHERE recall_id = $1 AND notices_done_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM recall_chunks
                          WHERE recall_id = $1 AND notified_at IS NULL)
        RETURNING true
        """,
        recall_id,
    )
    return bool(done)


async def customer_shipments(
    connection: Connection, recall: PendingRecall, customer_ids: Sequence[str]
) -> dict[str, list[NoticeShipment]]:
    """Each customer's shipments of the recall's lots known at its watermark, in notice order."""
    rows = await connection.fetch(
        f"""
        SELECT {_SHIPMENT_LINE} FROM shipment_lines s
        WHERE {_affected_lines("$1", known_at="$3")} AND s.customer_id = ANY($2::text[])
        ORDER BY s.customer_id, s.shipped_at, s.shipment_id, s.line_no
        """,
        recall.recall_id,
        list(customer_ids),
        recall.shipment_watermark,
    )
    shipments: dict[str, list[NoticeShipment]] = {customer_id: [] for customer_id in customer_ids}
    for row in rows:
        line = ShipmentLineRow(*row)
        shipments[line.customer_id].append(line.notice_shipment())
    return shipments


async def customers_by_id(
    connection: Connection, customer_ids: Iterable[str]
) -> dict[str, Customer]:
    """The customers as notices name them; one never seen is named by its id alone."""
    wanted = sorted(set(customer_ids))
    rows = await connection.fetch(
        "SELECT customer_id, name, email, phone, address FROM customers"
        " WHERE customer_id = ANY($1::text[])",
        wanted,
    )
    known = {row["customer_id"]: row for row in rows}
    return {customer_id: _customer(known.get(customer_id), customer_id) for customer_id in wanted}


def _customer(row: Record | None, customer_id: str) -> Customer:
    if row is None:
        return Customer(customer_id=customer_id)
    return Customer.model_validate({key: value for key, value in row.items() if value is not None})


@dataclass(frozen=True)
class NoticeRecord:
    """A notice in the recall's log of what was sent."""

    event_id: str
    recall_id: str
    customer_id: str
    late: bool
    shipments: int
    part: int
    parts: int


async def record_notices(connection: Connection, notices: Sequence[NoticeRecord]) -> None:
    if not notices:
        return
    await connection.execute(
        """
        INSERT INTO recall_notices (event_id, recall_id, customer_id, late, shipments, part, parts)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::int[],
                             $6::int[], $7::int[])
        """,
        *columns(notices, NoticeRecord),
    )


@dataclass(frozen=True)
class NoticeFailure:
    """A customer's notice that could not be sent, and why."""

    recall_id: str
    customer_id: str
    late: bool
    shipments: int
    reason: str


async def record_notice_failure(connection: Connection, failure: NoticeFailure) -> None:
    await connection.execute(
        """
        INSERT INTO recall_notice_failures (recall_id, customer_id, late, shipments, reason)
        VALUES ($1, $2, $3, $4, $5)
        """,
        *astuple(failure),
    )


async def notice_failures(connection: Connection, recall_id: str) -> list[Record]:
    return await connection.fetch(
        """
        SELECT customer_id, late, shipments, reason, created_at FROM recall_notice_failures
        WHERE recall_id = $1 ORDER BY created_at, customer_id
        """,
        recall_id,
    )


async def open_recalls_of_lots(
    connection: Connection, lot_ids: Iterable[UUID]
) -> list[OpenRecallLot]:
    rows = await connection.fetch(
        """
        SELECT rl.recall_id, rl.lot_id, rl.via_lot_id, r.reason, r.classification
        FROM recall_lots rl JOIN recalls r USING (recall_id)
        WHERE rl.lot_id = ANY($1::uuid[]) AND r.status = 'open'
        """,
        sorted(set(lot_ids)),
    )
    return [OpenRecallLot(*row) for row in rows]


async def add_recall_lots(connection: Connection, rows: Sequence[RecallLotRow]) -> None:
    await connection.execute(
        """
        INSERT INTO recall_lots (recall_id, lot_id, lot_code, sku, supplier_id, via_lot_id)
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[])
        ON CONFLICT DO NOTHING
        """,
        *columns(rows, RecallLotRow),
    )


async def get_recall(connection: Connection, recall_id: str) -> Record | None:
    return await connection.fetchrow(
        """
        SELECT recall_id, issued_at, reason, classification, scope, status, requested_by,
               affected_customer_count, shipped_quantity, notices_done_at, closed_at, closed_by,
               close_note, check_level, target_percent, close_override,
               (SELECT coalesce(sum(customers), 0) FROM recall_chunks c
                WHERE c.recall_id = r.recall_id AND c.notified_at IS NOT NULL)
               - (SELECT count(DISTINCT customer_id) FROM recall_notice_failures f
                  WHERE f.recall_id = r.recall_id AND NOT f.late)
                   AS notified_customers,
               (SELECT count(*) FROM recall_notices n
                WHERE n.recall_id = r.recall_id AND n.late) AS late_notices
        FROM recalls r WHERE recall_id = $1
        """,
        recall_id,
    )


async def recall_lots(connection: Connection, recall_id: str) -> list[Record]:
    return await connection.fetch(
        """
        SELECT rl.lot_id, rl.lot_code, rl.sku, rl.supplier_id, rl.via_lot_id, l.status
        FROM recall_lots rl LEFT JOIN lots l USING (lot_id)
        WHERE rl.recall_id = $1 ORDER BY rl.via_lot_id NULLS FIRST, rl.lot_code
        """,
        recall_id,
    )


async def recall_customer_lines(
    connection: Connection, recall_id: str, *, limit: int | None, offset: int = 0
) -> list[Record]:
    """Affected customers with their shipments of affected lots (late ones included)."""
    return await connection.fetch(
        f"""
        WITH page AS (
            SELECT DISTINCT s.customer_id FROM shipment_lines s
            WHERE {_affected_lines("$1")}
            ORDER BY s.customer_id
            LIMIT $2 OFFSET $3
        )
        SELECT c.customer_id, c.name, c.email, c.phone, c.address,
               s.shipment_id, s.order_id, s.shipped_at, s.sku, s.lot_id, s.lot_code,
               s.quantity, s.uom,
               s.seq > (SELECT shipment_watermark FROM recalls WHERE recall_id = $1) AS late
        FROM page p
        JOIN shipment_lines s ON s.customer_id = p.customer_id
        LEFT JOIN customers c ON c.customer_id = p.customer_id
        WHERE {_affected_lines("$1")}
        ORDER BY p.customer_id, s.shipped_at, s.shipment_id, s.line_no
        """,
        recall_id,
        limit,
        offset,
    )


async def close_recall(
    connection: Connection,
    recall_id: str,
    *,
    actor: str,
    note: str | None,
    override: str | None = None,
) -> Record | None:
    return await connection.fetchrow(
        """
        UPDATE recalls SET status = 'closed', closed_at = now(), closed_by = $2, close_note = $3,
                           close_override = $4
        WHERE recall_id = $1 AND status = 'open'
        RETURNING recall_id,
                  (SELECT count(*) FROM recall_lots WHERE recall_id = $1)::int AS affected_lots
        """,
        recall_id,
        actor,
        note,
        override,
    )


# ------------------------------------------------------------------ the recall loop


def in_field_order(rows: Sequence[Record], kind: type[R]) -> list[R]:
    """Rows of a query that selects exactly `kind`'s fields, in their order: for the 100,000
    rows of a large recall, where naming each column of each row costs seconds."""
    return [kind(*row) for row in rows]


async def recall_states(
    connection: Connection, recall_ids: Iterable[str]
) -> dict[str, RecallState]:
    rows = await connection.fetch(
        "SELECT recall_id, status FROM recalls WHERE recall_id = ANY($1::text[])",
        sorted(set(recall_ids)),
    )
    return {state.recall_id: state for state in rows_as(rows, RecallState)}


async def affected_pairs(
    connection: Connection, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Of these (recall, customer) pairs, those where the customer received a lot of the recall."""
    wanted = sorted(set(pairs))
    rows = await connection.fetch(
        """
        SELECT p.recall_id, p.customer_id
        FROM unnest($1::text[], $2::text[]) AS p(recall_id, customer_id)
        WHERE EXISTS (SELECT 1 FROM recall_lots rl JOIN shipment_lines s USING (lot_id)
                      WHERE rl.recall_id = p.recall_id AND s.customer_id = p.customer_id)
        """,
        [recall_id for recall_id, _ in wanted],
        [customer_id for _, customer_id in wanted],
    )
    return {(row["recall_id"], row["customer_id"]) for row in rows}


async def lots_of_recalls(connection: Connection, recall_ids: Iterable[str]) -> list[RecallLotRef]:
    rows = await connection.fetch(
        "SELECT recall_id, lot_id, lot_code, sku FROM recall_lots"
        " WHERE recall_id = ANY($1::text[])",
        sorted(set(recall_ids)),
    )
    return rows_as(rows, RecallLotRef)


async def insert_responses(connection: Connection, rows: Sequence[ResponseRow]) -> set[str]:
    """Store responses; returns the ids of those not stored before."""
    new = await connection.fetch(
        """
        INSERT INTO recall_responses (response_id, recall_id, customer_id, kind, channel,
                                      responded_at, note)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::timestamptz[], $7::text[])
        ON CONFLICT (response_id) DO NOTHING
        RETURNING response_id
        """,
        *columns(rows, ResponseRow),
    )
    return {row["response_id"] for row in new}


async def insert_reported_units(connection: Connection, rows: Sequence[ReportedUnitsRow]) -> None:
    if not rows:
        return
    await connection.execute(
        """
        INSERT INTO recall_reported_units (response_id, recall_id, customer_id, lot_id,
                                           responded_at, on_hand, destroyed, returned)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[],
                             $6::numeric[], $7::numeric[], $8::numeric[])
        ON CONFLICT DO NOTHING
        """,
        *columns(rows, ReportedUnitsRow),
    )


async def lot_ids_by_code(
    connection: Connection, codes: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], UUID]:
    """The lots known by (lot_code, sku)."""
    wanted = sorted(set(codes))
    rows = await connection.fetch(
        """
        SELECT l.lot_code, l.sku, l.lot_id
        FROM unnest($1::text[], $2::text[]) AS w(lot_code, sku)
        JOIN lots l ON l.lot_code = w.lot_code AND l.sku = w.sku
        """,
        [code for code, _ in wanted],
        [sku for _, sku in wanted],
    )
    return {(row["lot_code"], row["sku"]): row["lot_id"] for row in rows}


async def recalls_of_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[LotRecall]:
    rows = await connection.fetch(
        """
        SELECT rl.recall_id, rl.lot_id, r.status
        FROM recall_lots rl JOIN recalls r USING (recall_id)
        WHERE rl.lot_id = ANY($1::uuid[])
        """,
        sorted(set(lot_ids)),
    )
    return rows_as(rows, LotRecall)


async def insert_return_counts(connection: Connection, rows: Sequence[ReturnCountRow]) -> None:
    if not rows:
        return
    await connection.execute(
        """
        INSERT INTO recall_returns (recall_id, return_id, line_no, customer_id, lot_id, quantity,
                                    returned_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::uuid[],
                             $6::numeric[], $7::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        *columns(rows, ReturnCountRow),
    )


# What a recall's affected customers answered: the CTEs `answers`, `notices`, `reminders` and
# `returns` over the recall $1, the kinds of response $2 reaching, $3 acknowledging, $4
# bouncing.
_ANSWERS = """
    notices AS (
        SELECT customer_id, max(created_at) AS at FROM recall_notices
        WHERE recall_id = $1 GROUP BY customer_id
    ), answers AS (
        SELECT customer_id, bool_or(kind = ANY($2::text[])) AS reached,
               bool_or(kind = ANY($3::text[])) AS acknowledged,
               bool_or(kind = ANY($4::text[])) AS bounced
        FROM recall_responses WHERE recall_id = $1 GROUP BY customer_id
    ), reminders AS (
        SELECT customer_id, max(reminder) AS reminders, max(sent_at) AS at
        FROM recall_reminders WHERE recall_id = $1 GROUP BY customer_id
    ), returns AS (
        SELECT DISTINCT customer_id FROM recall_returns WHERE recall_id = $1
    )
"""
_ANSWER_COLUMNS = """
    n.customer_id IS NOT NULL AS notified, coalesce(r.reached, false) AS reached,
    coalesce(r.bounced, false) AS bounced, coalesce(r.acknowledged, false) AS acknowledged,
    x.customer_id IS NOT NULL AS returned, coalesce(m.reminders, 0) AS reminders
"""
_ANSWER_JOINS = """
    LEFT JOIN notices n USING (customer_id)
    LEFT JOIN answers r USING (customer_id)
    LEFT JOIN reminders m USING (customer_id)
    LEFT JOIN returns x USING (customer_id)
"""
# Each affected customer's units of each lot of the recall $1: shipped (late shipments too),
# received back, and the latest of each figure the customer reported. One pass over the three
# kinds of fact, grouped once: full joins of three groupings sorted and hashed 100,000 rows
# three times more.
_UNITS = f"""
    units AS (
        SELECT customer_id, lot_id, sum(shipped) AS shipped, sum(returned) AS returned,
               (array_agg(reported_returned ORDER BY responded_at DESC, response_id DESC)
                    FILTER (WHERE reported_returned IS NOT NULL))[1] AS reported_returned,
               (array_agg(destroyed ORDER BY responded_at DESC, response_id DESC)
                    FILTER (WHERE destroyed IS NOT NULL))[1] AS destroyed,
               (array_agg(on_hand ORDER BY responded_at DESC, response_id DESC)
                    FILTER (WHERE on_hand IS NOT NULL))[1] AS on_hand
        FROM (
            SELECT s.customer_id, s.lot_id, s.quantity AS shipped, NULL::numeric AS returned,
                   NULL::numeric AS reported_returned, NULL::numeric AS destroyed,
                   NULL::numeric AS on_hand, NULL::timestamptz AS responded_at,
                   NULL::text AS response_id
            FROM shipment_lines s WHERE {_affected_lines("$1")}
            UNION ALL
            SELECT customer_id, lot_id, NULL, quantity, NULL, NULL, NULL, NULL, NULL
            FROM recall_returns WHERE recall_id = $1
            UNION ALL
            SELECT customer_id, lot_id, NULL, NULL, returned, destroyed, on_hand, responded_at,
                   response_id
            FROM recall_reported_units WHERE recall_id = $1
        ) facts GROUP BY customer_id, lot_id
    )
"""


async def customer_groups(
    connection: Connection,
    recall_id: str,
    *,
    reaching: Sequence[str],
    acknowledging: Sequence[str],
    bouncing: Sequence[str],
) -> list[CustomerGroup]:
    """The recall's affected customers, grouped by what they answered and their units of each
    lot: the database does the per-customer work, and sends a few hundred groups."""
    # Grouping 100,000 customers by their units hashes in memory with room; on disk it takes
    # seconds. Only for this transaction.
    await connection.execute("SET LOCAL work_mem = '64MB'")
    rows = await connection.fetch(
        f"""
        WITH {_UNITS}, {_ANSWERS}, per_customer AS (
            SELECT customer_id, array_agg(lot_id ORDER BY lot_id) AS lot_ids,
                   array_agg(coalesce(shipped, 0) ORDER BY lot_id) AS shipped,
                   array_agg(coalesce(returned, 0) ORDER BY lot_id) AS returned_units,
                   array_agg(reported_returned ORDER BY lot_id) AS reported_returned,
                   array_agg(destroyed ORDER BY lot_id) AS destroyed,
                   array_agg(on_hand ORDER BY lot_id) AS on_hand
            FROM units GROUP BY customer_id
        )
        SELECT {_ANSWER_COLUMNS}, lot_ids, shipped, returned_units, reported_returned,
               destroyed, on_hand, array_agg(customer_id) AS customers
        FROM per_customer {_ANSWER_JOINS}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
        """,
        recall_id,
        list(reaching),
        list(acknowledging),
        list(bouncing),
    )
    return [
        CustomerGroup(
            Answers(*row[:6]),
            tuple(LotUnits(*lot) for lot in zip(*row[6:12], strict=True)),
            sorted(row[12]),  # sorted here: an ordered array_agg would sort by every key
        )
        for row in rows
    ]


async def customer_names(connection: Connection, customer_ids: Sequence[str]) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT customer_id, name FROM customers"
        " WHERE customer_id = ANY($1::text[]) AND name IS NOT NULL",
        list(customer_ids),
    )
    return {row["customer_id"]: row["name"] for row in rows}


async def customer_standings(
    connection: Connection,
    recall_id: str,
    *,
    reaching: Sequence[str],
    acknowledging: Sequence[str],
    bouncing: Sequence[str],
) -> list[CustomerStanding]:
    """Every affected customer of the recall, with what its responses and returns say, how
    many reminders it had, and when it was last contacted."""
    rows = await connection.fetch(
        f"""
        WITH affected AS (
            SELECT DISTINCT s.customer_id FROM shipment_lines s WHERE {_affected_lines("$1")}
        ), {_ANSWERS}
        SELECT a.customer_id, c.name, {_ANSWER_COLUMNS}, greatest(n.at, m.at) AS last_contact_at
        FROM affected a LEFT JOIN customers c USING (customer_id) {_ANSWER_JOINS}
        ORDER BY a.customer_id
        """,
        recall_id,
        list(reaching),
        list(acknowledging),
        list(bouncing),
    )
    return in_field_order(rows, CustomerStanding)


async def recalls_to_remind(connection: Connection) -> list[str]:
    """Open recalls whose first notices are all out."""
    rows = await connection.fetch(
        "SELECT recall_id FROM recalls WHERE status = 'open' AND notices_done_at IS NOT NULL"
        " ORDER BY issued_at"
    )
    return [row["recall_id"] for row in rows]


async def claim_reminders(
    connection: Connection, recall_id: str, due: Sequence[tuple[str, int]], sent_at: datetime
) -> list[tuple[str, int]]:
    """Record reminders as sent, while the recall is open; returns those not recorded before
    (the others went out already, from this replica or another)."""
    rows = await connection.fetch(
        """
        INSERT INTO recall_reminders (recall_id, customer_id, reminder, sent_at)
        SELECT $1, d.customer_id, d.reminder, $4
        FROM unnest($2::text[], $3::int[]) AS d(customer_id, reminder)
        WHERE EXISTS (SELECT 1 FROM recalls WHERE recall_id = $1 AND status = 'open' FOR SHARE)
        ON CONFLICT DO NOTHING
        RETURNING customer_id, reminder
        """,
        recall_id,
        [customer_id for customer_id, _ in due],
        [number for _, number in due],
        sent_at,
    )
    return [(row["customer_id"], row["reminder"]) for row in rows]


async def insert_drill(connection: Connection, drill: DrillRow) -> None:
    await connection.execute(
        """
        INSERT INTO recall_drills (drill_id, requested_at, requested_by, reason, classification,
                                   scope, affected_lots, affected_customer_count,
                                   shipped_quantity, check_level, sample_size, stages, total_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        """,
        *astuple(drill),
    )


async def drills(connection: Connection, limit: int) -> list[DrillRow]:
    rows = await connection.fetch(
        """
        SELECT drill_id, requested_at, requested_by, reason, classification, scope,
               affected_lots, affected_customer_count, shipped_quantity, check_level,
               sample_size, stages, total_ms::float8 AS total_ms
        FROM recall_drills ORDER BY requested_at DESC, drill_id DESC LIMIT $1
        """,
        limit,
    )
    return rows_as(rows, DrillRow)


# ------------------------------------------------------------------ trace


async def lot_rows(connection: Connection, lot_ids: Iterable[UUID]) -> dict[UUID, Record]:
    rows = await connection.fetch(
        """
        SELECT lot_id, lot_code, sku, gtin, uom, supplier_id, supplier_name, supplier_lot_code,
               purchase_order, location, production_date, expiry_date, best_before_date,
               first_received_at, received_quantity, received
        FROM lots WHERE lot_id = ANY($1::uuid[])
        """,
        sorted(set(lot_ids)),
    )
    return {row["lot_id"]: row for row in rows}


async def genealogy_edges(
    connection: Connection, lot_ids: Iterable[UUID], *, forward: bool
) -> list[Edge]:
    """Every genealogy edge reachable from these lots, at any depth: forward, what was made
    from them; backward, what they were made of. Rows carry no depth, so UNION's de-duplication
    ends the recursion even on a cycle in bad data; depths are the domain's `walk`."""
    rows = await connection.fetch(
        FORWARD_EDGES if forward else BACKWARD_EDGES, sorted(set(lot_ids))
    )
    return [Edge(row["lot_id"], row["input_lot_id"], row["quantity"], row["uom"]) for row in rows]


# What was made from the lots of $1, at any depth; and what they were made of.
_MADE_FROM = """
    made(lot_id, input_lot_id, quantity, uom) AS (
        SELECT lot_id, input_lot_id, quantity, uom FROM lot_inputs
        WHERE input_lot_id = ANY($1::uuid[])
        UNION
        SELECT i.lot_id, i.input_lot_id, i.quantity, i.uom
        FROM lot_inputs i JOIN made m ON i.input_lot_id = m.lot_id
    )
"""
_MADE_OF = """
    used(lot_id, input_lot_id, quantity, uom) AS (
        SELECT lot_id, input_lot_id, quantity, uom FROM lot_inputs WHERE lot_id = ANY($1::uuid[])
        UNION
        SELECT i.lot_id, i.input_lot_id, i.quantity, i.uom
        FROM lot_inputs i JOIN used u ON i.lot_id = u.input_lot_id
    )
"""
FORWARD_EDGES = f"WITH RECURSIVE {_MADE_FROM} SELECT lot_id, input_lot_id, quantity, uom FROM made"
BACKWARD_EDGES = f"WITH RECURSIVE {_MADE_OF} SELECT lot_id, input_lot_id, quantity, uom FROM used"


@dataclass(frozen=True)
class Genealogy:
    """A lot's genealogy one way: the edges reachable from it, and the rows of the lots they
    reach (the lot's own among them when it is known)."""

    edges: list[Edge]
    lots: dict[UUID, Record]


# Edges and lots in one round trip, not two. The edges come as anonymous records (tuples in
# Edge's order); the lots as the table's own row type, so by column name.
_GENEALOGY = """
    WITH RECURSIVE {closure}
    SELECT ARRAY(SELECT row(lot_id, input_lot_id, quantity, uom) FROM {name}) AS edges,
           ARRAY(
               SELECT l FROM lots l
               WHERE l.lot_id = ANY(ARRAY(SELECT unnest($1::uuid[]) UNION SELECT {reached}
                                          FROM {name}))
           ) AS lots
"""
_GENEALOGY_FORWARD = _GENEALOGY.format(closure=_MADE_FROM, name="made", reached="lot_id")
_GENEALOGY_BACKWARD = _GENEALOGY.format(closure=_MADE_OF, name="used", reached="input_lot_id")


async def genealogy(connection: Connection, lot_id: UUID, *, forward: bool) -> Genealogy:
    """What `genealogy_edges` and `lot_rows` read for one lot, in one statement."""
    row = await connection.fetchrow(
        _GENEALOGY_FORWARD if forward else _GENEALOGY_BACKWARD, [lot_id]
    )
    assert row is not None
    lots = {lot["lot_id"]: lot for lot in row["lots"]}
    return Genealogy([Edge(*edge) for edge in row["edges"]], lots)


@dataclass(frozen=True)
class TraceShipments:
    """A forward trace's shipment lines: the first `limit`, in trace order, each with the
    columns `TraceShipment` declares (its lot id and quantity as the text the model writes);
    and how many lines there are in all."""

    lines: list[Record]
    all_lines: int


# The name looked up per line kept, which PostgreSQL does after the sort and the limit: a join
# hashed every customer of the history, growing with it. The lines come as plain columns, not
# as JSON: PostgreSQL spent some 20 us a line writing JSON text (EXPLAIN ANALYZE, 412 lines).
# `python -m bench.traces --compare DIR` times the route against older code, call by call.
_TRACE_SHIPMENT_LINES = """
    SELECT s.shipment_id, s.order_id, s.customer_id,
           (SELECT c.name FROM customers c WHERE c.customer_id = s.customer_id) AS customer_name,
           s.shipped_at, s.sku, s.lot_id::text AS lot_id, s.lot_code,
           s.quantity::text AS quantity, s.uom
    FROM shipment_lines s WHERE s.lot_id = ANY($1::uuid[])
    ORDER BY s.shipped_at, s.shipment_id, s.line_no
    LIMIT $2
"""


async def trace_shipments(
    connection: Connection, lot_ids: Iterable[UUID], limit: int
) -> TraceShipments:
    lots = sorted(set(lot_ids))
    lines = await connection.fetch(_TRACE_SHIPMENT_LINES, lots, limit)
    if len(lines) < limit:  # all of them: no need to count
        return TraceShipments(lines, len(lines))
    all_lines = await connection.fetchval(
        "SELECT count(*) FROM shipment_lines WHERE lot_id = ANY($1::uuid[])", lots
    )
    return TraceShipments(lines, all_lines)


async def shipment_counts(connection: Connection, lot_ids: Iterable[UUID]) -> list[Record]:
    return await connection.fetch(
        """
        SELECT lot_id, count(DISTINCT customer_id) AS customers, count(*) AS lines,
               sum(quantity) AS quantity
        FROM shipment_lines WHERE lot_id = ANY($1::uuid[]) GROUP BY lot_id
        """,
        sorted(set(lot_ids)),
    )


async def receipts_of_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[Record]:
    return await connection.fetch(
        """
        SELECT receipt_id, lot_id, quantity, uom, received_at, location, purchase_order,
               supplier_id, supplier_name
        FROM receipts WHERE lot_id = ANY($1::uuid[]) ORDER BY received_at
        """,
        sorted(set(lot_ids)),
    )


async def order_lines(connection: Connection, order_id: str) -> list[Record]:
    return await connection.fetch(
        """
        SELECT s.shipment_id, s.line_no, s.customer_id, s.shipped_at, s.sku, s.lot_id,
               s.lot_code, s.quantity, s.uom
        FROM shipment_lines s WHERE s.order_id = $1 ORDER BY s.shipped_at, s.line_no
        """,
        order_id,
    )


# ------------------------------------------------------------------ reports

# A lot is "produced" when some receipt made it from input lots; its lot code is then ours.
_PRODUCED = "EXISTS (SELECT 1 FROM lot_inputs x WHERE x.lot_id = l.lot_id) AS produced"

# Event dates are UTC dates; the bounds stay comparisons on the indexed timestamp.
_FROM_UTC = "($1::date)::timestamp AT TIME ZONE 'UTC'"
_TO_UTC = "($2::date + 1)::timestamp AT TIME ZONE 'UTC'"


def _selected_by(moment: str, sku: str, lot_code: str) -> str:
    """The condition of a report's events on a `ReportFilter` ($1 to $4): the event's moment in
    the UTC date range, its SKU and lot code when given."""
    return f"""($1::date IS NULL OR {moment} >= {_FROM_UTC})
          AND ($2::date IS NULL OR {moment} < {_TO_UTC})
          AND ($3::text IS NULL OR {sku} = $3)
          AND ($4::text IS NULL OR {lot_code} = $4)"""


_RECEIPT_COLUMNS = f"""
    r.receipt_id, r.lot_id, l.lot_code, l.sku, l.gtin, r.quantity, r.uom, r.received_at,
    coalesce(r.location, l.location) AS location, l.location AS lot_location,
    r.purchase_order, coalesce(r.supplier_id, l.supplier_id) AS supplier_id,
    coalesce(r.supplier_name, l.supplier_name) AS supplier_name, l.supplier_lot_code,
    l.production_date, l.expiry_date, l.best_before_date, {_PRODUCED}
"""

_SHIPMENT_COLUMNS = f"""
    s.shipment_id, s.line_no, s.order_id, s.lot_id, s.lot_code, s.sku, l.gtin, s.quantity,
    s.uom, s.shipped_at, s.customer_id, c.name AS customer_name, c.phone AS customer_phone,
    c.address AS customer_address, l.location AS lot_location, l.supplier_id, l.supplier_name,
    l.supplier_lot_code, l.production_date, l.expiry_date, l.best_before_date, {_PRODUCED}
"""
_SHIPMENT_EVENTS = f"""
    SELECT {_SHIPMENT_COLUMNS}
    FROM shipment_lines s
    LEFT JOIN lots l ON l.lot_id = s.lot_id
    LEFT JOIN customers c ON c.customer_id = s.customer_id
"""


# Rows a report's cursor reads from the server at a time.
REPORT_PREFETCH = 2_000


def _streamed(connection: Connection, query: str, *arguments: object) -> AsyncIterator[Record]:
    """The rows of `query` read REPORT_PREFETCH at a time (a cursor: within a transaction)."""
    return connection.cursor(query, *arguments, prefetch=REPORT_PREFETCH).__aiter__()


def report_receipts(connection: Connection, selected: ReportFilter) -> AsyncIterator[Record]:
    """Receipts (receiving and transformation events) in the UTC date range, in time order. A
    SKU or lot code selects the receipts of that lot and those that consumed it as an input."""
    return _streamed(
        connection,
        f"""
        SELECT {_RECEIPT_COLUMNS}
        FROM receipts r JOIN lots l USING (lot_id)
        WHERE ($1::date IS NULL OR r.received_at >= {_FROM_UTC})
          AND ($2::date IS NULL OR r.received_at < {_TO_UTC})
          AND ($3::text IS NULL OR l.sku = $3
               OR EXISTS (SELECT 1 FROM lot_inputs i
                          WHERE i.receipt_id = r.receipt_id AND i.input_sku = $3))
          AND ($4::text IS NULL OR l.lot_code = $4
               OR EXISTS (SELECT 1 FROM lot_inputs i
                          WHERE i.receipt_id = r.receipt_id AND i.input_lot_code = $4))
        ORDER BY r.received_at, r.receipt_id
        """,
        *astuple(selected),
    )


def report_shipment_lines(connection: Connection, selected: ReportFilter) -> AsyncIterator[Record]:
    """Shipment lines (shipping events) in the UTC date range, in time order, with lot and
    customer."""
    return _streamed(
        connection,
        f"""
        {_SHIPMENT_EVENTS}
        WHERE {_selected_by("s.shipped_at", "s.sku", "s.lot_code")}
        ORDER BY s.shipped_at, s.shipment_id, s.line_no
        """,
        *astuple(selected),
    )


async def inputs_of_receipts(connection: Connection, receipt_ids: Iterable[str]) -> list[Record]:
    """The input lots each receipt consumed, with the input lot's GTIN where known."""
    return await connection.fetch(
        """
        SELECT i.receipt_id, i.input_lot_id, i.input_lot_code, i.input_sku,
               il.gtin AS input_gtin, i.quantity, i.uom
        FROM lot_inputs i LEFT JOIN lots il ON il.lot_id = i.input_lot_id
        WHERE i.receipt_id = ANY($1::text[])
        ORDER BY i.receipt_id, i.input_lot_code, i.input_lot_id
        """,
        sorted(set(receipt_ids)),
    )


async def receipts_touching_lot(connection: Connection, lot_id: UUID) -> list[Record]:
    """The lot's own receipts and the receipts of lots made from it."""
    return await connection.fetch(
        f"""
        SELECT {_RECEIPT_COLUMNS}
        FROM receipts r JOIN lots l USING (lot_id)
        WHERE r.lot_id = $1
           OR r.receipt_id IN (SELECT receipt_id FROM lot_inputs WHERE input_lot_id = $1)
        ORDER BY r.received_at, r.receipt_id
        """,
        lot_id,
    )


async def shipment_lines_of_lot(connection: Connection, lot_id: UUID) -> list[Record]:
    return await connection.fetch(
        f"""
        {_SHIPMENT_EVENTS}
        WHERE s.lot_id = $1
        ORDER BY s.shipped_at, s.shipment_id, s.line_no
        """,
        lot_id,
    )


# ------------------------------------------------------------------ replay


async def restart_watermarks(connection: Connection) -> None:
    """After a replay numbered the shipment lines afresh: the lines known now count as known
    when each recall was issued (their notices went out), the ones arriving later as late."""
    await connection.execute(
        "UPDATE recalls SET shipment_watermark = (SELECT coalesce(max(seq), 0) FROM shipment_lines)"
    )


async def recall_sending_notices(connection: Connection) -> str | None:
    recall_id = await connection.fetchval(
        "SELECT recall_id FROM recalls WHERE notices_done_at IS NULL ORDER BY issued_at LIMIT 1"
    )
    if recall_id is None:
        return None
    return f"recall {recall_id} is still sending its notices; switch once they are out"


async def customers_of_lots(connection: Connection, lot_ids: Iterable[UUID]) -> list[Record]:
    """Who received these lots, with how many shipment lines and units: a drill's reach."""
    return await connection.fetch(
        """
        SELECT customer_id, count(*) AS lines, sum(quantity) AS quantity
        FROM shipment_lines WHERE lot_id = ANY($1::uuid[])
        GROUP BY customer_id ORDER BY customer_id
        """,
        sorted(set(lot_ids)),
    )


async def record_lot_statuses(connection: Connection, rows: Sequence[LotStatusRow]) -> None:
    """Keep each lot's newest status; a status older than the one kept changes nothing."""
    await connection.execute(
        """
        INSERT INTO lots AS l (lot_id, lot_code, sku, status, status_changed_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
        ON CONFLICT (lot_id) DO UPDATE SET
            status = EXCLUDED.status, status_changed_at = EXCLUDED.status_changed_at
        WHERE l.status_changed_at IS NULL OR l.status_changed_at <= EXCLUDED.status_changed_at
        """,
        *columns(rows, LotStatusRow),
    )


# ------------------------------------------------------------------ lot movements


async def insert_movements(connection: Connection, rows: Sequence[MovementRow]) -> None:
    """Keep each movement once: a re-sent one (same movement_id) changes nothing."""
    await connection.execute(
        """
        INSERT INTO lot_movements
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::text[], $13::text[], $14::text[],
                             $15::timestamptz[], $16::text[])
        ON CONFLICT (movement_id) DO NOTHING
        """,
        *columns(rows, MovementRow),
    )


_MOVEMENT_EVENTS = f"""
    SELECT m.movement_id, m.lot_id, m.lot_code, m.sku, coalesce(l.gtin, m.gtin) AS gtin,
           m.kind, m.quantity, m.uom, m.from_location, m.to_location, m.supplier_id,
           CASE WHEN l.supplier_id = m.supplier_id THEN l.supplier_name END AS supplier_name,
           m.rma, m.reason,
           m.actor, m.moved_at, l.supplier_lot_code, l.location AS lot_location,
           l.production_date, l.expiry_date, l.best_before_date, {_PRODUCED}
    FROM lot_movements m LEFT JOIN lots l ON l.lot_id = m.lot_id
"""


async def movements_of_lot(connection: Connection, lot_id: UUID) -> list[Record]:
    """The lot's moves and returns to vendor, in the order they happened."""
    return await connection.fetch(
        f"{_MOVEMENT_EVENTS} WHERE m.lot_id = $1 ORDER BY m.moved_at, m.movement_id", lot_id
    )


def report_movements(
    connection: Connection, selected: ReportFilter, kinds: Sequence[str]
) -> AsyncIterator[Record]:
    """Movements of these kinds in the UTC date range, in time order, of the SKU and lot code
    if given."""
    return _streamed(
        connection,
        f"""
        {_MOVEMENT_EVENTS}
        WHERE {_selected_by("m.moved_at", "m.sku", "m.lot_code")}
          AND m.kind = ANY($5::text[])
        ORDER BY m.moved_at, m.movement_id
        """,
        *astuple(selected),
        list(kinds),
    )


# ------------------------------------------------------------------ data quality (quality.py)


async def quality_lots(
    connection: Connection, *, after: UUID | None, limit: int
) -> list[QualityLot]:
    """A page of received lots in lot id order (after `after`), with what the checks need:
    whether it was produced, and whether each of its production inputs was received."""
    rows = await connection.fetch(
        f"""
        SELECT l.lot_id, l.lot_code, l.sku, l.supplier_id, l.supplier_lot_code, l.expiry_date,
               {_PRODUCED},
               array(SELECT coalesce(il.received, false)
                     FROM lot_inputs i LEFT JOIN lots il ON il.lot_id = i.input_lot_id
                     WHERE i.lot_id = l.lot_id) AS inputs_received
        FROM lots l
        WHERE l.received AND ($1::uuid IS NULL OR l.lot_id > $1)
        ORDER BY l.lot_id LIMIT $2
        """,
        after,
        limit,
    )
    return rows_as(rows, QualityLot)


async def skus_with_dated_lots(connection: Connection) -> set[str]:
    """The SKUs of which some lot was received with an expiry date."""
    rows = await connection.fetch(
        "SELECT DISTINCT sku FROM lots WHERE received AND expiry_date IS NOT NULL"
    )
    return {row["sku"] for row in rows}


async def quality_receipts(connection: Connection, lot_ids: Sequence[UUID]) -> list[Record]:
    """The receipts of these lots as the FSMA 204 export reads them."""
    return await connection.fetch(
        f"""
        SELECT {_RECEIPT_COLUMNS}
        FROM receipts r JOIN lots l USING (lot_id)
        WHERE r.lot_id = ANY($1::uuid[])
        ORDER BY r.lot_id, r.received_at, r.receipt_id
        """,
        list(lot_ids),
    )


async def quality_shipments(connection: Connection, lot_ids: Sequence[UUID]) -> list[Record]:
    """One shipment line per lot and customer (the customer's details are what differ), as
    the FSMA 204 export reads it."""
    return await connection.fetch(
        f"""
        SELECT DISTINCT ON (s.lot_id, s.customer_id) {_SHIPMENT_COLUMNS}
        FROM shipment_lines s
        LEFT JOIN lots l ON l.lot_id = s.lot_id
        LEFT JOIN customers c ON c.customer_id = s.customer_id
        WHERE s.lot_id = ANY($1::uuid[])
        ORDER BY s.lot_id, s.customer_id, s.shipped_at
        """,
        list(lot_ids),
    )


async def shipped_unreceived_lots(connection: Connection) -> list[UnreceivedLot]:
    """Lots shipment lines name that no receipt brought in, by lot code."""
    rows = await connection.fetch(
        """
        SELECT l.lot_id, l.lot_code, l.sku, count(*)::int AS shipment_lines
        FROM lots l JOIN shipment_lines s USING (lot_id)
        WHERE NOT l.received
        GROUP BY l.lot_id ORDER BY l.lot_code, l.lot_id
        """
    )
    return rows_as(rows, UnreceivedLot)


async def try_quality_lock(connection: Connection) -> bool:
    """The scheduled data-quality check's lock, for this transaction, if no one holds it."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", QUALITY_LOCK))


async def wait_quality_lock(connection: Connection) -> None:
    """The data-quality check's lock, for this transaction, once the check running ends."""
    await connection.execute("SELECT pg_advisory_xact_lock($1)", QUALITY_LOCK)


async def quality_checked_at(connection: Connection) -> datetime | None:
    value: datetime | None = await connection.fetchval("SELECT checked_at FROM quality_checks")
    return value


async def stored_quality_report(connection: Connection) -> DataQualityReport | None:
    """The latest data-quality check, as it was stored."""
    report = await connection.fetchval("SELECT report FROM quality_checks")
    return DataQualityReport.model_validate(report) if report is not None else None


async def store_quality_report(connection: Connection, report: DataQualityReport) -> None:
    await connection.execute(
        """
        INSERT INTO quality_checks (latest, checked_at, report) VALUES (true, $1, $2)
        ON CONFLICT (latest) DO UPDATE
            SET checked_at = EXCLUDED.checked_at, report = EXCLUDED.report
        """,
        report.checked_at,
        report.model_dump(mode="json"),
    )
