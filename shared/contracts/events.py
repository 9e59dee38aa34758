"""The event payloads of the contract (docs/contracts/README.md), one pydantic model each.

Field names and types are fixed by the contract: add optional fields, never rename,
retype or drop one. Every model names its CloudEvents `type`, its topic and how its
Kafka key and CloudEvents subject are derived.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, PlainSerializer, model_validator

from shared.contracts.types import (
    DEFAULT_UOM,
    ContractModel,
    Customer,
    Gtin,
    Identifier,
    LongText,
    LotCode,
    Money,
    Quantity,
    ShortText,
    Sku,
    Supplier,
    Uom,
    require_distinct,
)

LineNo = Annotated[
    int, Field(ge=0, le=1_000_000, description="Line number, unique within the order.")
]
NonNegativeQuantity = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="always"),
]


class Event(ContractModel):
    """A payload carried as the `data` of a CloudEvent. Each event names its CloudEvents
    `type`, its topic and its key field as class arguments, so that none can be left out:
    `class OrderPlaced(Event, event_type=..., topic=..., key_field=...)`."""

    event_type: ClassVar[str]
    topic: ClassVar[str]
    key_field: ClassVar[str]
    """The field whose value is the Kafka key; the topic's key is derived from it."""

    def __init_subclass__(
        cls, *, event_type: str, topic: str, key_field: str, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.event_type, cls.topic, cls.key_field = event_type, topic, key_field

    def key(self) -> str:
        """The Kafka message key: all events of one key share a partition, so their order holds."""
        return str(getattr(self, self.key_field))

    def subject(self) -> str:
        """The CloudEvents subject: the entity the event is about."""
        return self.key()


# ---------------------------------------------------------------------------- orders


class OrderLine(ContractModel):
    line_no: LineNo
    sku: Sku
    quantity: Quantity
    uom: Uom = DEFAULT_UOM


class OrderPlaced(
    Event, event_type="lottrace.order-placed.v1", topic="order-placed", key_field="order_id"
):
    """An upstream order system accepted an order; inventory allocates it, fulfillment ships it."""

    order_id: Identifier = Field(examples=["SO-1001"])
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1, max_length=1000)
    min_remaining_shelf_life_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description="A lot whose expiry is before ship date + this many days is not allocated.",
    )
    placed_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _line_numbers_unique(self) -> OrderPlaced:
        require_distinct(
            (line.line_no for line in self.lines), "line_no must be unique within the order"
        )
        return self


class OrderCancelled(
    Event, event_type="lottrace.order-cancelled.v1", topic="order-cancelled", key_field="order_id"
):
    """Releases what was reserved for the order and not yet shipped."""

    order_id: Identifier
    reason: LongText | None = None


# ---------------------------------------------------------------------------- receiving


class LotInput(ContractModel):
    """A lot consumed to make the received lot (production or transformation)."""

    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    quantity: Quantity
    uom: Uom = DEFAULT_UOM


class GoodsReceived(
    Event, event_type="lottrace.goods-received.v1", topic="goods-received", key_field="lot_id"
):
    """A quantity of one lot entered stock: a purchase received, or a lot produced from inputs."""

    receipt_id: Identifier
    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    gtin: Gtin | None = None
    quantity: Quantity
    uom: Uom = DEFAULT_UOM
    location: Identifier = "MAIN"
    received_at: AwareDatetime
    supplier: Supplier | None = None
    supplier_lot_code: LotCode | None = None
    purchase_order: Identifier | None = None
    production_date: date | None = None
    expiry_date: date | None = None
    best_before_date: date | None = None
    unit_cost: Money | None = None
    inputs: list[LotInput] = Field(
        default_factory=list,
        max_length=1000,
        description="Lots consumed to make this one; empty for purchases.",
    )
    qc_required: bool = Field(
        default=False,
        description="The lot is received quarantined, and never allocated before a QC release.",
    )


# ---------------------------------------------------------------------------- allocation


class OrderLotLine(ContractModel):
    # The fields an allocation and a shipment line share, in their wire order: a quantity
    # of one lot for one order line. Subclasses add their own fields after these.
    line_no: LineNo
    sku: Sku
    lot_id: UUID
    lot_code: LotCode
    quantity: Quantity
    uom: Uom = DEFAULT_UOM


