"""Fulfillment: orders and allocations in, shipments and `order-shipped` out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.fulfillment import db
from services.fulfillment.domain import (
    SHIPPABLE_STATUSES,
    Allocated,
    Line,
    OrderStatus,
    ScannedLot,
    ShipmentRefused,
    counted_unshipped,
    is_newer_allocation,
    plan_shipment,
    remaining_allocations,
    settle,
    ships_in_full,
    unheard_quantities,
    unheard_shipments,
)
from services.fulfillment.outgoing import order_shipped
from services.fulfillment.records import (
    LotStatusRecord,
    OrderRecord,
    Shipment,
    StoredShipment,
    allocation_replacement,
    placed_orders,
    recalled_lots,
)
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    LotAllocated,
    LotStatusChanged,
    OrderCancelled,
    OrderPlaced,
    RecallIssued,
)
from shared.errors import ErrorKind
from shared.ids import new_id
from shared.runtime.consumer import EventHandler
from shared.runtime.database import UnitOfWork

AUTO_SHIPPER = "rule:auto_ship"


@dataclass(frozen=True)
class ShipmentResult:
    shipment: Shipment  # shipped_by: the key that shipped it, also when a retry replays it
    replayed: bool = False


@dataclass
class AutoShipment:
    """What auto-shipping a batch of orders decided: the shipments, what each order has left
    allocated, and the orders it completed."""

    shipments: list[Shipment] = field(default_factory=list)
    remaining: dict[str, list[Allocated]] = field(default_factory=dict)
    complete: list[str] = field(default_factory=list)


class Fulfillment:
    def __init__(self, *, auto_ship: bool = False) -> None:
        self.auto_ship = auto_ship

    def handlers(self) -> list[tuple[type[Any], EventHandler]]:
        return [
            (RecallIssued, self.on_recall_issued),
            (LotStatusChanged, self.on_lot_status_changed),
            (OrderPlaced, self.on_order_placed),
            (OrderCancelled, self.on_order_cancelled),
            (LotAllocated, self.on_lot_allocated),
        ]

    async def on_order_placed(self, unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
        orders, lines = placed_orders([incoming.data for incoming in events])
        waiting = await db.store_orders(unit.connection, orders, lines)
        if self.auto_ship and waiting:
            # An allocation that arrived before its order can ship now.
            await self._ship_stored(unit, waiting)

    async def on_order_cancelled(
        self, unit: UnitOfWork, events: list[Incoming[OrderCancelled]]
    ) -> None:
        await db.cancel_orders(
            unit.connection, {incoming.data.order_id: incoming.data.reason for incoming in events}
        )

    async def on_lot_allocated(
        self, unit: UnitOfWork, events: list[Incoming[LotAllocated]]
    ) -> None:
        latest = _latest_per_order([incoming.data for incoming in events])
        orders = await db.claim_orders(unit.connection, latest)
        fresh = [
            event
            for order_id, event in latest.items()
            if is_newer_allocation(event.revision, orders[order_id].allocation_revision)
        ]
        if not fresh:
            return
        lines = await db.lines_of(unit.connection, [event.order_id for event in fresh])
        allocated = await _less_unheard_shipments(unit, fresh, lines)
        shipped = AutoShipment(remaining=allocated)
        if self.auto_ship:
            # Ship from the allocation as it arrives; only what cannot ship stays allocated.
            candidates = [orders[event.order_id] for event in fresh]
            shipped = await self._plan_auto_shipments(unit, candidates, allocated, lines)
        await db.replace_allocations(
            unit.connection, allocation_replacement(fresh, shipped.remaining)
        )
        await self._record(unit, shipped.shipments, complete=shipped.complete)

    async def on_recall_issued(
        self, unit: UnitOfWork, events: list[Incoming[RecallIssued]]
    ) -> None:
        for incoming in events:
            lots = recalled_lots(incoming.data)
            await db.block_lots(unit.connection, lots, reason="recalled")

    async def on_lot_status_changed(
        self, unit: UnitOfWork, events: list[Incoming[LotStatusChanged]]
    ) -> None:
        """Remember each lot's status: a lot not available refuses a shipment at once, before
        inventory's re-allocation arrives."""
        statuses = LotStatusRecord.latest_of(incoming.data for incoming in events)
        await db.record_lot_statuses(unit.connection, statuses)
        shippable = [s.lot_id for s in statuses if s.status in SHIPPABLE_STATUSES]
        if self.auto_ship and shippable:
            # An allocation that came before its lot was announced available ships now.
            await self._ship_stored(
                unit, await db.orders_allocated_from(unit.connection, shippable)
            )

    # ------------------------------------------------------------------ auto-shipping

    async def _plan_auto_shipments(
        self,
        unit: UnitOfWork,
        orders: Sequence[OrderRecord],
        allocations: Mapping[str, list[Allocated]],
        lines: Mapping[str, list[Line]],
    ) -> AutoShipment:
        """Ship what can ship of each order's allocation now; blocked lots wait. The one
        auto-ship rule, whether the allocation is stored or has just arrived."""
        result = AutoShipment(remaining=dict(allocations))
        ready = [order for order in orders if order.may_ship and allocations[order.order_id]]
        if not ready:
            return result
        ids = [order.order_id for order in ready]
        blocked = await db.blocked_among(
            unit.connection,
            {a.lot_id for order_id in ids for a in allocations[order_id]},
            shippable=SHIPPABLE_STATUSES,
        )
        now = datetime.now(UTC)
        for order in ready:
            order_id, allocated = order.order_id, allocations[order.order_id]
            plan = plan_shipment(lines[order_id], allocated, blocked=blocked, strict=False)
            if plan.is_empty:
                continue
            assert order.customer is not None, "an order that may ship was placed"
            result.shipments.append(
                Shipment(new_id(), order_id, now, AUTO_SHIPPER, order.customer, plan.lines)
            )
            result.remaining[order_id] = remaining_allocations(allocated, plan.lines)
            if ships_in_full(lines[order_id], plan.lines):
                result.complete.append(order_id)
        return result

    async def _ship_stored(self, unit: UnitOfWork, order_ids: Sequence[str]) -> None:
        """Auto-ship the allocation these orders already have stored."""
        orders = await db.lock_orders(unit.connection, order_ids)
        ids = [order.order_id for order in orders]
        allocations = await db.allocations_of(unit.connection, ids)
        lines = await db.lines_of(unit.connection, ids)
        shipped = await self._plan_auto_shipments(unit, orders, allocations, lines)
        for shipment in shipped.shipments:
            settled = settle(allocations[shipment.order_id], shipment.lines)
            await db.settle_allocations(unit.connection, shipment.order_id, settled)
        await self._record(unit, shipped.shipments, complete=shipped.complete)

    # ------------------------------------------------------------------ shipping by hand

    async def ship(
        self,
        unit: UnitOfWork,
        *,
        order_id: str,
        shipment_id: str | None,
        scanned: Sequence[ScannedLot] | None,
        requested: dict[int, Decimal | None] | None,
        actor: str,
    ) -> ShipmentResult:
        if shipment_id is not None:
            earlier = await db.find_shipment(unit.connection, shipment_id)
            if earlier is not None:
                return ShipmentResult(await _replay(unit, earlier, order_id), replayed=True)
        order = await _order_to_ship(unit, order_id)
        lines = (await db.lines_of(unit.connection, [order_id]))[order_id]
        allocations = (await db.allocations_of(unit.connection, [order_id]))[order_id]
        blocked = await db.blocked_among(
            unit.connection, {a.lot_id for a in allocations}, shippable=SHIPPABLE_STATUSES
        )
        plan = plan_shipment(
            lines, allocations, blocked=blocked, requested=requested, scanned=scanned, strict=True
        )
        if plan.is_empty:
            raise ShipmentRefused(
                "nothing_to_ship", f"order {order_id} has nothing allocated left to ship"
            )
        assert order.customer is not None
        shipment = Shipment(
            shipment_id or new_id(), order_id, datetime.now(UTC), actor, order.customer, plan.lines
        )
        complete = [order_id] if ships_in_full(lines, plan.lines) else []
        await self._record(unit, [shipment], complete=complete)
        await db.settle_allocations(unit.connection, order_id, settle(allocations, plan.lines))
        return ShipmentResult(shipment)

    async def _record(
        self, unit: UnitOfWork, shipments: list[Shipment], *, complete: Sequence[str]
    ) -> None:
        await db.record_shipments(unit.connection, shipments)
        if complete:
            await db.mark_shipped(unit.connection, complete)
        for shipment in shipments:
            unit.emit(order_shipped(shipment), time=shipment.shipped_at)


