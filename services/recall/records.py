"""The rows the recall projection stores and reads back, each built in one place from an event
or a query. Field order is the column order of the statement that writes them (`columns`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    AffectedLot,
    GoodsReceived,
    LotMoved,
    LotRegistered,
    LotStatusChanged,
    NoticeShipment,
    OrderShipped,
    RecallResponse,
    ReportedUnits,
)
from shared.records import built_from


@dataclass(frozen=True)
class ReportFilter:
    """Which events a traceability report selects: a UTC date range (inclusive, either end
    open), a SKU and a lot code. The field order is the order of the statements' parameters."""

    event_from: date | None
    event_to: date | None
    sku: str | None
    lot_code: str | None


@dataclass(frozen=True)
class PlaceholderLot:
    """A lot named (as an input, or in a shipment) before its own receipt is known."""

    lot_id: UUID
    lot_code: str
    sku: str
    uom: str


@dataclass(frozen=True)
class LotRow:
    """A received lot; receipts of the same lot in one batch add up."""

    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None
    uom: str
    supplier_id: str | None
    supplier_name: str | None
    supplier_lot_code: str | None
    purchase_order: str | None
    location: str | None
    production_date: date | None
    expiry_date: date | None
    best_before_date: date | None
    received_at: datetime
    quantity: Decimal

    @classmethod
    def of(cls, event: GoodsReceived | LotRegistered, **given: Any) -> LotRow:
        """The lot as the event states it; `given` sets what the event does not say."""
        supplier = event.supplier
        return built_from(
            cls,
            event,
            supplier_id=supplier.supplier_id if supplier else None,
            supplier_name=supplier.name if supplier else None,
            **given,
        )

    def plus(self, event: GoodsReceived) -> LotRow:
        """This lot with another receipt of it counted."""
        return replace(
            self,
            quantity=self.quantity + event.quantity,
            received_at=min(self.received_at, event.received_at),
        )


@dataclass(frozen=True)
class ReceiptRow:
    receipt_id: str
    lot_id: UUID
    quantity: Decimal
    uom: str
    received_at: datetime
    location: str | None
    purchase_order: str | None
    supplier_id: str | None
    supplier_name: str | None
    event_id: str

    @classmethod
    def of(
        cls, incoming: Incoming[GoodsReceived] | Incoming[LotRegistered], **given: Any
    ) -> ReceiptRow:
        """The receipt as the event states it; `given` sets what the event does not say."""
        supplier = incoming.data.supplier
        return built_from(
            cls,
            incoming.data,
            supplier_id=supplier.supplier_id if supplier else None,
            supplier_name=supplier.name if supplier else None,
            event_id=incoming.id,
            **given,
        )


@dataclass(frozen=True)
class InputRow:
    """Genealogy: the receipt of `lot_id` consumed `input_lot_id`."""

    receipt_id: str
    lot_id: UUID
    input_lot_id: UUID
    input_lot_code: str
    input_sku: str
    quantity: Decimal
    uom: str

    @classmethod
    def all_of(cls, event: GoodsReceived) -> list[InputRow]:
        receipt_id, lot_id = event.receipt_id, event.lot_id
        return [
            cls(receipt_id, lot_id, item.lot_id, item.lot_code, item.sku, item.quantity, item.uom)
            for item in event.inputs
        ]

    def input_lot(self) -> PlaceholderLot:
        return PlaceholderLot(self.input_lot_id, self.input_lot_code, self.input_sku, self.uom)


@dataclass(frozen=True)
class Received:
    """What a batch of `goods-received` events adds to the projection."""

    lots: list[LotRow]
    receipts: list[ReceiptRow]
    inputs: list[InputRow]

    @classmethod
    def of(cls, events: list[Incoming[GoodsReceived]]) -> Received:
        lots: dict[UUID, LotRow] = {}
        receipts, inputs = [], []
        for incoming in events:
            event = incoming.data
            known = lots.get(event.lot_id)
            lots[event.lot_id] = LotRow.of(event) if known is None else known.plus(event)
            receipts.append(ReceiptRow.of(incoming))
            inputs += InputRow.all_of(event)
        return cls(list(lots.values()), receipts, inputs)


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    name: str | None
    email: str | None
    phone: str | None
    address: dict[str, Any] | None

    @classmethod
    def of(cls, event: OrderShipped) -> CustomerRow:
        customer = event.customer
        address = customer.address.model_dump(mode="json") if customer.address else None
        return built_from(cls, customer, address=address)


