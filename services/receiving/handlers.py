"""Receiving commands: a receipt in, the lot out, `goods-received` into the outbox."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.receiving import db
from services.receiving.domain import (
    InputLot,
    InputRequest,
    LotDates,
    LotNumbering,
    ReceivingError,
    blended_unit_cost,
    check_consumption,
    conflicting_dates,
    merged_dates,
)
from services.receiving.schemas import (
    LotView,
    ProductRequest,
    ProductView,
    ReceiptRequest,
    ReceiptView,
    ScanReceiptRequest,
    money,
)
from shared.contracts.events import GoodsReceived, LotInput
from shared.contracts.types import Supplier
from shared.errors import ErrorKind
from shared.gs1 import Gs1Error, parse_gs1
from shared.ids import new_id, uuid7
from shared.runtime.database import Connection, Record, UnitOfWork


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
    connection = unit.connection
    fingerprint = request_fingerprint(request)
    if request.receipt_id or idempotency_key:
        keys = [f"receipt:{request.receipt_id}"] if request.receipt_id else []
        keys += [f"key:{idempotency_key}"] if idempotency_key else []
        await db.lock_idempotency_keys(connection, keys)
        earlier = await db.find_receipt(
            connection, receipt_id=request.receipt_id, idempotency_key=idempotency_key
        )
        if earlier is not None:
            if earlier["request_hash"] != fingerprint:
                raise ReceivingError(
                    "idempotency_conflict",
                    f"receipt {earlier['receipt_id']} was made with a different body",
                    kind=ErrorKind.CONFLICT,
                )
            return ReceiptOutcome(ReceiptView.model_validate(earlier["response"]), True)

    dates = LotDates(request.production_date, request.expiry_date, request.best_before_date)
    if problems := dates.problems():
        raise ReceivingError("invalid_dates", "; ".join(problems))
    received_at = request.received_at or now
    supplier_id = request.supplier.supplier_id if request.supplier else None
    lot_code = request.lot_code or await _generate_lot_code(
        unit, request, numbering, received_at, supplier_id
    )

    lot, new_lot = await _lot_for_receipt(unit, request, lot_code, dates, received_at)
    lot_id: UUID = lot["lot_id"]
    inputs = await _consume_inputs(unit, request, produced_lot_id=lot_id)

    receipt_id = request.receipt_id or new_id()
    location = request.location or default_location
    unit_cost = money(lot["unit_cost"], lot["currency"])
    supplier = request.supplier or (
        Supplier(supplier_id=lot["supplier_id"], name=lot["supplier_name"])
        if lot["supplier_id"]
        else None
    )
    event = GoodsReceived(
        receipt_id=receipt_id,
        lot_id=lot_id,
        lot_code=lot_code,
        sku=request.sku,
        gtin=request.gtin or lot["gtin"],
        quantity=request.quantity,
        uom=request.uom,
        location=location,
        received_at=received_at,
        supplier=supplier,
        supplier_lot_code=request.supplier_lot_code or lot["supplier_lot_code"],
        purchase_order=request.purchase_order,
        production_date=lot["production_date"],
        expiry_date=lot["expiry_date"],
        best_before_date=lot["best_before_date"],
        unit_cost=unit_cost,
        inputs=inputs,
    )
    unit.emit(event, time=now)
    view = ReceiptView(
        **event.model_dump(exclude={"inputs"}),
        inputs=[item.model_dump(mode="json") for item in inputs],
        lot_received_quantity=lot["received_quantity"],
        new_lot=new_lot,
    )
    await db.insert_receipt(
        connection,
        receipt_id=receipt_id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        lot_id=lot_id,
        quantity=request.quantity,
        uom=request.uom,
        location=location,
        purchase_order=request.purchase_order,
        received_at=received_at,
        response=view.model_dump(mode="json"),
        inputs=[(item.lot_id, item.quantity, item.uom) for item in inputs],
    )
    return ReceiptOutcome(view, False)


async def _generate_lot_code(
    unit: UnitOfWork,
    request: ReceiptRequest,
    numbering: LotNumbering,
    received_at: datetime,
    supplier_id: str | None,
) -> str:
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
) -> tuple[dict[str, Any], bool]:
    """The lot this receipt creates, or the existing one it adds to when their dates agree."""
    connection = unit.connection
    existing = await db.lock_lot_by_code(connection, request.sku, lot_code)
    if existing is None:
        fields: dict[str, Any] = {
            "lot_id": uuid7(),
            "sku": request.sku,
            "lot_code": lot_code,
            "gtin": request.gtin,
            "uom": request.uom,
            "supplier_id": request.supplier.supplier_id if request.supplier else None,
            "supplier_name": request.supplier.name if request.supplier else None,
            "supplier_lot_code": request.supplier_lot_code,
            "production_date": dates.production_date,
            "expiry_date": dates.expiry_date,
            "best_before_date": dates.best_before_date,
            "unit_cost": request.unit_cost.amount if request.unit_cost else None,
            "currency": request.unit_cost.currency if request.unit_cost else None,
            "quantity": request.quantity,
            "received_at": received_at,
        }
        if await db.insert_lot(connection, fields):
            return {**fields, "received_quantity": request.quantity}, True
        existing = await db.lock_lot_by_code(connection, request.sku, lot_code)
        assert existing is not None, "the lot that won the race is committed"

    if existing["uom"] != request.uom:
        raise ReceivingError(
            "uom_mismatch",
            f"lot {lot_code} of {request.sku} is counted in {existing['uom']}, not {request.uom}",
            kind=ErrorKind.CONFLICT,
        )
    current = LotDates(
        existing["production_date"], existing["expiry_date"], existing["best_before_date"]
    )
    if conflicts := conflicting_dates(current, dates):
        raise ReceivingError(
            "lot_dates_conflict",
            f"lot {lot_code} of {request.sku} exists with other dates: {'; '.join(conflicts)}",
            kind=ErrorKind.CONFLICT,
        )
    merged = merged_dates(current, dates)
    unit_cost, currency = blended_unit_cost(
        existing["unit_cost"],
        existing["currency"],
        existing["received_quantity"],
        request.unit_cost.amount if request.unit_cost else None,
        request.unit_cost.currency if request.unit_cost else None,
        request.quantity,
    )
    await db.add_to_lot(
        connection,
        existing["lot_id"],
        quantity=request.quantity,
        received_at=received_at,
        production_date=merged.production_date,
        expiry_date=merged.expiry_date,
        best_before_date=merged.best_before_date,
        unit_cost=unit_cost,
        currency=currency,
        gtin=request.gtin,
    )
    return {
        **dict(existing),
        "production_date": merged.production_date,
        "expiry_date": merged.expiry_date,
        "best_before_date": merged.best_before_date,
        "unit_cost": unit_cost,
        "currency": currency,
        "received_quantity": existing["received_quantity"] + request.quantity,
    }, False


async def _consume_inputs(
    unit: UnitOfWork, request: ReceiptRequest, *, produced_lot_id: UUID
) -> list[LotInput]:
    if not request.inputs:
        return []
    wanted = [
        InputRequest(item.lot_id, item.lot_code, item.sku, item.quantity, item.uom)
        for item in request.inputs
    ]
    rows = await db.lock_input_lots(
        unit.connection,
        [item.lot_id for item in wanted if item.lot_id is not None],
        [
            (item.sku, item.lot_code)
            for item in wanted
            if item.lot_id is None and item.sku and item.lot_code
        ],
    )
    by_id = {row["lot_id"]: row for row in rows}
    by_code = {(row["sku"], row["lot_code"]): row for row in rows}
    consumed: dict[UUID, Decimal] = {}
    inputs: list[LotInput] = []
    for item in wanted:
        row = by_id.get(item.lot_id) if item.lot_id else by_code.get((item.sku, item.lot_code))
        lot = _input_lot(
            row, already=consumed.get(row["lot_id"], Decimal(0)) if row else Decimal(0)
        )
        check_consumption(item, lot, produced_lot_id=produced_lot_id)
        assert lot is not None
        consumed[lot.lot_id] = consumed.get(lot.lot_id, Decimal(0)) + item.quantity
        inputs.append(
            LotInput(
                lot_id=lot.lot_id,
                lot_code=lot.lot_code,
                sku=lot.sku,
                quantity=item.quantity,
                uom=lot.uom,
            )
        )
    for lot_id, quantity in consumed.items():
        await db.consume(unit.connection, lot_id, quantity)
    return _merge_same_lot(inputs)


def _input_lot(row: Record | None, *, already: Decimal) -> InputLot | None:
    if row is None:
        return None
    return InputLot(
        lot_id=row["lot_id"],
        lot_code=row["lot_code"],
        sku=row["sku"],
        uom=row["uom"],
        available=row["available"] - already,
    )


def _merge_same_lot(inputs: list[LotInput]) -> list[LotInput]:
    merged: dict[UUID, LotInput] = {}
    for item in inputs:
        if item.lot_id in merged:
            previous = merged[item.lot_id]
            merged[item.lot_id] = previous.model_copy(
                update={"quantity": previous.quantity + item.quantity}
            )
        else:
            merged[item.lot_id] = item
    return list(merged.values())


def lot_view(row: Record) -> LotView:
    return LotView(
        lot_id=row["lot_id"],
        lot_code=row["lot_code"],
        sku=row["sku"],
        gtin=row["gtin"],
        uom=row["uom"],
        supplier=Supplier(supplier_id=row["supplier_id"], name=row["supplier_name"])
        if row["supplier_id"]
        else None,
        supplier_lot_code=row["supplier_lot_code"],
        production_date=row["production_date"],
        expiry_date=row["expiry_date"],
        best_before_date=row["best_before_date"],
        unit_cost=money(row["unit_cost"], row["currency"]),
        received_quantity=row["received_quantity"],
        consumed_quantity=row["consumed_quantity"],
        first_received_at=row["first_received_at"],
        last_received_at=row["last_received_at"],
    )


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
        return ReceiptRequest(
            receipt_id=scan_request.receipt_id,
            sku=sku,
            gtin=scan.gtin,
            quantity=quantity,
            uom=scan_request.uom or "EA",
            location=scan_request.location,
            supplier=scan_request.supplier,
            supplier_lot_code=scan.lot_code,
            lot_code=scan.lot_code,
            purchase_order=scan_request.purchase_order,
            production_date=scan.production_date,
            expiry_date=scan.expiry_date,
            best_before_date=scan.best_before_date,
            unit_cost=scan_request.unit_cost,
        )
    except ValueError as error:
        raise ReceivingError(
            "invalid_barcode", f"the scanned values are not a valid receipt: {error}"
        ) from error


async def put_product(unit: UnitOfWork, sku: str, request: ProductRequest) -> ProductView:
    gtins = sorted(set(request.gtins))
    taken = [row for row in await db.lock_gtins(unit.connection, gtins) if row["sku"] != sku]
    if taken:
        raise ReceivingError(
            "gtin_taken",
            "; ".join(f"GTIN {row['gtin']} is already SKU {row['sku']}" for row in taken),
            kind=ErrorKind.CONFLICT,
        )
    await db.put_product(
        unit.connection, sku, description=request.description, uom=request.uom, gtins=gtins
    )
    row = await db.get_product(unit.connection, sku)
    assert row is not None
    return ProductView(**dict(row))
