"""The builders of `goods-received`, from the receipt request and the lot it landed in, and of
`lot-registered`, for a lot that comes with nothing on hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from services.receiving.records import LotRecord
from services.receiving.schemas import ReceiptRequest
from shared.contracts.events import ONBOARDING, GoodsReceived, LotInput, LotRegistered
from shared.contracts.types import Money, Supplier
from shared.records import built_from


@dataclass(frozen=True)
class ReceiptPlace:
    """What the receipt decided beyond its request: its id, where and when it arrived."""

    receipt_id: str
    location: str
    received_at: datetime
    qc_required: bool = False  # the product's, from the catalogue


@dataclass(frozen=True)
class AnnouncedLot:
    """What `goods-received` and `lot-registered` both say of the lot: the request's own values
    where it gives them, else what the lot already knows; the lot's dates and cost, which a
    re-receipt may have filled in or blended."""

    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None
    uom: str
    location: str
    received_at: datetime
    supplier: Supplier | None
    supplier_lot_code: str | None
    purchase_order: str | None
    production_date: date | None
    expiry_date: date | None
    best_before_date: date | None
    unit_cost: Money | None

    @classmethod
    def of(cls, request: ReceiptRequest, lot: LotRecord, place: ReceiptPlace) -> AnnouncedLot:
        return built_from(
            cls,
            lot,
            place,
            sku=request.sku,
            gtin=request.gtin or lot.gtin,
            uom=request.uom,
            supplier=request.supplier or lot.supplier,
            supplier_lot_code=request.supplier_lot_code or lot.supplier_lot_code,
            purchase_order=request.purchase_order,
            unit_cost=lot.cost,
        )


def goods_received(
    request: ReceiptRequest, lot: LotRecord, inputs: list[LotInput], place: ReceiptPlace
) -> GoodsReceived:
    """The lot as announced, with what this receipt brought: its quantity and inputs."""
    return built_from(
        GoodsReceived,
        AnnouncedLot.of(request, lot, place),
        receipt_id=place.receipt_id,
        quantity=request.quantity,
        inputs=inputs,
        qc_required=place.qc_required,
    )


def lot_registered(request: ReceiptRequest, lot: LotRecord, place: ReceiptPlace) -> LotRegistered:
    """A lot imported with nothing on hand (sold out before the move): what `goods-received`
    would say of it, without a quantity, so that inventory and recall know it."""
    return built_from(
        LotRegistered,
        AnnouncedLot.of(request, lot, place),
        registration_id=place.receipt_id,
        reason=ONBOARDING,
    )