class Allocation(OrderLotLine):
    expiry_date: date | None = None
    location: Identifier = "MAIN"
    gtin: Gtin | None = Field(
        default=None,
        description="The GTIN of the allocated lot's product, when its receipt named one: a"
        " scanned case must carry it.",
    )


class Backorder(ContractModel):
    line_no: LineNo
    sku: Sku
    quantity: Quantity
    uom: Uom = DEFAULT_UOM
    reason: ShortText


class LotAllocated(
    Event, event_type="lottrace.lot-allocated.v1", topic="lot-allocated", key_field="order_id"
):
    """What inventory reserved for an order, lot by lot, and what it could not.

    Every unshipped ordered unit appears either in `allocations` or in `backordered`. Each
    event is the order's whole current allocation and supersedes earlier ones: `revision`
    grows with every change.
    """

    order_id: Identifier
    customer_id: Identifier
    allocations: list[Allocation] = Field(default_factory=list, max_length=10_000)
    backordered: list[Backorder] = Field(default_factory=list, max_length=10_000)
    strategy: Literal["FEFO"] = "FEFO"
    revision: int | None = Field(
        default=None, ge=1, description="Grows with every allocation change of the order."
    )
    allocated_at: AwareDatetime | None = None


# ---------------------------------------------------------------------------- shipping


class ShipmentLine(OrderLotLine):
    pass


class OrderShipped(
    Event, event_type="lottrace.order-shipped.v1", topic="order-shipped", key_field="order_id"
):
    """Goods left the building: which lots went to which customer."""

    shipment_id: Identifier
    order_id: Identifier
    customer: Customer
    shipped_at: AwareDatetime
    lines: list[ShipmentLine] = Field(min_length=1, max_length=10_000)
    imported: bool = Field(
        default=False,
        description="A historical shipment loaded at onboarding: it counts for traces and"
        " recalls and never moves stock.",
    )


# ---------------------------------------------------------------------------- recall

Classification = Literal["I", "II", "III"]


class RecallScope(ContractModel):
    lot_ids: list[UUID] | None = Field(default=None, max_length=10_000)
    lot_codes: list[LotCode] | None = Field(default=None, max_length=10_000)
    sku: Sku | None = None
    supplier_id: Identifier | None = None
    received_from: date | None = None
    received_to: date | None = None
    supplier_lot_codes: list[LotCode] | None = Field(
        default=None,
        max_length=10_000,
        description="The supplier's own lot codes, as a supplier's recall notice names them;"
        " with supplier_id or sku.",
    )
    gtin: Gtin | None = Field(default=None, description="Lots received with this GTIN.")

    @model_validator(mode="after")
    def _names_something(self) -> RecallScope:
        if not (self.lot_ids or self.lot_codes or self.sku or self.supplier_id or self.gtin):
            raise ValueError("scope needs lot_ids, lot_codes, sku, supplier_id or gtin")
        if self.supplier_lot_codes and not (self.supplier_id or self.sku):
            raise ValueError("supplier_lot_codes need supplier_id or sku")
        if self.received_from and self.received_to and self.received_from > self.received_to:
            raise ValueError("received_from is after received_to")
        return self


class AffectedLot(ContractModel):
    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    supplier_id: Identifier | None = None
    via_lot_id: UUID | None = Field(
        default=None, description="The recalled ancestor, for lots made from it."
    )


class RecallIssued(
    Event, event_type="lottrace.recall-issued.v1", topic="recall-issued", key_field="recall_id"
):
    """A recall: its scope, every affected lot, and how much of them went out. One per recall."""

    recall_id: Identifier
    issued_at: AwareDatetime
    reason: LongText
    classification: Classification = "II"
    scope: RecallScope
    affected_lots: list[AffectedLot] = Field(default_factory=list)
    affected_customer_count: int = Field(ge=0)
    shipped_quantity: NonNegativeQuantity


class NoticeShipment(ContractModel):
    shipment_id: Identifier
    order_id: Identifier
    shipped_at: AwareDatetime
    sku: Sku
    lot_id: UUID
    lot_code: LotCode
    quantity: Quantity
    uom: Uom = DEFAULT_UOM


