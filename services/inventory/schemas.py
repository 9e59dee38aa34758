"""HTTP request and response bodies of the inventory service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.inventory.domain import LotStatus, QcResult
from shared.contracts.events import ReturnLine
from shared.contracts.types import (
    Customer,
    Identifier,
    Money,
    Quantity,
    ShortText,
    SignedQuantity,
    StrictModel,
)
from shared.tables import Table


class LocationStock(BaseModel):
    location: str
    on_hand: SignedQuantity
    reserved: SignedQuantity
    available: SignedQuantity
    held: bool = Field(
        default=False,
        description="Stock here is never allocated: returns held for inspection (the"
        " `RETURNS` location) until moved out (restock), adjusted away (destroyed) or returned"
        " to the vendor.",
    )


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
    available: SignedQuantity = Field(
        description="What may be allocated: on hand less reserved, at the locations that are"
        " not held."
    )
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
    received: SignedQuantity
    consumed: SignedQuantity
    shipped: SignedQuantity
    adjusted: SignedQuantity
    returned: SignedQuantity = Field(description="Units customers returned into this lot.")
    vendor_returned: SignedQuantity = Field(description="Units returned to the supplier.")
    hold_reason: str | None = None
    recall_id: str | None = None
    unit_cost: Money | None = None


class HoldRequest(StrictModel):
    reason: ShortText = Field(min_length=1, examples=["customer complaint: off taste"])


class ReleaseRequest(StrictModel):
    reason: ShortText | None = Field(default=None, description="Why the lot is released.")
    qc_result: QcResult | None = Field(
        default=None,
        description="The QC inspection's result. `passed` releases the lot; `failed` makes it"
        " `rejected`, never allocatable again. A lot received `qc_required` is only released"
        " with one (409 `qc_result_required` without).",
    )


class AdjustmentRequest(StrictModel):
    """A cycle count at lot level: either the change (`quantity`, signed) or what was counted."""

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
    change: str = Field(
        description="received, consumed, reserved, released, shipped, adjusted, hold, release,"
        " qc_passed, qc_failed, recalled, moved_out, moved_in, returned, returned_to_vendor,"
        " shipped_imported (a shipment made before lottrace, imported at onboarding: it moved"
        " no stock)."
    )
    quantity: SignedQuantity | None = None
    location: str | None = Field(default=None, description="Where the stock changed.")
    order_id: str | None = None
    cause: str = Field(
        description="Who or what did it: `user:<name>` for a person (the API key's name), the"
        " CloudEvents id of the event that did it, or `rule:<name>`."
    )
    detail: str | None = Field(default=None, description="Why: the reason given, the RMA.")


class MoveRequest(StrictModel):
    """Units of one lot moved from one location to another."""

    model_config = ConfigDict(populate_by_name=True)
    lot_id: UUID
    from_location: Identifier = Field(alias="from", description="Where the units are now.")
    to_location: Identifier = Field(alias="to", description="Where they go; not `from`.")
    quantity: Quantity = Field(description="How many; at most what is free (not reserved) there.")
    scans: list[ShortText] | None = Field(
        default=None,
        max_length=1000,
        description="GS1 barcodes of the cases moved: each must be this lot (its (10) lot code"
        " and, when both are known, its (01) GTIN), else 409 `scan_mismatch`.",
    )
    reason: ShortText | None = Field(default=None, description="Why, for the lot's history.")


class MoveView(BaseModel):
    lot_id: UUID = Field(description="The lot moved.")
    quantity: SignedQuantity = Field(description="How many units moved.")
    from_location: str = Field(serialization_alias="from", description="Where they were.")
    to_location: str = Field(serialization_alias="to", description="Where they are now.")
    lot: LotView = Field(description="The lot after the move, a row per location.")


class ReturnToVendorRequest(StrictModel):
    quantity: Quantity = Field(description="How many units go back to the supplier.")
    rma: Identifier = Field(description="The supplier's return authorisation (RMA) number.")
    reason: ShortText = Field(
        min_length=1, description="Why, for the lot's history.", examples=["failed QC: mould"]
    )
    location: Identifier | None = Field(
        default=None, description="Where they are taken from; needed when the lot is at several."
    )


class ReturnLineRequest(ReturnLine):
    """Units of one lot coming back: `lot_id`, or `lot_code` with the line's `sku`; `reason`
    one of recall, damaged, expired, quality, customer, other."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReturnRequest(StrictModel):
    """Units a customer sent back, as `goods-returned` carries them."""

    return_id: Identifier = Field(
        description="Unique per return, chosen by the caller (the return slip or RMA number):"
        " a re-sent return changes nothing, so a retry after a timeout is safe."
    )
    customer: Customer = Field(description="Who sent the units back.")
    order_id: Identifier | None = Field(default=None, description="The order they came with.")
    shipment_id: Identifier | None = Field(default=None, description="The shipment they came in.")
    recall_id: Identifier | None = Field(
        default=None, description="The recall this return answers, when it answers one."
    )
    returned_at: AwareDatetime | None = Field(default=None, description="Now when absent.")
    lines: list[ReturnLineRequest] = Field(
        min_length=1, max_length=1000, description="Each lot returned; every one must be known."
    )


class ReturnedLot(BaseModel):
    line_no: int = Field(description="The return line.")
    lot_id: UUID = Field(description="The lot the line named.")
    lot_code: str = Field(description="Its lot code.")
    sku: str = Field(description="Its SKU.")
    quantity: SignedQuantity = Field(description="How many units came back.")