async def _order_to_ship(unit: UnitOfWork, order_id: str) -> OrderRecord:
    """The order, locked, refused when it is unknown, cancelled or shipped in full."""
    orders = await db.lock_orders(unit.connection, [order_id])
    if not orders or orders[0].customer_id is None:
        raise ShipmentRefused("order_not_found", f"no order {order_id}", kind=ErrorKind.NOT_FOUND)
    order = orders[0]
    if order.status == OrderStatus.CANCELLED:
        raise ShipmentRefused("order_cancelled", f"order {order_id} is cancelled")
    if order.status == OrderStatus.SHIPPED:
        raise ShipmentRefused("order_shipped", f"order {order_id} has shipped in full")
    return order


async def _replay(unit: UnitOfWork, earlier: StoredShipment, order_id: str) -> Shipment:
    """The shipment a retry with the same shipment id made, as it was."""
    if earlier.order_id != order_id:
        raise ShipmentRefused(
            "shipment_id_taken", f"shipment {earlier.shipment_id} belongs to another order"
        )
    order = await db.get_order(unit.connection, earlier.order_id)
    assert order is not None
    assert order.customer is not None
    rows = await db.shipment_lines(unit.connection, [earlier.shipment_id])
    return Shipment(
        earlier.shipment_id,
        earlier.order_id,
        earlier.shipped_at,
        earlier.shipped_by,
        order.customer,
        [row.ship_line for row in rows],
    )


