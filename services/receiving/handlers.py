"""Receiving commands: a receipt in, the lot out, `goods-received` into the outbox."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.receiving import db
from services.receiving.domain import (
    InputLot,
    InputRequest,
    LotDates,
    LotNumbering,
    ReceivingError,
    check_consumption,
    check_dates,
    check_same_lot,
)
from services.receiving.outgoing import ReceiptPlace, goods_received
from services.receiving.records import LotRecord, ReceiptInput, ReceiptRecord
from services.receiving.schemas import (
    ProductRequest,
    ProductView,
    ReceiptRequest,
    ReceiptView,
    ScanReceiptRequest,
)
from services.receiving.views import product_view, receipt_view
from shared.contracts.events import LotInput
from shared.errors import ErrorKind
from shared.gs1 import Gs1Error, parse_gs1
from shared.ids import new_id
from shared.records import built_from
from shared.runtime.database import Connection, UnitOfWork


@dataclass(frozen=True)
class ReceiptOutcome:
    view: ReceiptView
    replayed: bool


def request_fingerprint(request: ReceiptRequest) -> str:
    canonical = request.model_dump_json(exclude={"receipt_id"}, exclude_none=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def receive(
    unit: UnitOfWork,
    request: ReceiptRequest,
    *,
    numbering: LotNumbering,
    default_location: str,
    idempotency_key: str | None,
    now: datetime,
) -> ReceiptOutcome:
    fingerprint = request_fingerprint(request)
    earlier = await _earlier_answer(unit.connection, request, idempotency_key, fingerprint)
    if earlier is not None:
        return ReceiptOutcome(earlier, True)
    dates = LotDates(request.production_date, request.expiry_date, request.best_before_date)
    check_dates(dates)
    received_at = request.received_at or now
    lot_code = request.lot_code or await _generate_lot_code(unit, request, numbering, received_at)
    lot, new_lot = await _lot_for_receipt(unit, request, lot_code, dates, received_at)
    inputs = await _consume_inputs(unit, request, produced_lot_id=lot.lot_id)
    place = ReceiptPlace(
        receipt_id=request.receipt_id or new_id(),
        location=request.location or default_location,
        received_at=received_at,
        qc_required=await db.requires_qc(unit.connection, request.sku),
    )
    event = goods_received(request, lot, inputs, place)
    unit.emit(event, time=now)
    view = receipt_view(event, lot, new_lot=new_lot)
    receipt = ReceiptRecord.of(
        event, view, idempotency_key=idempotency_key, request_hash=fingerprint
    )
    await db.insert_receipt(unit.connection, receipt, [ReceiptInput.of(item) for item in inputs])
    return ReceiptOutcome(view, False)


async def _earlier_answer(
    connection: Connection,
    request: ReceiptRequest,
    idempotency_key: str | None,
    fingerprint: str,
) -> ReceiptView | None:
    """The first answer to a receipt with the same id or key; a different body is refused."""
    if not (request.receipt_id or idempotency_key):
        return None
    keys = [f"receipt:{request.receipt_id}"] if request.receipt_id else []
    keys += [f"key:{idempotency_key}"] if idempotency_key else []
    await db.lock_idempotency_keys(connection, keys)
    earlier = await db.find_receipt(
        connection, receipt_id=request.receipt_id, idempotency_key=idempotency_key
    )
    if earlier is None:
        return None
    if earlier.request_hash != fingerprint:
        raise ReceivingError(
            "idempotency_conflict",
            f"receipt {earlier.receipt_id} was made with a different body",
            kind=ErrorKind.CONFLICT,
        )
    return earlier.view


async def _generate_lot_code(
    unit: UnitOfWork,
    request: ReceiptRequest,
    numbering: LotNumbering,
    received_at: datetime,
) -> str:
    supplier_id = request.supplier.supplier_id if request.supplier else None
    rule = numbering.rule_for(request.sku, supplier_id)
    sequence = (
        await db.next_sequence(unit.connection, request.sku, received_at.date())
        if rule.needs_sequence
        else 0
    )
    return rule.render(
        sku=request.sku,
        received=received_at,
        seq=sequence,
        supplier_lot_code=request.supplier_lot_code,
        supplier_id=supplier_id,
        gtin=request.gtin,
    )


async def _lot_for_receipt(
    unit: UnitOfWork,
    request: ReceiptRequest,
    lot_code: str,
    dates: LotDates,
    received_at: datetime,
) -> tuple[LotRecord, bool]:
    """The lot this receipt creates (True), or the existing one it adds to when their dates
    agree (False)."""
    connection = unit.connection
    existing = await db.lock_lot_by_code(connection, request.sku, lot_code)
    if existing is None:
        created = LotRecord.first_receipt(request, lot_code, dates, received_at)
        if await db.insert_lot(connection, created):
            return created, True
        existing = await db.lock_lot_by_code(connection, request.sku, lot_code)
        assert existing is not None, "the lot that won the race is committed"
    check_same_lot(existing, sku=request.sku, uom=request.uom, dates=dates)
    updated = existing.with_receipt(request, dates, received_at)
    await db.update_lot(connection, updated)
    return updated, False


async def _consume_inputs(
    unit: UnitOfWork, request: ReceiptRequest, *, produced_lot_id: UUID
) -> list[LotInput]:
    if not request.inputs:
        return []
    wanted = [
        InputRequest(item.lot_id, item.lot_code, item.sku, item.quantity, item.uom)
        for item in request.inputs
    ]
    found = await _input_lots(unit.connection, wanted)
    # Per lot, in the order the inputs first name it: what the receipt takes from it, summed
    # over inputs naming the same lot (it is consumed, and announced, once).
    consumed: dict[UUID, Decimal] = defaultdict(Decimal)
    lots: dict[UUID, InputLot] = {}
    for item, lot_found in zip(wanted, found, strict=True):
        lot = _less_consumed(lot_found, consumed)
        check_consumption(item, lot, produced_lot_id=produced_lot_id)
        assert lot is not None
        consumed[lot.lot_id] += item.quantity
        lots.setdefault(lot.lot_id, lot)
    for lot_id, quantity in consumed.items():
        await db.consume(unit.connection, lot_id, quantity)
    return [
        LotInput(
            lot_id=lot_id,
            lot_code=lot.lot_code,
            sku=lot.sku,
            quantity=consumed[lot_id],
            uom=lot.uom,
        )
        for lot_id, lot in lots.items()
    ]


async def _input_lots(connection: Connection, wanted: list[InputRequest]) -> list[InputLot | None]:
    """The lot each input names, locked; None for an input that names no known lot."""
    lots = await db.lock_input_lots(
        connection,
        [item.lot_id for item in wanted if item.lot_id is not None],
        [
            (item.sku, item.lot_code)
            for item in wanted
            if item.lot_id is None and item.sku and item.lot_code
        ],
    )
    by_id = {lot.lot_id: lot for lot in lots}
    by_code: dict[tuple[str | None, str | None], InputLot] = {
        (lot.sku, lot.lot_code): lot for lot in lots
    }
    return [
        by_id.get(item.lot_id) if item.lot_id else by_code.get((item.sku, item.lot_code))
        for item in wanted
    ]


def _less_consumed(lot: InputLot | None, consumed: Mapping[UUID, Decimal]) -> InputLot | None:
    """The input lot less what earlier inputs of this receipt already take from it."""
    if lot is None:
        return None
    return replace(lot, available=lot.available - consumed.get(lot.lot_id, Decimal(0)))


# ------------------------------------------------------------------ scanning and products


async def receipt_from_scan(
    connection: Connection, scan_request: ScanReceiptRequest
) -> ReceiptRequest:
    """Turn a scanned GS1 label into a receipt: the label's batch is the lot code (so every case
    of one batch lands in one lot), its dates are the lot's dates, its count the quantity."""
    try:
        scan = parse_gs1(scan_request.barcode)
    except Gs1Error as error:
        raise ReceivingError("invalid_barcode", f"{error.element}: {error}") from error
    quantity = scan_request.quantity or (scan.count if scan.count else None)
    if quantity is None:
        raise ReceivingError(
            "quantity_required", "give quantity, or scan a label with a count (37)"
        )
    sku = scan_request.sku
    if sku is None and scan.gtin:
        sku = await db.sku_for_gtin(connection, scan.gtin) or scan.gtin
    if sku is None:
        raise ReceivingError("sku_required", "the barcode has no GTIN (01): give sku")
    try:
        # The request's own fields, else the label's (GTIN, lot code, dates).
        return built_from(
            ReceiptRequest,
            scan_request,
            scan,
            sku=sku,
            quantity=quantity,
            uom=scan_request.uom or "EA",
            supplier_lot_code=scan.lot_code,
        )
    except ValueError as error:
        raise ReceivingError(
            "invalid_barcode", f"the scanned values are not a valid receipt: {error}"
        ) from error


async def put_product(unit: UnitOfWork, sku: str, request: ProductRequest) -> ProductView:
    gtins = sorted(set(request.gtins))
    taken = [owner for owner in await db.lock_gtins(unit.connection, gtins) if owner.sku != sku]
    if taken:
        raise ReceivingError(
            "gtin_taken",
            "; ".join(f"GTIN {owner.gtin} is already SKU {owner.sku}" for owner in taken),
            kind=ErrorKind.CONFLICT,
        )
    await db.put_product(
        unit.connection,
        sku,
        description=request.description,
        uom=request.uom,
        gtins=gtins,
        qc_required=request.qc_required,
    )
    product = await db.get_product(unit.connection, sku)
    assert product is not None
    return product_view(product)
