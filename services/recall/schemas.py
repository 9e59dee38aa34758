"""HTTP request and response bodies of the recall service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal, Self, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from shared.contracts.events import RecallScope
from shared.contracts.types import LongText, ShortText, SignedQuantity
from shared.runtime.http import Rfc3339Date

_SCOPE_DATE: TypeAdapter[Any] = TypeAdapter(Rfc3339Date)


class FromRow(BaseModel):
    """A response body read from one of our own queries, already valid: built without
    validating again, but never from a column it does not declare (one that would be
    dropped silently)."""

    @classmethod
    def from_row(cls, row: Any, **more: Any) -> Self:
        """`row` is a mapping or a database record."""
        values = {**dict(row), **more}
        unknown = values.keys() - cls.model_fields.keys()
        if unknown:
            raise ValueError(f"{cls.__name__} declares no {', '.join(sorted(unknown))}")
        return cast("Self", cls.model_construct(**values))


class RecallRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason": "Customer complaint: off taste, possible fermentation",
                    "classification": "II",
                    "scope": {"lot_codes": ["OJ-1L-20261121-0002"], "sku": "OJ-1L"},
                }
            ]
        },
    )

    reason: LongText = Field(min_length=1)
    classification: Literal["I", "II", "III"] = "II"
    scope: RecallScope

    @field_validator("scope", mode="before")
    @classmethod
    def _dates_as_documented(cls, scope: Any) -> Any:
        # The contract's model reads `0` or "1700000000" as a date; a request must say
        # YYYY-MM-DD, as documented.
        if isinstance(scope, Mapping):
            for name in ("received_from", "received_to"):
                if scope.get(name) is not None:
                    try:
                        _SCOPE_DATE.validate_python(scope[name])
                    except ValidationError:
                        raise ValueError(f"{name}: expected a date as YYYY-MM-DD") from None
        return scope


class RecallAccepted(BaseModel):
    recall_id: str
    status: str
    affected_lots: int
    affected_customer_count: int
    shipped_quantity: SignedQuantity


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: ShortText | None = None


class LotSummary(FromRow):
    lot_id: UUID
    lot_code: str
    sku: str
    supplier_id: str | None = None
    via_lot_id: UUID | None = None


class CustomerShipment(FromRow):
    shipment_id: str
    order_id: str
    shipped_at: datetime
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    uom: str
    late: bool


class AffectedCustomer(BaseModel):
    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: dict[str, Any] | None = None
    shipments: list[CustomerShipment]


class WaitingCustomer(FromRow):
    """A customer whose notice could not be sent: it was dead-lettered to recall-issued.dlq."""

    customer_id: str
    late: bool = Field(description="The notice was a late one (a shipment after the recall).")
    shipments: int = Field(description="Shipments the notice would have named.")
    reason: str = Field(description="Why it could not be sent.")
    since: datetime


class RecallView(BaseModel):
    recall_id: str
    status: str
    issued_at: datetime
    reason: str
    classification: str
    scope: dict[str, Any]
    requested_by: str
    affected_customer_count: int
    shipped_quantity: SignedQuantity
    notified_customers: int
    notices_complete: bool
    late_notices: int
    waiting_customers: list[WaitingCustomer] = Field(
        default_factory=list,
        description="Customers whose notice could not be sent, and why; they are not counted"
        " in notified_customers. Each is also on recall-issued.dlq and in the metric"
        " lottrace_recall_notices_undeliverable_total.",
    )
    closed_at: datetime | None = None
    closed_by: str | None = None
    affected_lots: list[LotSummary]
    customers: list[AffectedCustomer]


class TraceLot(BaseModel):
    lot_id: UUID
    lot_code: str | None
    sku: str | None
    depth: int
    linked_to: list[UUID]
    supplier_id: str | None = None
    supplier_name: str | None = None
    purchase_order: str | None = None
    expiry_date: date | None = None
    received_at: datetime | None = None
    received: bool


class TraceShipment(FromRow):
    shipment_id: str
    order_id: str
    customer_id: str
    customer_name: str | None = None
    shipped_at: datetime
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    uom: str


class TraceCustomer(BaseModel):
    customer_id: str
    name: str | None = None
    lots: list[str]


class TraceTotals(BaseModel):
    lots: int
    customers: int
    shipment_lines: int
    shipments_truncated: bool


class TraceForward(BaseModel):
    """Everything made from a lot, at any depth, and who received any of it."""

    lot: TraceLot
    made_into: list[TraceLot]
    shipments: list[TraceShipment]
    customers: list[TraceCustomer]
    totals: TraceTotals


class Consumed(BaseModel):
    into_lot_id: UUID
    quantity: SignedQuantity
    uom: str | None = None


class TraceInput(TraceLot):
    consumed: list[Consumed]


class TraceReceipt(FromRow):
    receipt_id: str
    lot_id: UUID
    quantity: SignedQuantity
    uom: str
    received_at: datetime
    location: str | None = None
    purchase_order: str | None = None
    supplier_id: str | None = None
    supplier_name: str | None = None


class TraceBackward(BaseModel):
    """Where a lot came from: its inputs to the root, suppliers and purchase orders."""

    lot: TraceLot
    inputs: list[TraceInput]
    roots: list[UUID]
    receipts: dict[str, list[TraceReceipt]]


class OrderShipmentLine(FromRow):
    shipment_id: str
    line_no: int
    customer_id: str
    shipped_at: datetime
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    uom: str


class TraceOrder(BaseModel):
    order_id: str
    shipments: list[OrderShipmentLine]
    lots: dict[str, list[TraceLot]]
