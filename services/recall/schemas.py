"""HTTP request and response bodies of the recall service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Self, cast
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from shared.contracts.events import (
    RecallResponse,
    RecallScope,
    ReportedUnits,
    ResponseChannel,
    ResponseKind,
)
from shared.contracts.types import Identifier, LongText, ShortText, SignedQuantity, StrictModel
from shared.runtime.http import Rfc3339Date, with_examples
from shared.tables import Table

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


class RecallRequest(StrictModel):
    model_config = with_examples(
        {
            "reason": "Customer complaint: off taste, possible fermentation",
            "classification": "II",
            "scope": {"lot_codes": ["OJ-1L-20261121-0002"], "sku": "OJ-1L"},
        }
    )

    reason: LongText = Field(min_length=1)
    classification: Literal["I", "II", "III"] = "II"
    scope: RecallScope
    check_level: Literal["A", "B", "C", "D", "E"] | None = Field(
        default=None,
        description="The FDA effectiveness check level (A: every consignee ... E: none)."
        " Default by classification: I → A, II → B, III → D.",
    )
    target_percent: Decimal | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The effectiveness (units recovered, in percent) the recall must reach"
        " before it closes without an override. Default by classification: I → 100,"
        " II → 95, III → 90.",
    )
    drill: bool = Field(
        default=False,
        description="A drill: everything a recall computes, timed stage by stage and kept in"
        " GET /drills. It publishes nothing, notifies no customer and changes no stock.",
    )

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
    drill: bool = Field(
        default=False, description="True for a drill: its id is a drill's, in GET /drills."
    )


class CloseRequest(StrictModel):
    note: ShortText | None = None
    override_reason: ShortText | None = Field(
        default=None,
        min_length=1,
        description="Closes a recall whose effectiveness is below its target; kept with who"
        " closed it, as the audit of that decision.",
    )


class LotSummary(FromRow):
    lot_id: UUID
    lot_code: str
    sku: str
    supplier_id: str | None = None
    via_lot_id: UUID | None = None
    status: str | None = Field(
        default=None,
        description="The lot's status as inventory last reported it (lot-status-changed):"
        " recalled, quarantined, depleted, ...; null until it reports one.",
    )


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
    close_override: str | None = Field(
        default=None,
        description="Why the recall was closed below its effectiveness target, as given.",
    )
    check_level: str | None = Field(default=None, description="The FDA check level, A to E.")
    target_percent: Decimal | None = Field(
        default=None, description="The effectiveness the recall must reach to close."
    )
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


# ------------------------------------------------------------------ the recall loop


class ResponseRequest(StrictModel):
    """A customer's response to a recall, as a call centre records it."""

    response_id: Identifier = Field(
        description="Unique; the same response sent again changes nothing."
    )
    customer_id: Identifier = Field(description="An affected customer of the recall.")
    kind: ResponseKind = Field(
        description="delivered, bounced, acknowledged, or units-reported (with `units`)."
    )
    responded_at: AwareDatetime | None = Field(default=None, description="Now when left out.")
    channel: ResponseChannel | None = None
    units: list[ReportedUnits] = Field(
        default_factory=list,
        max_length=10_000,
        description="What the customer reports of each recalled lot (by lot_id or lot_code):"
        " on_hand, destroyed, returned. A lot outside the recall is refused (409).",
    )
    note: LongText | None = None

    def response(self, recall_id: str, now: datetime) -> RecallResponse:
        """The contract's event for this response to `recall_id`."""
        return RecallResponse(
            **self.model_dump(exclude={"responded_at"}),
            recall_id=recall_id,
            responded_at=self.responded_at or now,
        )


class ResponseRecorded(BaseModel):
    response_id: str
    recall_id: str
    recorded: bool = Field(
        description="False when a response with this id was recorded before: nothing changed."
    )


class EffectivenessCustomers(BaseModel):
    affected: int = Field(description="Customers who received a lot of the recall.")
    notified: int = Field(description="Customers a notice was sent to.")
    delivered: int = Field(
        description="Customers the notice is known to have reached (delivered, acknowledged"
        " or units reported)."
    )
    bounced: int = Field(description="Customers whose notice bounced and never reached them.")
    acknowledged: int = Field(description="Customers who acknowledged or reported units.")
    silent: int = Field(
        description="Customers with no acknowledgement, no units reported, nothing returned."
    )


class EffectivenessUnits(BaseModel):
    shipped: SignedQuantity = Field(description="Units of the recalled lots shipped.")
    returned: SignedQuantity = Field(
        description="Units received back (goods-returned), or the customer's own count when larger."
    )
    destroyed: SignedQuantity = Field(description="Units the customers reported destroyed.")
    on_hand: SignedQuantity = Field(description="Units the customers reported still on hand.")
    unaccounted: SignedQuantity = Field(
        description="Shipped units neither returned, destroyed nor reported on hand."
    )
    effectiveness_percent: Decimal = Field(
        description="Units recovered (returned or destroyed, at most what was shipped to each"
        " customer) in percent of the units shipped."
    )


