"""HTTP request and response bodies of the inventory service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.inventory.domain import LotStatus, QcResult
from shared.contracts.types import Identifier, Money, ShortText, SignedQuantity


class LocationStock(BaseModel):
    location: str
    on_hand: SignedQuantity
    reserved: SignedQuantity
    available: SignedQuantity


class LotView(BaseModel):
    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None = None
    uom: str
    location: str | None = Field(
        default=None, description="Where most of the lot is; every location is in `locations`."
    )
    locations: list[LocationStock] = Field(default_factory=list)
    supplier_id: str | None = None
    expiry_date: date | None = None
    received_at: datetime | None = None
    status: LotStatus = Field(
        description="Its most serious block (recalled, rejected, quarantined, expired); else"
        " `depleted` when nothing is on hand; else `available`."
    )
    qc_state: str | None = Field(
        default=None,
        description="For a lot received `qc_required`: `pending` until its QC release, then"
        " `passed` or `failed`.",
    )
    on_hand: SignedQuantity
    reserved: SignedQuantity
    available: SignedQuantity
    received: SignedQuantity
    consumed: SignedQuantity
    shipped: SignedQuantity
    adjusted: SignedQuantity
    hold_reason: str | None = None
    recall_id: str | None = None
    unit_cost: Money | None = None


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ShortText = Field(min_length=1, examples=["customer complaint: off taste"])


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ShortText | None = Field(default=None, description="Why the lot is released.")
    qc_result: QcResult | None = Field(
        default=None,
        description="The QC inspection's result. `passed` releases the lot; `failed` makes it"
        " `rejected`, never allocatable again. A lot received `qc_required` is only released"
        " with one (409 `qc_result_required` without).",
    )


class AdjustmentRequest(BaseModel):
    """A cycle count at lot level: either the change (`quantity`, signed) or what was counted."""

    model_config = ConfigDict(extra="forbid")
    lot_id: UUID
    location: Identifier | None = Field(
        default=None, description="Where the count was made; needed when the lot is at several."
    )
    quantity: SignedQuantity | None = Field(default=None, description="Signed change to on hand.")
    counted: SignedQuantity | None = Field(default=None, ge=0, description="On hand as counted.")
    reason: ShortText = Field(min_length=1, examples=["cycle count"])

    @model_validator(mode="after")
    def _one_of(self) -> AdjustmentRequest:
        if (self.quantity is None) == (self.counted is None):
            raise ValueError("give exactly one of quantity (the change) or counted")
        return self


class AdjustmentView(BaseModel):
    lot_id: UUID
    change: SignedQuantity
    lot: LotView


class HistoryEntry(BaseModel):
    at: datetime
    change: str
    quantity: SignedQuantity | None = None
    order_id: str | None = None
    cause: str
    detail: str | None = None


class OrderLineView(BaseModel):
    line_no: int
    sku: str
    uom: str
    ordered: SignedQuantity
    shipped: SignedQuantity
    reserved: SignedQuantity
    backordered: SignedQuantity
    backorder_reason: str | None = None


class ReservationView(BaseModel):
    line_no: int
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    expiry_date: date | None = None


class OrderView(BaseModel):
    order_id: str
    customer_id: str | None
    status: str
    revision: int
    lines: list[OrderLineView]
    reservations: list[ReservationView]


class ValuationLine(BaseModel):
    sku: str
    lot_id: UUID
    lot_code: str
    on_hand: SignedQuantity
    unit_cost: Money | None = None
    value: SignedQuantity | None = None


class SkuValuation(BaseModel):
    sku: str
    currency: str | None
    on_hand: SignedQuantity
    value: SignedQuantity
    uncosted_quantity: SignedQuantity
    lots: list[ValuationLine]


def zero() -> Decimal:
    return Decimal(0)