class ReturnAccepted(BaseModel):
    """A return checked and sent on as `goods-returned`; inventory takes it in from there."""

    return_id: str = Field(description="The return's id, given or generated.")
    location: str = Field(description="Where the units are held for inspection.")
    lines: list[ReturnedLot] = Field(description="Each line with the lot it named.")


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


# ------------------------------------------------------------------ reports (docs/reports.md)


class ShortDatedLot(BaseModel):
    lot_id: UUID
    lot_code: str
    sku: str
    expiry_date: date
    days_left: int = Field(
        description="Days the lot can still be shipped, today and its expiry date included."
    )
    on_hand: SignedQuantity = Field(description="On hand at locations stock is picked from.")
    daily_sell_rate: SignedQuantity = Field(
        description="The SKU's units shipped per day over the last `sales_days` days (FEFO"
        " sells a SKU's lots one after the other, so the SKU's rate drains each lot)."
    )
    sells_in_time: SignedQuantity = Field(
        description="What sells before the expiry date at that rate, after the SKU's lots"
        " expiring earlier took their share."
    )
    wont_sell_in_time: SignedQuantity = Field(
        description="On hand less what sells in time: the units to clear, mark down or move."
    )


class ShortDatedReport(BaseModel):
    today: date
    within_days: int = Field(description="Lots expiring from today through this many days.")
    sales_days: int = Field(description="The days the sell rate is measured over.")
    lots: list[ShortDatedLot] = Field(description="Soonest expiry first.")

    def tables(self) -> list[Table]:
        return [Table.of("Short-dated", ShortDatedLot, self.lots)]


class LotMovement(BaseModel):
    lot_id: UUID
    lot_code: str
    sku: str
    supplier_id: str | None = None
    received_on: date
    received: SignedQuantity
    shipped: SignedQuantity
    on_hand: SignedQuantity
    sell_through_percent: SignedQuantity | None = Field(
        description="Shipped as a percentage of received (none when nothing was received)."
    )
    units_per_day: SignedQuantity = Field(
        description="Shipped per day from its receipt to today, or to its last shipment once"
        " nothing is on hand."
    )
    days_of_cover: SignedQuantity | None = Field(
        description="On hand divided by units per day: days until it runs out at that pace"
        " (none when it does not move)."
    )
    movement: str = Field(
        description="`fast`: at least 1.5 times the average units per day of its SKU's lots;"
        " `slow`: at most half of it, or not moving; else `steady`."
    )


class SkuMovers(BaseModel):
    sku: str
    lots: int
    average_units_per_day: SignedQuantity = Field(
        description="The average of its lots' units per day."
    )
    fast: list[str] = Field(description="Lot codes of its fast movers.")
    slow: list[str] = Field(description="Lot codes of its slow movers.")


class LotMovementReport(BaseModel):
    today: date
    received_within_days: int = Field(
        description="Lots received in this many days, today's too, and every lot with stock on"
        " hand however long ago it was received."
    )
    lots: list[LotMovement]
    skus: list[SkuMovers]

    def tables(self) -> list[Table]:
        return [Table.of("Lots", LotMovement, self.lots), Table.of("SKUs", SkuMovers, self.skus)]


class ReturnGroup(BaseModel):
    dimension: str = Field(description="What the row groups by: lot, sku, supplier or reason.")
    key: str | None = Field(
        description="The lot code, SKU, supplier id or return reason (none: no supplier)."
    )
    sku: str | None = Field(default=None, description="The lot's SKU (lot rows only).")
    returned: SignedQuantity
    shipped: SignedQuantity = Field(
        description="Shipped from the same lots (for a reason: from every lot in the report)."
    )
    return_rate_percent: SignedQuantity | None = Field(
        description="Returned as a percentage of shipped (none when nothing shipped)."
    )


class ReturnsReport(BaseModel):
    today: date
    received_within_days: int = Field(description="Lots received in this many days, today's too.")
    by_lot: list[ReturnGroup]
    by_sku: list[ReturnGroup]
    by_supplier: list[ReturnGroup]
    by_reason: list[ReturnGroup]

    def tables(self) -> list[Table]:
        """One table: the `dimension` column tells the groupings apart."""
        groups = [*self.by_lot, *self.by_sku, *self.by_supplier, *self.by_reason]
        return [Table.of("Returns", ReturnGroup, groups)]


class SupplierScore(BaseModel):
    supplier_id: str | None = Field(description="None: lots received without a supplier.")
    lots: int
    units_received: SignedQuantity
    qc_quarantined_lots: int = Field(
        description="Lots received `qc_required`: quarantined on receipt until their QC release.",
    )
    qc_failed_lots: int = Field(description="Lots whose QC result was `failed` (rejected).")
    held_lots: int = Field(
        description="Lots put on a quality hold at least once (`POST /lots/{id}/hold`); the QC"
        " quarantine on receipt is counted in `qc_quarantined_lots`, not here."
    )
    shipped: SignedQuantity
    returned: SignedQuantity
    return_rate_percent: SignedQuantity | None = Field(
        description="Returned as a percentage of shipped (none when nothing shipped)."
    )
    recalls: int = Field(description="Distinct recalls that reached its lots.")
    recalled_lots: int
    average_shelf_life_days_at_receipt: SignedQuantity | None = Field(
        description="Average days from receipt to expiry, over its lots with an expiry date."
    )


class SupplierScorecard(BaseModel):
    today: date
    received_within_days: int = Field(description="Lots received in this many days, today's too.")
    suppliers: list[SupplierScore] = Field(description="Most lots first.")

    def tables(self) -> list[Table]:
        return [Table.of("Suppliers", SupplierScore, self.suppliers)]