class LotEffectiveness(EffectivenessUnits):
    lot_id: UUID
    lot_code: str


class OverReturn(BaseModel):
    """More units came back or were destroyed than were shipped to the customer: accepted,
    and flagged here to be looked into."""

    customer_id: str
    lot_id: UUID
    lot_code: str
    shipped: SignedQuantity
    returned: SignedQuantity
    destroyed: SignedQuantity


class OutstandingCustomer(BaseModel):
    customer_id: str
    name: str | None = None
    silent: bool = Field(description="No answer to the recall yet.")
    bounced: bool = Field(description="The notice bounced and never reached the customer.")
    reminders: int = Field(description="Reminders sent so far.")
    unaccounted: SignedQuantity
    on_hand: SignedQuantity


class Effectiveness(BaseModel):
    """How far a recall has got: who was reached and answered, where the units are, the FDA
    check level with its sample of consignees, and who is outstanding."""

    recall_id: str
    status: str
    classification: str
    check_level: str = Field(description="The FDA effectiveness check level, A to E.")
    sample_size: int = Field(description="Consignees to verify at that level.")
    sample: list[str] = Field(
        description="The consignees to verify: the same on every read of the recall."
    )
    target_percent: Decimal
    effectiveness_percent: Decimal
    below_target: bool = Field(description="Close is refused (409) without an override.")
    customers: EffectivenessCustomers
    units: EffectivenessUnits
    lots: list[LotEffectiveness]
    over_returned: list[OverReturn]
    outstanding_count: int = Field(
        description="Customers silent, or with units unaccounted for or still on hand."
    )
    outstanding: list[OutstandingCustomer] = Field(
        description="The outstanding customers, at most `outstanding_limit` of them."
    )


class DrillView(BaseModel):
    """A drill: what the recall would have reached, and how long each stage took."""

    drill_id: str
    requested_at: datetime
    requested_by: str
    reason: str
    classification: str
    scope: dict[str, Any]
    affected_lots: int
    affected_customer_count: int
    shipped_quantity: SignedQuantity
    check_level: str = Field(description="The FDA check level the recall would have had.")
    sample_size: int = Field(description="Consignees its effectiveness check would verify.")
    stages: dict[str, float] = Field(
        description="Milliseconds per stage: scope (with genealogy), customers, records,"
        " fsma204, epcis, effectiveness."
    )
    total_ms: float = Field(description="The stages together, in milliseconds.")


# ------------------------------------------------------------------ lot movements


class LotMovement(BaseModel):
    """A move between inventory's locations, or a return to the supplier, as `lot-moved`
    announced it."""

    movement_id: str = Field(description="Inventory's id of the movement.")
    kind: str = Field(description="`move` or `return-to-vendor`.")
    quantity: SignedQuantity = Field(description="How many units.")
    uom: str
    from_location: str = Field(description="Where they were taken from.")
    to_location: str | None = Field(default=None, description="Where a move put them.")
    supplier_id: str | None = Field(
        default=None, description="The supplier a return to vendor went to."
    )
    rma: str | None = Field(default=None, description="The supplier's RMA of a return to vendor.")
    reason: str | None = Field(default=None, description="Why, as the person gave it.")
    actor: str | None = Field(default=None, description="Who did it (the API key's name).")
    moved_at: datetime


class LotMovements(BaseModel):
    lot_id: UUID
    movements: list[LotMovement] = Field(
        description="The lot's moves and returns to vendor, oldest first."
    )


# ------------------------------------------------------------------ data quality (docs/reports.md)


class QualityExample(BaseModel):
    lot_id: UUID | None = None
    lot_code: str
    sku: str
    detail: str = Field(description="What is missing or wrong with this lot.")


class QualityFinding(BaseModel):
    code: str = Field(description="Stable name of the finding (the metric's `finding` label).")
    title: str
    count: int = Field(description="Lots with this finding.")
    how_to_fix: str
    examples: list[QualityExample] = Field(description="The first lots found, by lot code.")


class DataQualityReport(BaseModel):
    checked_at: datetime
    lots_checked: int = Field(description="Received lots checked.")
    clean: bool = Field(description="True when no finding has a count.")
    findings: list[QualityFinding] = Field(description="Every finding, with a count of 0 too.")

    def tables(self) -> list[Table]:
        """The findings, then every example with its finding's code."""
        examples = [
            example.model_copy(update={"detail": f"{finding.code}: {example.detail}"})
            for finding in self.findings
            for example in finding.examples
        ]
        return [
            Table.of("Findings", QualityFinding, self.findings),
            Table.of("Examples", QualityExample, examples),
        ]
