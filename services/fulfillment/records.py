"""The rows that cross between the fulfillment handlers and its database: frozen, typed, each
built in one place (from an event here, from a query in `db.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from services.fulfillment.domain import Allocated, AllocationKey, ShipLine, may_ship
from services.fulfillment.schemas import ShipmentImportRow
from shared.contracts.events import LotAllocated, LotStatusChanged, OrderPlaced, RecallIssued
from shared.contracts.types import Customer
from shared.records import built_from


@dataclass(frozen=True)
class OrderRecord:
    """An order as fulfillment stores it; `customer` is None until the order itself arrives."""

    order_id: str
    customer_id: str | None
    customer: Customer | None
    placed_at: datetime | None
    status: str
    allocation_revision: int
    allocated_at: datetime | None
    cancel_reason: str | None

    @property
    def may_ship(self) -> bool:
        return may_ship(self.status, placed=self.customer_id is not None)


ORDER_COLUMNS = ", ".join(field.name for field in fields(OrderRecord))


@dataclass(frozen=True)
class PlacedOrder:
    """An order as `order-placed` states it. The field order is the column order of `orders`."""

    order_id: str
    customer_id: str
    customer: Customer
    placed_at: datetime | None


@dataclass(frozen=True)
class OrderLineRecord:
    """The field order is the column order of `order_lines`."""

    order_id: str
    line_no: int
    sku: str
    uom: str
    ordered: Decimal


def placed_orders(events: Sequence[OrderPlaced]) -> tuple[list[PlacedOrder], list[OrderLineRecord]]:
    """The rows of these orders and their lines, the first event of each order winning."""
    orders: dict[str, OrderPlaced] = {}
    for event in events:
        orders.setdefault(event.order_id, event)
    return (
        [
            PlacedOrder(order.order_id, order.customer.customer_id, order.customer, order.placed_at)
            for order in orders.values()
        ],
        [
            OrderLineRecord(order.order_id, line.line_no, line.sku, line.uom, line.quantity)
            for order in orders.values()
            for line in order.lines
        ],
    )


@dataclass(frozen=True, kw_only=True)
class AllocationRecord(Allocated):
    """One allocation row: an allocated lot line, the order it is for and where the lot is.
    The field order (the line's fields, then these) is the order `db.py` inserts columns in."""

    order_id: str
    location: str

    @classmethod
    def of(cls, order_id: str, allocation: Allocated, location: str) -> AllocationRecord:
        return cls(order_id=order_id, location=location, **asdict(allocation))


@dataclass(frozen=True)
class BackorderRecord:
    """The field order is the column order of `backorders`."""

    order_id: str
    line_no: int
    sku: str
    quantity: Decimal
    uom: str
    reason: str


@dataclass(frozen=True)
class AllocationUpdate:
    """An order's allocation as a `lot-allocated` event replaces it."""

    order_id: str
    revision: int | None
    allocated_at: datetime | None


@dataclass(frozen=True)
class AllocationReplacement:
    """Everything `db.replace_allocations` writes for a batch of `lot-allocated` events."""

    updates: list[AllocationUpdate]
    allocations: list[AllocationRecord]
    backorders: list[BackorderRecord]


def allocation_replacement(
    events: Sequence[LotAllocated], remaining: dict[str, list[Allocated]]
) -> AllocationReplacement:
    """What these events leave allocated (after any auto-shipment took its part), each
    allocation at the location its event named."""
    where = {event.order_id: _locations(event) for event in events}
    return AllocationReplacement(
        updates=[AllocationUpdate(e.order_id, e.revision, e.allocated_at) for e in events],
        allocations=[
            AllocationRecord.of(
                order_id,
                allocation,
                where[order_id].get((allocation.line_no, allocation.lot_id), "MAIN"),
            )
            for order_id, allocated in remaining.items()
            for allocation in allocated
        ],
        backorders=[
            BackorderRecord(e.order_id, b.line_no, b.sku, b.quantity, b.uom, b.reason)
            for e in events
            for b in e.backordered
        ],
    )


def _key(allocation: Allocated) -> AllocationKey:
    return (allocation.line_no, allocation.lot_id)


def _locations(event: LotAllocated) -> dict[AllocationKey, str]:
    """Where each allocation of an event is, as the event said."""
    return {(a.line_no, a.lot_id): a.location for a in event.allocations}


@dataclass(frozen=True)
class BlockedLot:
    """The field order is the column order of `blocked_lots` (the reason is a parameter)."""

    lot_id: UUID
    lot_code: str
    recall_id: str


@dataclass(frozen=True)
class LotStatusRecord:
    """A lot's status as `lot-status-changed` announced it; the column order of
    `lot_statuses`."""

    lot_id: UUID
    lot_code: str
    status: str
    changed_at: datetime

    @classmethod
    def latest_of(cls, events: Iterable[LotStatusChanged]) -> list[LotStatusRecord]:
        """One per lot, the latest change (log order breaks a tie), in lot id order."""
        latest: dict[UUID, LotStatusRecord] = {}
        for event in events:
            seen = latest.get(event.lot_id)
            if seen is None or event.changed_at >= seen.changed_at:
                latest[event.lot_id] = cls(
                    event.lot_id, event.lot_code, event.status, event.changed_at
                )
        return [latest[lot_id] for lot_id in sorted(latest)]


def recalled_lots(recall: RecallIssued) -> list[BlockedLot]:
    return [BlockedLot(lot.lot_id, lot.lot_code, recall.recall_id) for lot in recall.affected_lots]


@dataclass(frozen=True)
class Shipment:
    """A shipment: which lots went out for an order, to whom, when and by whom. The first
    four fields are the columns of `shipments` (see `StoredShipment`)."""

    shipment_id: str
    order_id: str
    shipped_at: datetime
    shipped_by: str | None
    customer: Customer
    lines: list[ShipLine]


@dataclass(frozen=True)
class StoredShipment:
    """A shipment's own row, without its lines. The field order is the column order of
    `shipments`."""

    shipment_id: str
    order_id: str
    shipped_at: datetime
    shipped_by: str | None


@dataclass(frozen=True, kw_only=True)
class ShipmentLineRecord(ShipLine):
    """A shipped line and its shipment. The field order (the line's fields, then the
    shipment's id) is the order `db.py` inserts columns in."""

    shipment_id: str

    @property
    def ship_line(self) -> ShipLine:
        """The line alone, as a shipment holds it."""
        return ShipLine(self.line_no, self.sku, self.lot_id, self.lot_code, self.quantity, self.uom)


@dataclass(frozen=True)
class ShippedQuantity:
    """What a batch of shipments adds to one order line."""

    order_id: str
    line_no: int
    quantity: Decimal


@dataclass(frozen=True)
class ImportedShipmentRecord:
    """A shipments-file row once imported. The field order is the column order of
    `imported_shipment_rows`."""

    row_key: str
    shipment_id: str
    order_id: str
    line_no: int
    customer_id: str
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: Decimal
    uom: str
    shipped_at: datetime

    @classmethod
    def of(cls, row: ShipmentImportRow) -> ImportedShipmentRecord:
        return built_from(cls, row, row_key=row.key, shipment_id=row.assigned_shipment_id)


def imported_shipment(row: ShipmentImportRow) -> Shipment:
    """The one-line shipment a shipments-file row stands for; nobody here shipped it."""
    line = ShipLine(row.line_no, row.sku, row.lot_id, row.lot_code, row.quantity, row.uom)
    return Shipment(
        row.assigned_shipment_id, row.order_id, row.shipped_at, None, row.customer, [line]
    )