@dataclass(frozen=True)
class ShipmentLineRow:
    shipment_id: str
    line_no: int
    lot_id: UUID
    order_id: str
    customer_id: str
    sku: str
    lot_code: str
    quantity: Decimal
    uom: str
    shipped_at: datetime

    @classmethod
    def all_of(cls, event: OrderShipped) -> list[ShipmentLineRow]:
        customer_id = event.customer.customer_id
        return [built_from(cls, line, event, customer_id=customer_id) for line in event.lines]

    def lot(self) -> PlaceholderLot:
        return PlaceholderLot(self.lot_id, self.lot_code, self.sku, self.uom)

    def notice_shipment(self) -> NoticeShipment:
        """The line as a notice names it: the one place a line becomes that model."""
        return NoticeShipment.model_validate(self, from_attributes=True)


@dataclass(frozen=True)
class Shipped:
    """What a batch of `order-shipped` events adds to the projection. The customers of
    imported shipments are kept apart: their contact details are history, which fills what is
    missing but never replaces what a current shipment said."""

    customers: list[CustomerRow]
    historical_customers: list[CustomerRow]
    lines: list[ShipmentLineRow]

    @classmethod
    def of(cls, events: list[Incoming[OrderShipped]]) -> Shipped:
        def customers(imported: bool) -> list[CustomerRow]:
            rows = {
                e.data.customer.customer_id: CustomerRow.of(e.data)
                for e in events
                if e.data.imported is imported
            }
            return list(rows.values())

        lines = [line for e in events for line in ShipmentLineRow.all_of(e.data)]
        return cls(customers(False), customers(True), lines)


@dataclass(frozen=True)
class NewRecall:
    """A recall as it is stored when issued."""

    recall_id: str
    issued_at: datetime
    reason: str
    classification: str
    scope: dict[str, Any]
    requested_by: str
    check_level: str
    target_percent: Decimal


@dataclass(frozen=True)
class AffectedTotals:
    """What a recall reached when issued: customers to notify and the quantity they got."""

    customers: int
    shipped_quantity: Decimal


@dataclass(frozen=True)
class RecallLotRef:
    """A lot of a recall, as a response or a return may name it."""

    recall_id: str
    lot_id: UUID
    lot_code: str
    sku: str


@dataclass(frozen=True)
class RecallLotRow(RecallLotRef):
    """A lot a recall covers: in its scope, or made from a lot in it (`via_lot_id`)."""

    supplier_id: str | None
    via_lot_id: UUID | None

    @classmethod
    def of(cls, recall_id: str, lot: AffectedLot) -> RecallLotRow:
        return cls(recall_id, lot.lot_id, lot.lot_code, lot.sku, lot.supplier_id, lot.via_lot_id)


@dataclass(frozen=True)
class OpenRecallLot:
    """A lot of an open recall, with what a notice of that recall says."""

    recall_id: str
    lot_id: UUID
    via_lot_id: UUID | None
    reason: str
    classification: str


@dataclass(frozen=True)
class PendingRecall:
    """A recall whose notices are still being written, and what they say."""

    recall_id: str
    reason: str
    classification: str
    shipment_watermark: int


@dataclass(frozen=True)
class Chunk:
    """A range of a recall's affected customers, notified in one transaction."""

    chunk: int
    first_customer: str
    last_customer: str
    customers: int


# ------------------------------------------------------------------ the recall loop


@dataclass(frozen=True)
class RecallState:
    """What a response or a return needs to know of a recall it names."""

    recall_id: str
    status: str


@dataclass(frozen=True)
class ResponseRow:
    """A customer's response as stored, once per response_id."""

    response_id: str
    recall_id: str
    customer_id: str
    kind: str
    channel: str | None
    responded_at: datetime
    note: str | None

    @classmethod
    def of(cls, response: RecallResponse) -> ResponseRow:
        # Spelled out rather than `built_from`: 100,000 responses a few seconds apart.
        r = response
        return cls(r.response_id, r.recall_id, r.customer_id, r.kind, r.channel, r.responded_at,
                   r.note)  # fmt: skip


