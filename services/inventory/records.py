"""The rows that cross between the inventory handlers and its database: frozen, typed, each
built in one place (from an event here, from a query in `db.py`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from services.inventory.domain import Reserve, StockLot
from services.inventory.reporting import ShippedDay
from shared.contracts.events import (
    GoodsReceived,
    LotInput,
    LotRegistered,
    MovementKind,
    OrderPlaced,
    ShipmentLine,
)
from shared.quantities import ZERO
from shared.records import built_from

StockKey = tuple[UUID, str]
LineKey = tuple[str, int]


class _Summable(Protocol):
    @property
    def key(self) -> tuple[Any, ...]: ...

    @classmethod
    def total(cls, changes: Sequence[Self]) -> Self: ...


S = TypeVar("S", bound=_Summable)


def summed(changes: Iterable[S]) -> list[S]:
    """One change per key, summed, in key order: the lock order."""
    by_key: dict[tuple[Any, ...], list[S]] = defaultdict(list)
    for change in changes:
        by_key[change.key].append(change)
    # Each key's changes are added up at once: one row built per key, not one per change.
    return [
        group[0] if len(group) == 1 else type(group[0]).total(group)
        for _, group in sorted(by_key.items())
    ]


@dataclass(frozen=True)
class LotFacts:
    """What an event tells about a lot, enough to create it if it is not known yet."""

    lot_id: UUID
    sku: str
    lot_code: str
    uom: str

    @classmethod
    def of(cls, line: LotInput | ShipmentLine) -> LotFacts:
        return built_from(cls, line)


@dataclass(frozen=True)
class Movement:
    """One row of a lot's history: what changed, by how much, and why."""

    lot_id: UUID
    change: str
    quantity: Decimal | None
    cause: str
    order_id: str | None = None
    detail: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class RegisteredLot:
    """A lot as a receipt or a registration names it (`lot-registered`: imported sold out,
    known without stock). The field order is the column order of `db.register_lots`."""

    lot_id: UUID
    sku: str
    lot_code: str
    gtin: str | None
    uom: str
    supplier_id: str | None
    expiry_date: date | None
    received_at: datetime
    unit_cost: Decimal | None
    currency: str | None

    @classmethod
    def of(cls, event: GoodsReceived | LotRegistered) -> Self:
        cost = event.unit_cost
        return built_from(
            cls,
            event,
            supplier_id=event.supplier.supplier_id if event.supplier else None,
            unit_cost=cost.amount if cost else None,
            currency=cost.currency if cost else None,
        )


@dataclass(frozen=True)
class ReceivedStock(RegisteredLot):
    """The lot a receipt names, and the quantity received at one location. The field order is
    the column order of `db.upsert_received`."""

    location: str
    quantity: Decimal

    @property
    def key(self) -> StockKey:
        return (self.lot_id, self.location)

    @classmethod
    def total(cls, receipts: Sequence[ReceivedStock]) -> ReceivedStock:
        """Receipts of one lot at one location in a batch: quantities add up, the latest
        expiry date named wins."""
        expiry_dates = [r.expiry_date for r in receipts if r.expiry_date]
        return replace(
            receipts[0],
            quantity=sum((r.quantity for r in receipts), ZERO),
            expiry_date=expiry_dates[-1] if expiry_dates else None,
        )


@dataclass(frozen=True)
class NewOrder:
    order_id: str
    customer_id: str
    min_remaining_shelf_life_days: int
    placed_at: datetime | None

    @classmethod
    def of(cls, event: OrderPlaced) -> NewOrder:
        return cls(
            event.order_id,
            event.customer.customer_id,
            event.min_remaining_shelf_life_days,
            event.placed_at,
        )


@dataclass(frozen=True)
class ShippedEarly:
    """Units of an order line that shipped before inventory knew the order."""

    order_id: str
    line_no: int
    shipped: Decimal


@dataclass(frozen=True)
class Shipping:
    """A batch of shipments as it is stored (`db.ship`): the reservations it used, what left
    each stock row for each order line, the lots' history rows, what shipped per lot and day,
    what shipped on lines not known yet, the orders it may have fulfilled and the lots it
    shipped from."""

    used: list[Reserve]
    shipped: list[Reserve]
    movements: list[Movement]
    days: list[ShippedDay]
    early: list[ShippedEarly]
    order_ids: list[str]
    lot_ids: set[UUID]


@dataclass(frozen=True)
class NewLine:
    order_id: str
    line_no: int
    sku: str
    uom: str
    quantity: Decimal

    @classmethod
    def all_of(cls, event: OrderPlaced) -> list[NewLine]:
        return [
            cls(event.order_id, line.line_no, line.sku, line.uom, line.quantity)
            for line in event.lines
        ]