def _latest_per_order(events: Sequence[LotAllocated]) -> dict[str, LotAllocated]:
    """The newest allocation of each order in a batch: in log order per key, the last one of
    the highest revision."""
    latest: dict[str, LotAllocated] = {}
    for event in events:
        previous = latest.get(event.order_id)
        if previous is None or (event.revision or 0) >= (previous.revision or 0):
            latest[event.order_id] = event
    return latest


async def _less_unheard_shipments(
    unit: UnitOfWork, events: Sequence[LotAllocated], lines: Mapping[str, list[Line]]
) -> dict[str, list[Allocated]]:
    """Each order's allocation as its event states it, less what we shipped that inventory had
    not heard of when it published the event (those units are still in it): a shipment and a
    re-allocation may cross on the topics."""
    allocated = {event.order_id: _allocated(event) for event in events}
    behind = {
        event.order_id: quantities
        for event in events
        if (
            quantities := unheard_quantities(
                lines[event.order_id], counted_unshipped(event.allocations, event.backordered)
            )
        )
    }
    if not behind:
        return allocated
    shipped = await db.shipped_newest_first(unit.connection, list(behind))
    for order_id, quantities in behind.items():
        unheard = unheard_shipments(quantities, shipped[order_id])
        allocated[order_id] = remaining_allocations(allocated[order_id], unheard)
    return allocated


def _allocated(event: LotAllocated) -> list[Allocated]:
    return [
        Allocated(a.line_no, a.sku, a.lot_id, a.lot_code, a.quantity, a.uom, a.expiry_date, a.gtin)
        for a in event.allocations
    ]