class RecallCustomerNotice(
    Event,
    event_type="lottrace.recall-customer-notice.v1",
    topic="recall-issued",
    key_field="recall_id",
):
    """One affected customer and what they received of the recalled lots."""

    recall_id: Identifier
    customer: Customer
    shipments: list[NoticeShipment] = Field(min_length=1)
    late: bool = Field(
        default=False,
        description="True when the shipment became known after the recall was issued.",
    )
    reason: LongText | None = None
    classification: Classification | None = None
    part: int | None = Field(
        default=None, ge=1, description="Which notice of this customer's split set this is."
    )
    parts: int | None = Field(default=None, ge=1, description="How many notices the set has.")
    reminder: int = Field(
        default=0,
        ge=0,
        description="0 for the first notice; 1, 2, ... for the reminders sent to a customer"
        " who has not acknowledged.",
    )


# ----------------------------------------------------------------------- returns (v1.1)

ReturnReason = Literal["recall", "damaged", "expired", "quality", "customer", "other"]
ReturnCondition = Literal["sealed", "opened", "damaged"]


class ReturnLine(ContractModel):
    """Units of one lot coming back: named by `lot_id`, or by `lot_code` with the line's SKU."""

    line_no: LineNo
    sku: Sku
    lot_id: UUID | None = None
    lot_code: LotCode | None = None
    quantity: Quantity
    uom: Uom = DEFAULT_UOM
    reason: ReturnReason
    condition: ReturnCondition | None = None

    @model_validator(mode="after")
    def _names_a_lot(self) -> ReturnLine:
        if self.lot_id is None and self.lot_code is None:
            raise ValueError("a return line needs lot_id or lot_code")
        return self


class GoodsReturned(
    Event, event_type="lottrace.goods-returned.v1", topic="goods-returned", key_field="return_id"
):
    """Units a customer sent back. They never go straight back to available stock: they
    arrive held for inspection, or as recalled stock when their lot is under recall."""

    return_id: Identifier = Field(description="Unique; a re-sent return changes nothing.")
    customer: Customer
    order_id: Identifier | None = None
    shipment_id: Identifier | None = None
    recall_id: Identifier | None = Field(
        default=None, description="The recall this return answers, when it answers one."
    )
    returned_at: AwareDatetime
    lines: list[ReturnLine] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _line_numbers_unique(self) -> GoodsReturned:
        require_distinct(
            (line.line_no for line in self.lines), "line_no must be unique within the return"
        )
        return self


# -------------------------------------------------------------- recall responses (v1.1)

ResponseKind = Literal["delivered", "bounced", "acknowledged", "units-reported"]
ResponseChannel = Literal["email", "sms", "phone", "letter", "portal", "other"]


class ReportedUnits(ContractModel):
    """What a customer reports of one recalled lot, in the lot's unit of measure."""

    lot_id: UUID | None = None
    lot_code: LotCode | None = None
    on_hand: NonNegativeQuantity | None = None
    destroyed: NonNegativeQuantity | None = None
    returned: NonNegativeQuantity | None = None

    @model_validator(mode="after")
    def _names_a_lot(self) -> ReportedUnits:
        if self.lot_id is None and self.lot_code is None:
            raise ValueError("reported units need lot_id or lot_code")
        return self


class RecallResponse(
    Event, event_type="lottrace.recall-response.v1", topic="recall-responses", key_field="recall_id"
):
    """A customer's answer to a recall, as a notification service or call centre saw it."""

    response_id: Identifier = Field(description="Unique; a re-sent response changes nothing.")
    recall_id: Identifier
    customer_id: Identifier
    responded_at: AwareDatetime
    kind: ResponseKind
    channel: ResponseChannel | None = None
    units: list[ReportedUnits] = Field(default_factory=list, max_length=10_000)
    note: LongText | None = None


# -------------------------------------------------------------------- lot status (v1.1)

LotStatus = Literal["available", "quarantined", "recalled", "expired", "rejected", "depleted"]


