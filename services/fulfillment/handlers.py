"""Fulfillment: orders and allocations in, shipments and `order-shipped` out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.fulfillment import db
from services.fulfillment.domain import (
    Allocated,
    ScannedLot,
    ShipLine,
    ShipmentRefused,
    plan_shipment,
    remaining_allocations,
    ships_in_full,
)
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    LotAllocated,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    RecallIssued,
    ShipmentLine,
)
from shared.contracts.types import Customer
from shared.errors import ErrorKind
from shared.ids import new_id
from shared.runtime.consumer import EventHandler
from shared.runtime.database import UnitOfWork

AUTO_SHIPPER = "rule:auto_ship"


@dataclass(frozen=True)
class ShipmentResult:
    shipment_id: str
    order_id: str
    customer: Customer
    shipped_at: datetime
    lines: list[ShipLine]
    shipped_by: str | None = None  # the key that shipped it, also when a retry replays it
    replayed: bool = False


class Fulfillment:
    def __init__(self, *, auto_ship: bool = False) -> None:
        self.auto_ship = auto_ship

    def handlers(self) -> list[tuple[type[Any], EventHandler]]:
        return [
            (RecallIssued, self.on_recall_issued),
            (OrderPlaced, self.on_order_placed),
            (OrderCancelled, self.on_order_cancelled),
            (LotAllocated, self.on_lot_allocated),
        ]

    async def on_order_placed(self, unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
        orders: dict[str, OrderPlaced] = {}
        for incoming in events:
            orders.setdefault(incoming.data.order_id, incoming.data)
        stored = await db.store_orders(
            unit.connection,
            [
                {
                    "order_id": order.order_id,
                    "customer_id": order.customer.customer_id,
                    "customer": order.customer.model_dump(mode="json", exclude_none=True),
                    "placed_at": order.placed_at,
                }
                for order in orders.values()
            ],
            [
                {
                    "order_id": order.order_id,
                    "line_no": line.line_no,
                    "sku": line.sku,
                    "uom": line.uom,
                    "quantity": line.quantity,
                }
                for order in orders.values()
                for line in order.lines
            ],
        )
        waiting = [order_id for order_id, was_waiting in stored if was_waiting]
        if self.auto_ship and waiting:
            # An allocation that arrived before its order can ship now.
            await self._auto_ship(unit, waiting)

    async def on_order_cancelled(
        self, unit: UnitOfWork, events: list[Incoming[OrderCancelled]]
    ) -> None:
        await db.cancel_orders(
            unit.connection, {incoming.data.order_id: incoming.data.reason for incoming in events}
        )

    async def on_lot_allocated(
        self, unit: UnitOfWork, events: list[Incoming[LotAllocated]]
    ) -> None:
        latest: dict[str, LotAllocated] = {}
        for incoming in events:  # log order per key: the last one is the newest
            event = incoming.data
            previous = latest.get(event.order_id)
            if previous is None or (event.revision or 0) >= (previous.revision or 0):
                latest[event.order_id] = event
        orders = await db.claim_orders(unit.connection, latest)
        fresh = [
            event
            for order_id, event in latest.items()
            if event.revision is None or event.revision > orders[order_id]["allocation_revision"]
        ]
        if not fresh:
            return
        remaining = {event.order_id: _allocated(event) for event in fresh}
        shipments: list[tuple[str, str, datetime, str, list[ShipLine]]] = []
        customers: dict[str, Customer] = {}
        complete: set[str] = set()
        if self.auto_ship:
            # Ship from the allocation as it arrives; only what cannot ship stays allocated.
            ready = [
                event.order_id
                for event in fresh
                if orders[event.order_id]["status"] == "open"
                and orders[event.order_id]["customer_id"] is not None
            ]
            lines = await db.lines_of(unit.connection, ready)
            blocked = await db.blocked_among(
                unit.connection, {a.lot_id for order_id in ready for a in remaining[order_id]}
            )
            now = datetime.now(UTC)
            for order_id in ready:
                plan = plan_shipment(
                    lines[order_id], remaining[order_id], blocked=blocked, strict=False
                )
                if not plan.is_empty:
                    shipments.append((new_id(), order_id, now, AUTO_SHIPPER, plan.lines))
                    customers[order_id] = Customer.model_validate(orders[order_id]["customer"])
                    remaining[order_id] = remaining_allocations(remaining[order_id], plan.lines)
                    if ships_in_full(lines[order_id], plan.lines):
                        complete.add(order_id)
        await db.replace_allocations(
            unit.connection,
            [event.order_id for event in fresh],
            [event.revision for event in fresh],
            [event.allocated_at for event in fresh],
            [
                {**vars(allocation), "order_id": order_id, "location": location}
                for order_id, allocated in remaining.items()
                for allocation, location in zip(
                    allocated, _locations(latest[order_id], allocated), strict=True
                )
            ],
            [
                {**backorder.model_dump(), "order_id": event.order_id}
                for event in fresh
                for backorder in event.backordered
            ],
            shipped_in_full=[event.order_id in complete for event in fresh],
        )
        await self._record(unit, shipments, customers, close_orders=False)

    async def on_recall_issued(
        self, unit: UnitOfWork, events: list[Incoming[RecallIssued]]
    ) -> None:
        for incoming in events:
            recall = incoming.data
            await db.block_lots(
                unit.connection,
                [(lot.lot_id, lot.lot_code, recall.recall_id) for lot in recall.affected_lots],
                reason="recalled",
            )

    # ------------------------------------------------------------------ shipping

    async def _auto_ship(self, unit: UnitOfWork, order_ids: Sequence[str]) -> None:
        ready = await db.shippable_orders(unit.connection, order_ids)
        if not ready:
            return
        customers = {
            row["order_id"]: Customer.model_validate(row["customer"])
            for row in await db.lock_orders(unit.connection, ready)
        }
        lines = await db.lines_of(unit.connection, ready)
        allocations = await db.allocations_of(unit.connection, ready)
        blocked = await db.blocked_among(
            unit.connection, {a.lot_id for order in allocations.values() for a in order}
        )
        shipments = []
        now = datetime.now(UTC)
        for order_id in ready:
            plan = plan_shipment(
                lines[order_id], allocations[order_id], blocked=blocked, strict=False
            )
            if not plan.is_empty:
                shipments.append((new_id(), order_id, now, AUTO_SHIPPER, plan.lines))
                await db.take_from_allocations(unit.connection, order_id, plan.lines)
        await self._record(unit, shipments, customers)

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
                if earlier["order_id"] != order_id:
                    raise ShipmentRefused(
                        "shipment_id_taken", f"shipment {shipment_id} belongs to another order"
                    )
                return await self._replay(unit, earlier)
        orders = await db.lock_orders(unit.connection, [order_id])
        if not orders or orders[0]["customer_id"] is None:
            raise ShipmentRefused(
                "order_not_found", f"no order {order_id}", kind=ErrorKind.NOT_FOUND
            )
        order = orders[0]
        if order["status"] == "cancelled":
            raise ShipmentRefused("order_cancelled", f"order {order_id} is cancelled")
        if order["status"] == "shipped":
            raise ShipmentRefused("order_shipped", f"order {order_id} has shipped in full")
        lines = (await db.lines_of(unit.connection, [order_id]))[order_id]
        allocations = (await db.allocations_of(unit.connection, [order_id]))[order_id]
        blocked = await db.blocked_among(unit.connection, {a.lot_id for a in allocations})
        plan = plan_shipment(
            lines, allocations, blocked=blocked, requested=requested, scanned=scanned, strict=True
        )
        if plan.is_empty:
            raise ShipmentRefused(
                "nothing_to_ship", f"order {order_id} has nothing allocated left to ship"
            )
        customer = Customer.model_validate(order["customer"])
        shipment = (shipment_id or new_id(), order_id, datetime.now(UTC), actor, plan.lines)
        await self._record(unit, [shipment], {order_id: customer})
        await db.take_from_allocations(unit.connection, order_id, plan.lines)
        return ShipmentResult(
            shipment[0], order_id, customer, shipment[2], plan.lines, shipped_by=actor
        )

    async def _record(
        self,
        unit: UnitOfWork,
        shipments: list[tuple[str, str, datetime, str, list[ShipLine]]],
        customers: dict[str, Customer],
        *,
        close_orders: bool = True,
    ) -> None:
        await db.record_shipments(unit.connection, shipments, close_orders=close_orders)
        for shipment_id, order_id, shipped_at, _, lines in shipments:
            unit.emit(
                OrderShipped(
                    shipment_id=shipment_id,
                    order_id=order_id,
                    customer=customers[order_id],
                    shipped_at=shipped_at,
                    lines=[
                        ShipmentLine(
                            line_no=line.line_no,
                            sku=line.sku,
                            lot_id=line.lot_id,
                            lot_code=line.lot_code,
                            quantity=line.quantity,
                            uom=line.uom,
                        )
                        for line in lines
                    ],
                ),
                time=shipped_at,
            )

    async def _replay(self, unit: UnitOfWork, earlier: Any) -> ShipmentResult:
        order = await db.get_order(unit.connection, earlier["order_id"])
        assert order is not None
        rows = await db.shipment_lines(unit.connection, [earlier["shipment_id"]])
        return ShipmentResult(
            shipment_id=earlier["shipment_id"],
            order_id=earlier["order_id"],
            customer=Customer.model_validate(order["customer"]),
            shipped_at=earlier["shipped_at"],
            lines=[
                ShipLine(
                    r["line_no"], r["sku"], r["lot_id"], r["lot_code"], r["quantity"], r["uom"]
                )
                for r in rows
            ],
            shipped_by=earlier["shipped_by"],
            replayed=True,
        )


def _allocated(event: LotAllocated) -> list[Allocated]:
    return [
        Allocated(a.line_no, a.sku, a.lot_id, a.lot_code, a.quantity, a.uom, a.expiry_date, a.gtin)
        for a in event.allocations
    ]


def _locations(event: LotAllocated, allocated: Sequence[Allocated]) -> list[str]:
    """Where each remaining allocation is, as the event said."""
    where = {(a.line_no, a.lot_id): a.location for a in event.allocations}
    return [where.get((a.line_no, a.lot_id), "MAIN") for a in allocated]
