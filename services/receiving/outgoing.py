"""The builders of `goods-received`, from the receipt request and the lot it landed in, and of
`lot-registered`, for a lot that comes with nothing on hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.receiving.records import LotRecord
from services.receiving.schemas import ReceiptRequest
from shared.contracts.events import ONBOARDING, GoodsReceived, LotInput, LotRegistered


@dataclass(frozen=True)
class ReceiptPlace:
    """What the receipt decided beyond its request: its id, where and when it arrived."""

    receipt_id: str
    location: str
    received_at: datetime
    qc_required: bool = False  # the product's, from the catalogue


def goods_received(
    request: ReceiptRequest, lot: LotRecord, inputs: list[LotInput], place: ReceiptPlace
) -> GoodsReceived:
    """The request's own values where it gives them, else what the lot already knows; the
    lot's dates and cost, which a re-receipt may have filled in or blended."""
    return GoodsReceived(
        receipt_id=place.receipt_id,
        lot_id=lot.lot_id,
        lot_code=lot.lot_code,
        sku=request.sku,
        gtin=request.gtin or lot.gtin,
        quantity=request.quantity,
        uom=request.uom,
        location=place.location,
        received_at=place.received_at,
        supplier=request.supplier or lot.supplier,
        supplier_lot_code=request.supplier_lot_code or lot.supplier_lot_code,
        purchase_order=request.purchase_order,
        production_date=lot.production_date,
        expiry_date=lot.expiry_date,
        best_before_date=lot.best_before_date,
        unit_cost=lot.cost,
        inputs=inputs,
        qc_required=place.qc_required,
    )


def lot_registered(request: ReceiptRequest, lot: LotRecord, place: ReceiptPlace) -> LotRegistered:
    """A lot imported with nothing on hand (sold out before the move): what `goods-received`
    would say of it, without a quantity, so that inventory and recall know it."""
    return LotRegistered(
        registration_id=place.receipt_id,
        lot_id=lot.lot_id,
        lot_code=lot.lot_code,
        sku=request.sku,
        gtin=request.gtin or lot.gtin,
        uom=request.uom,
        location=place.location,
        received_at=place.received_at,
        supplier=request.supplier or lot.supplier,
        supplier_lot_code=request.supplier_lot_code or lot.supplier_lot_code,
        purchase_order=request.purchase_order,
        production_date=lot.production_date,
        expiry_date=lot.expiry_date,
        best_before_date=lot.best_before_date,
        unit_cost=lot.cost,
        reason=ONBOARDING,
    )