@dataclass(frozen=True)
class StockChange:
    """Signed amounts added to one stock row; the field order is `db.STOCK_UPDATE`'s."""

    lot_id: UUID
    location: str
    received: Decimal = ZERO
    consumed: Decimal = ZERO
    shipped: Decimal = ZERO
    adjusted: Decimal = ZERO
    reserved: Decimal = ZERO
    returned: Decimal = ZERO
    vendor_returned: Decimal = ZERO
    moved: Decimal = ZERO

    @property
    def key(self) -> StockKey:
        return (self.lot_id, self.location)

    @classmethod
    def total(cls, changes: Sequence[StockChange]) -> StockChange:
        first = changes[0]
        amounts = (sum((getattr(c, name) for c in changes), ZERO) for name in AMOUNTS)
        return cls(first.lot_id, first.location, *amounts)


# The amounts a `StockChange` adds, in `db._stock_update`'s column order.
AMOUNTS = (
    "received",
    "consumed",
    "shipped",
    "adjusted",
    "reserved",
    "returned",
    "vendor_returned",
    "moved",
)


@dataclass(frozen=True)
class LineChange:
    """Signed amounts added to one order line and, when `sets_reason`, its backorder reason
    (None: nothing is missing). The field order is `db._line_update`'s."""

    order_id: str
    line_no: int
    reserved: Decimal = ZERO
    shipped: Decimal = ZERO
    reason: str | None = None
    sets_reason: bool = False

    @classmethod
    def backorder(cls, order_id: str, line_no: int, reason: str | None) -> LineChange:
        return cls(order_id, line_no, reason=reason, sets_reason=True)

    @property
    def key(self) -> LineKey:
        return (self.order_id, self.line_no)

    @classmethod
    def total(cls, changes: Sequence[LineChange]) -> LineChange:
        """Amounts add up; a reason set by any is kept, the latest one winning."""
        setters = [c for c in changes if c.sets_reason]
        setter = setters[-1] if setters else changes[0]
        return cls(
            changes[0].order_id,
            changes[0].line_no,
            reserved=sum((c.reserved for c in changes), ZERO),
            shipped=sum((c.shipped for c in changes), ZERO),
            reason=setter.reason,
            sets_reason=setter.sets_reason,
        )


@dataclass(frozen=True)
class StockRow:
    lot_id: UUID
    location: str
    on_hand: Decimal
    reserved: Decimal

    @property
    def key(self) -> StockKey:
        return (self.lot_id, self.location)


@dataclass(frozen=True, order=True)
class Edge:
    """A produced lot and one lot it was made from."""

    lot_id: UUID
    input_lot_id: UUID


@dataclass(frozen=True)
class InheritedRecall:
    """A lot recalled because a lot it was made from is recalled."""

    lot_id: UUID
    recall_id: str
    input_lot_id: UUID


@dataclass(frozen=True)
class OrderRevision:
    """An order's allocation revision; only orders with a known customer have one."""

    order_id: str
    customer_id: str
    revision: int
    status: str


@dataclass(frozen=True)
class ReservedLot:
    """A reservation with the lot it is from, as an allocation shows it."""

    order_id: str
    line_no: int
    quantity: Decimal
    location: str
    lot_id: UUID
    lot_code: str
    sku: str
    uom: str
    expiry_date: date | None
    received_at: datetime | None
    gtin: str | None

    @classmethod
    def of(cls, reserve: Reserve, lot: StockLot) -> ReservedLot:
        """The reservation's quantity and location, the lot's other facts."""
        return built_from(cls, reserve, lot)


@dataclass(frozen=True)
class LockedLot:
    lot_id: UUID
    sku: str
    lot_code: str
    blocks: list[str]
    gtin: str | None = None
    supplier_id: str | None = None
    uom: str = "EA"


@dataclass(frozen=True)
class FloorMovement:
    """Units of a lot taken by hand from a location: moved to another one (`move`), or sent
    back to the supplier (`return-to-vendor`); what its `lot-moved` event says beyond the lot."""

    kind: MovementKind
    quantity: Decimal
    from_location: str
    actor: str
    reason: str | None
    to_location: str | None = None
    rma: str | None = None


@dataclass(frozen=True)
class ReturnedLine:
    """One line of a customer return, on the lot it names, as it is taken into stock; the
    column order of `return_lines`."""

    return_id: str
    line_no: int
    lot_id: UUID
    customer_id: str
    order_id: str | None
    recall_id: str | None
    quantity: Decimal
    location: str
    reason: str
    condition: str | None
    beyond_shipped: Decimal
    returned_at: datetime