class LotStatusChanged(
    Event,
    event_type="lottrace.lot-status-changed.v1",
    topic="lot-status-changed",
    key_field="lot_id",
):
    """A lot's status changed: hold, release, QC result, expiry, recall, depletion."""

    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    status: LotStatus
    previous_status: LotStatus = Field(
        description="The status announced before this one. A lot's first status (the one it is"
        " received with) is recorded, not announced: there is no status before it."
    )
    reason: LongText
    changed_at: AwareDatetime
    actor: Identifier | None = None


# ------------------------------------------- lot movements (lottrace extension to v1.1)

MovementKind = Literal["move", "return-to-vendor"]
MOVE: MovementKind = "move"
RETURN_TO_VENDOR: MovementKind = "return-to-vendor"


class LotMoved(
    Event, event_type="lottrace.lot-moved.v1", topic="lot-movements", key_field="lot_id"
):
    """Units of a lot moved between our locations, or went back to the supplier (return to
    vendor). A lottrace addition beyond the v1.1 contract: the records (EPCIS, FSMA 204) need
    every movement of a lot. More kinds may be added; each is announced before it is sent."""

    movement_id: Identifier = Field(description="Unique; a re-sent movement changes nothing.")
    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    gtin: Gtin | None = None
    kind: MovementKind = Field(
        description="`move`: between two of our locations; `return-to-vendor`: out of our"
        " custody, back to the lot's supplier."
    )
    quantity: Quantity
    uom: Uom = DEFAULT_UOM
    from_location: Identifier = Field(description="Where the units were taken from.")
    to_location: Identifier | None = Field(
        default=None, description="Where a move put them; none for a return to vendor."
    )
    supplier_id: Identifier | None = Field(
        default=None, description="The supplier a return to vendor goes to, when known."
    )
    rma: Identifier | None = Field(
        default=None, description="The supplier's return authorisation of a return to vendor."
    )
    reason: LongText | None = Field(default=None, description="Why, as the person gave it.")
    moved_at: AwareDatetime
    actor: Identifier | None = Field(default=None, description="Who did it, when a person did.")

    @model_validator(mode="after")
    def _kind_named_fully(self) -> LotMoved:
        if self.kind == "move" and self.to_location is None:
            raise ValueError("a move needs to_location")
        if self.kind == "return-to-vendor" and self.rma is None:
            raise ValueError("a return to vendor needs rma")
        return self


# ---------------------------------------- lot registrations (lottrace extension to v1.1)

RegistrationReason = Literal["onboarding"]
ONBOARDING: RegistrationReason = "onboarding"


class LotRegistered(
    Event, event_type="lottrace.lot-registered.v1", topic="lot-registrations", key_field="lot_id"
):
    """A lot the platform must know without stock: one sold out before the company moved to
    lottrace, whose past shipments, returns and recalls still name it. It carries the lot's
    attributes as `goods-received` does, and no quantity: nothing enters stock. A lottrace
    addition beyond the v1.1 contract. More reasons may be added; each is announced before it
    is sent."""

    registration_id: Identifier = Field(
        description="Unique; a re-sent registration changes nothing."
    )
    lot_id: UUID
    lot_code: LotCode
    sku: Sku
    gtin: Gtin | None = None
    uom: Uom = DEFAULT_UOM
    location: Identifier | None = Field(
        default=None, description="Where the lot was kept, when known."
    )
    received_at: AwareDatetime = Field(description="When the lot was received, kept as is.")
    supplier: Supplier | None = None
    supplier_lot_code: LotCode | None = None
    purchase_order: Identifier | None = None
    production_date: date | None = None
    expiry_date: date | None = None
    best_before_date: date | None = None
    unit_cost: Money | None = None
    reason: RegistrationReason = Field(
        default=ONBOARDING,
        description="`onboarding`: imported (`lottrace import lots`) with nothing on hand.",
    )


ALL_EVENTS: tuple[type[Event], ...] = (
    OrderPlaced,
    OrderCancelled,
    GoodsReceived,
    LotAllocated,
    OrderShipped,
    RecallIssued,
    RecallCustomerNotice,
    GoodsReturned,
    RecallResponse,
    LotStatusChanged,
    LotMoved,
    LotRegistered,
)
EVENTS_BY_TYPE: dict[str, type[Event]] = {event.event_type: event for event in ALL_EVENTS}