@dataclass(frozen=True)
class ReportedUnitsRow:
    """What a response reported of one lot of the recall."""

    response_id: str
    recall_id: str
    customer_id: str
    lot_id: UUID
    responded_at: datetime
    on_hand: Decimal | None
    destroyed: Decimal | None
    returned: Decimal | None

    @classmethod
    def of(cls, response: RecallResponse, units: ReportedUnits, lot_id: UUID) -> ReportedUnitsRow:
        r = response
        return cls(r.response_id, r.recall_id, r.customer_id, lot_id, r.responded_at,
                   units.on_hand, units.destroyed, units.returned)  # fmt: skip


@dataclass(frozen=True)
class ReturnCountRow:
    """Units of a recalled lot an affected customer sent back, counted for that recall."""

    recall_id: str
    return_id: str
    line_no: int
    customer_id: str
    lot_id: UUID
    quantity: Decimal
    returned_at: datetime


# The rows below come by the 100,000 for a large recall: NamedTuples, immutable as a frozen
# dataclass and built straight from the query's arrays (`LotUnits(*lot)`). What the check of
# such a recall costs is `recall_loop.effectiveness_s` in `make bench`.
class LotUnits(NamedTuple):
    """A customer's units of one lot of a recall: shipped, received back, and the latest
    figures the customer reported (None when never reported)."""

    lot_id: UUID
    shipped: Decimal
    returned: Decimal
    reported_returned: Decimal | None
    destroyed: Decimal | None
    on_hand: Decimal | None


class Answers(NamedTuple):
    """What an affected customer's responses, returns and reminders say of it."""

    notified: bool
    reached: bool
    bounced: bool
    acknowledged: bool
    returned: bool
    reminders: int


class CustomerGroup(NamedTuple):
    """The affected customers of a recall who stand alike: the same answers and the same
    units of each lot. A recall of 100,000 customers has a few hundred such groups."""

    answers: Answers
    lots: tuple[LotUnits, ...]
    customers: list[str]


class CustomerStanding(NamedTuple):
    """Where one affected customer of a recall stands: reached, answered, reminded."""

    customer_id: str
    name: str | None
    notified: bool
    reached: bool
    bounced: bool
    acknowledged: bool
    returned: bool
    reminders: int
    last_contact_at: datetime | None


@dataclass(frozen=True)
class LotRecall:
    """A recall a lot is in, and whether that recall is still open."""

    recall_id: str
    lot_id: UUID
    status: str


@dataclass(frozen=True)
class DrillRow:
    """A drill as it is kept: what it reached, and how long each stage took."""

    drill_id: str
    requested_at: datetime
    requested_by: str
    reason: str
    classification: str
    scope: dict[str, Any]
    affected_lots: int
    affected_customer_count: int
    shipped_quantity: Decimal
    check_level: str
    sample_size: int
    stages: dict[str, float]
    total_ms: float


@dataclass(frozen=True)
class LotStatusRow:
    """A lot's status as inventory reported it, and when it changed."""

    lot_id: UUID
    lot_code: str
    sku: str
    status: str
    changed_at: datetime

    @classmethod
    def latest(cls, events: list[Incoming[LotStatusChanged]]) -> list[LotStatusRow]:
        """The newest status of each lot among the events."""
        newest: dict[UUID, LotStatusRow] = {}
        for incoming in events:
            e = incoming.data
            row = cls(e.lot_id, e.lot_code, e.sku, e.status, e.changed_at)
            known = newest.get(e.lot_id)
            if known is None or known.changed_at <= row.changed_at:
                newest[e.lot_id] = row
        return list(newest.values())


# ------------------------------------------------------------------ lot movements


@dataclass(frozen=True)
class MovementRow:
    """A move or a return to vendor inventory announced on `lot-moved`; the column order of
    `lot_movements`."""

    movement_id: str
    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None
    kind: str
    quantity: Decimal
    uom: str
    from_location: str
    to_location: str | None
    supplier_id: str | None
    rma: str | None
    reason: str | None
    actor: str | None
    moved_at: datetime
    event_id: str

    @classmethod
    def of(cls, incoming: Incoming[LotMoved]) -> MovementRow:
        return built_from(cls, incoming.data, event_id=incoming.id)

    def lot(self) -> PlaceholderLot:
        return built_from(PlaceholderLot, self)
