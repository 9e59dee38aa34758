"""Inventory: events and commands in, domain decisions, rows and `lot-allocated` out.

Stock is kept per lot and location. Lock order, everywhere: order lines first (by order id),
then lots and their stock rows (by lot id, location). Allocation re-reads availability under
those row locks, so two replicas never reserve one unit twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.inventory import db, domain
from services.inventory.db import LotFacts, Movement, StockKey
from services.inventory.domain import Reserve
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    Allocation,
    Backorder,
    GoodsReceived,
    LotAllocated,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    RecallIssued,
)
from shared.runtime.consumer import EventHandler
from shared.runtime.database import Record, UnitOfWork
from shared.runtime.logging import get_logger

log = get_logger(__name__)

Today = Callable[[], date]

# Where stock that left a lot goes when no receipt has said yet where the lot is.
UNKNOWN_LOCATION = "UNKNOWN"
ZERO = Decimal(0)


def utc_today() -> date:
    return datetime.now(UTC).date()


class InventoryError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Inventory:
    """The inventory application: one instance per service, its clock injectable for tests."""

    def __init__(self, today: Today = utc_today) -> None:
        self.today = today

    # ------------------------------------------------------------------ event handlers

    def handlers(self) -> list[tuple[type[Any], EventHandler]]:
        """In the order a batch applies them: stock first, then what consumes it."""
        return [
            (GoodsReceived, self.on_goods_received),
            (RecallIssued, self.on_recall_issued),
            (OrderShipped, self.on_order_shipped),
            (OrderCancelled, self.on_order_cancelled),
            (OrderPlaced, self.on_order_placed),
        ]

    async def on_goods_received(
        self, unit: UnitOfWork, events: list[Incoming[GoodsReceived]]
    ) -> None:
        connection = unit.connection
        received: dict[StockKey, dict[str, Any]] = {}
        consumed: dict[UUID, Decimal] = defaultdict(Decimal)
        input_facts: list[LotFacts] = []
        movements: list[Movement] = []
        produced_by: dict[UUID, str] = {}  # produced lot -> the event that received it
        edges: set[tuple[UUID, UUID]] = set()
        for incoming in events:
            event = incoming.data
            row = received.get((event.lot_id, event.location))
            if row is None:
                received[(event.lot_id, event.location)] = {
                    "lot_id": event.lot_id,
                    "sku": event.sku,
                    "lot_code": event.lot_code,
                    "gtin": event.gtin,
                    "uom": event.uom,
                    "location": event.location,
                    "supplier_id": event.supplier.supplier_id if event.supplier else None,
                    "expiry_date": event.expiry_date,
                    "received_at": event.received_at,
                    "unit_cost": event.unit_cost.amount if event.unit_cost else None,
                    "currency": event.unit_cost.currency if event.unit_cost else None,
                    "quantity": event.quantity,
                }
            else:
                row["quantity"] += event.quantity
                row["expiry_date"] = event.expiry_date or row["expiry_date"]
            movements.append(
                Movement(
                    event.lot_id,
                    "received",
                    event.quantity,
                    incoming.id,
                    detail=event.receipt_id,
                    location=event.location,
                )
            )
            for item in event.inputs:
                consumed[item.lot_id] += item.quantity
                input_facts.append(LotFacts(item.lot_id, item.sku, item.lot_code, item.uom))
                edges.add((event.lot_id, item.lot_id))
                produced_by[event.lot_id] = incoming.id
        await db.upsert_received(connection, list(received.values()))
        withdrawals: list[tuple[str, str, list[UUID]]] = []
        if consumed:
            await db.ensure_lots(connection, input_facts)
            # The inputs are locked before the genealogy is recorded: a recall of one of them
            # committing meanwhile is seen below, and one that comes later sees these edges.
            await db.lock_lots(connection, consumed)
            await db.record_inputs(connection, sorted(edges))
            inherited, withdrawals = await self._inherit_recalls(unit, produced_by)
            movements += inherited
            drawn = await self._draw(unit, consumed)
            await db.change_stock(
                connection,
                {key: {"consumed": quantity} for key, quantity in drawn.items()},
                create=True,
            )
            movements += [
                Movement(lot_id, "consumed", quantity, "rule:production", location=location)
                for (lot_id, location), quantity in drawn.items()
            ]
        await db.record_movements(connection, movements)
        for cause, recall_id, lot_ids in withdrawals:
            await self._withdraw(unit, lot_ids, cause=cause, detail=f"recall {recall_id}")
        if consumed:
            await self._fit_reservations(unit, consumed, cause="production consumed stock")
        await self._refill(unit, {row["sku"] for row in received.values()}, cause="stock received")

    async def on_order_placed(self, unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
        orders: dict[str, Incoming[OrderPlaced]] = {}
        for incoming in events:
            orders.setdefault(incoming.data.order_id, incoming)  # a re-sent order counts once
        placed = [
            {
                "order_id": order_id,
                "customer_id": incoming.data.customer.customer_id,
                "min_remaining_shelf_life_days": incoming.data.min_remaining_shelf_life_days,
                "placed_at": incoming.data.placed_at,
            }
            for order_id, incoming in orders.items()
        ]
        lines = [
            {
                "order_id": order_id,
                "line_no": line.line_no,
                "sku": line.sku,
                "uom": line.uom,
                "quantity": line.quantity,
            }
            for order_id, incoming in orders.items()
            for line in incoming.data.lines
        ]
        created = set(await db.insert_new_orders(unit.connection, placed, lines))
        # In the order they arrived, which is the order FEFO serves them in.
        new_ids = [order_id for order_id in orders if order_id in created]
        if not new_ids:
            return
        # New orders: their demand is what they ordered, and no one else has seen their lines.
        demands = [
            domain.Demand(
                order_id=order_id,
                line_no=line.line_no,
                sku=line.sku,
                uom=line.uom,
                quantity=line.quantity,
                min_remaining_shelf_life_days=orders[order_id].data.min_remaining_shelf_life_days,
            )
            for order_id in new_ids
            for line in orders[order_id].data.lines
        ]
        result = await self._reserve(unit, demands, causes={oid: orders[oid].id for oid in new_ids})
        now = datetime.now(UTC)
        allocations: dict[str, list[Allocation]] = defaultdict(list)
        for reserve in result.reserves:
            lot = result.lots[(reserve.lot_id, reserve.location)]
            allocations[reserve.order_id].append(
                Allocation(
                    line_no=reserve.line_no,
                    sku=lot.sku,
                    lot_id=lot.lot_id,
                    lot_code=lot.lot_code,
                    quantity=reserve.quantity,
                    uom=lot.uom,
                    expiry_date=lot.expiry_date,
                    location=lot.location,
                    gtin=lot.gtin,
                )
            )
        backorders: dict[str, list[Backorder]] = defaultdict(list)
        for shortfall in result.shortfalls:
            backorders[shortfall.order_id].append(
                Backorder(
                    line_no=shortfall.line_no,
                    sku=shortfall.sku,
                    quantity=shortfall.quantity,
                    uom=shortfall.uom,
                    reason=shortfall.reason,
                )
            )
        for order_id in new_ids:
            unit.emit(
                LotAllocated(
                    order_id=order_id,
                    customer_id=orders[order_id].data.customer.customer_id,
                    allocations=allocations[order_id],
                    backordered=backorders[order_id],
                    revision=1,
                    allocated_at=now,
                ),
                time=now,
            )

    async def on_order_cancelled(
        self, unit: UnitOfWork, events: list[Incoming[OrderCancelled]]
    ) -> None:
        cause = {incoming.data.order_id: incoming.id for incoming in events}
        cancelled = await db.cancel_orders(unit.connection, list(cause))
        if not cancelled:
            return
        await db.lock_order_lines(unit.connection, cancelled)
        held = await db.held_for_orders(unit.connection, cancelled)
        releases = [_reserve(h) for h in held]
        await self._release(unit, releases, causes=cause, detail="order cancelled")
        skus = await db.skus_of(unit.connection, {r.lot_id for r in releases})
        await self._refill(unit, skus, cause="stock released by a cancellation")

    async def on_order_shipped(
        self, unit: UnitOfWork, events: list[Incoming[OrderShipped]]
    ) -> None:
        connection = unit.connection
        shipped: dict[tuple[str, int, UUID], Decimal] = defaultdict(Decimal)
        per_line: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        causes: dict[tuple[str, int, UUID], tuple[str, str]] = {}
        facts: list[LotFacts] = []
        for incoming in events:
            shipment = incoming.data
            for line in shipment.lines:
                shipment_key = (shipment.order_id, line.line_no, line.lot_id)
                shipped[shipment_key] += line.quantity
                per_line[(shipment.order_id, line.line_no)] += line.quantity
                causes[shipment_key] = (incoming.id, shipment.shipment_id)
                facts.append(LotFacts(line.lot_id, line.sku, line.lot_code, line.uom))
        order_ids = sorted({order_id for order_id, _ in per_line})
        lot_ids = {lot_id for _, _, lot_id in shipped}
        await db.lock_order_lines(connection, order_ids)
        await db.ensure_lots(connection, facts)
        await db.lock_lot_rows(connection, lot_ids)

        # Shipped stock leaves where it was reserved; beyond that, where most of the lot is.
        used, beyond = domain.ship_from_reservations(
            await db.reservations_for(connection, shipped), shipped
        )
        shipped_from: dict[tuple[str, int, UUID, str], Decimal] = defaultdict(Decimal)
        for taken in used:
            shipped_from[(taken.order_id, taken.line_no, taken.lot_id, taken.location)] += (
                taken.quantity
            )
        if beyond:
            stock = await db.stock_of(connection, {lot_id for _, _, lot_id in beyond})
            for (order_id, line_no, lot_id), quantity in beyond.items():
                for location, part in domain.draw_from_locations(_places(stock, lot_id), quantity):
                    shipped_from[(order_id, line_no, lot_id, location)] += part
            await db.change_stock(
                connection,
                {(lot_id, location): {} for (_, _, lot_id, location) in shipped_from},
                create=True,
            )
        await db.release(connection, used, shipped=shipped_from)
        await db.record_movements(
            connection,
            [
                Movement(
                    lot_id,
                    "shipped",
                    quantity,
                    causes[(order_id, line_no, lot_id)][0],
                    order_id=order_id,
                    detail=causes[(order_id, line_no, lot_id)][1],
                    location=location,
                )
                for (order_id, line_no, lot_id, location), quantity in shipped_from.items()
            ],
        )
        await db.close_fulfilled_orders(connection, order_ids)
        if not beyond:
            return  # everything left from its reservations: nothing else can have changed

        # A line that shipped from another lot than reserved still holds its reservation:
        # give the excess back so the stock serves other orders.
        states = {
            (s.order_id, s.line_no): s for s in await db.over_reserved_lines(connection, order_ids)
        }
        releases: list[Reserve] = []
        if states:
            held_by_line: dict[tuple[str, int], list[domain.Held]] = defaultdict(list)
            for held in await db.held_for_lines(connection, states):
                held_by_line[(held.order_id, held.line_no)].append(held)
            for line_key, state in states.items():
                releases += domain.excess_to_release(
                    held_by_line[line_key], ordered=state.ordered, shipped=state.shipped
                )
            await self._release(unit, releases, causes={}, detail="shipped otherwise")
        await self._fit_reservations(unit, set(lot_ids), cause="shipped beyond reservations")
        if releases:
            await self._publish(unit, sorted({r.order_id for r in releases}))
            skus = await db.skus_of(connection, {r.lot_id for r in releases})
            await self._refill(unit, skus, cause="released")

    async def on_recall_issued(
        self, unit: UnitOfWork, events: list[Incoming[RecallIssued]]
    ) -> None:
        connection = unit.connection
        for incoming in events:
            recall = incoming.data
            lot_ids = [lot.lot_id for lot in recall.affected_lots]
            await db.ensure_lots(
                connection,
                [LotFacts(lot.lot_id, lot.sku, lot.lot_code, "EA") for lot in recall.affected_lots],
            )
            newly = await db.mark_recalled(connection, lot_ids, recall.recall_id)
            # And lots made from them that the recall service had not seen yet.
            descendants, inherited = await self._recall_made_from(
                unit, lot_ids, recall.recall_id, cause=incoming.id
            )
            await db.record_movements(
                connection,
                [
                    Movement(lot_id, "recalled", None, incoming.id, detail=recall.recall_id)
                    for lot_id in newly
                ]
                + inherited,
            )
            await self._withdraw(
                unit, newly + descendants, cause=incoming.id, detail=f"recall {recall.recall_id}"
            )

    # ------------------------------------------------------------------ commands (HTTP)

    async def hold(self, unit: UnitOfWork, lot_id: UUID, *, reason: str, actor: str) -> None:
        await self._require_lot(unit, lot_id)
        await db.set_hold(unit.connection, lot_id, on_hold=True, reason=reason)
        await db.record_movements(
            unit.connection, [Movement(lot_id, "hold", None, f"user:{actor}", detail=reason)]
        )
        await self._withdraw(
            unit, [lot_id], cause=f"user:{actor}", detail=f"quality hold: {reason}"
        )

    async def release_hold(
        self, unit: UnitOfWork, lot_id: UUID, *, reason: str | None, actor: str
    ) -> None:
        lot = await self._require_lot(unit, lot_id)
        if lot["recalled"]:
            raise InventoryError(
                409, "lot_recalled", f"lot {lot['lot_code']} is recalled; it stays blocked"
            )
        await db.set_hold(unit.connection, lot_id, on_hold=False, reason=None)
        await db.record_movements(
            unit.connection, [Movement(lot_id, "release", None, f"user:{actor}", detail=reason)]
        )
        await self._refill(unit, [lot["sku"]], cause="hold released")

    async def adjust(
        self,
        unit: UnitOfWork,
        lot_id: UUID,
        *,
        location: str | None,
        delta: Decimal | None,
        counted: Decimal | None,
        reason: str,
        actor: str,
    ) -> Decimal:
        """A count at one location of a lot; stock never goes negative."""
        lot = await self._require_lot(unit, lot_id)
        stock = await db.stock_of(unit.connection, [lot_id])
        places = {row["location"]: row["on_hand"] for row in stock.get(lot_id, [])}
        if location is None:
            if len(places) != 1:
                raise InventoryError(
                    422,
                    "location_required",
                    f"lot {lot['lot_code']} is at {len(places)} locations: say which was counted",
                )
            location = next(iter(places))
        on_hand = places.get(location, ZERO)
        change = delta if delta is not None else (counted or ZERO) - on_hand
        if problem := domain.adjustment_problem(on_hand=on_hand, delta=change):
            raise InventoryError(
                409, "negative_stock", f"lot {lot['lot_code']} at {location}: {problem}"
            )
        if change == 0:
            return ZERO
        await db.change_stock(
            unit.connection, {(lot_id, location): {"adjusted": change}}, create=True
        )
        await db.record_movements(
            unit.connection,
            [
                Movement(
                    lot_id, "adjusted", change, f"user:{actor}", detail=reason, location=location
                )
            ],
        )
        if change < 0:
            await self._fit_reservations(unit, [lot_id], cause=f"user:{actor}")
        else:
            await self._refill(unit, [lot["sku"]], cause="stock counted up")
        return change

    async def sweep_expired(self, unit: UnitOfWork) -> int:
        """Release reservations on lots that expired since they were made, and re-allocate."""
        expired = await db.expired_with_reservations(unit.connection, self.today())
        if expired:
            await self._withdraw(unit, expired, cause="rule:expiry", detail="lot expired")
        return len(expired)

    # ------------------------------------------------------------------ allocation

    async def _allocate(
        self, unit: UnitOfWork, order_ids: Sequence[str], *, causes: dict[str, str] | None = None
    ) -> None:
        """Allocate the open demand of these orders FEFO, then publish their allocation."""
        if not order_ids:
            return
        demands = await db.open_demand(unit.connection, order_ids)
        if demands:
            await self._reserve(unit, demands, causes=causes or {})
        await self._publish(unit, order_ids)

    async def _reserve(
        self, unit: UnitOfWork, demands: Sequence[domain.Demand], *, causes: dict[str, str]
    ) -> Reservation:
        """FEFO over the lots that may be allocated, locked; reservations and reasons stored."""
        connection = unit.connection
        today = self.today()
        lots = await db.lock_allocatable(connection, {d.sku for d in demands}, today)
        result = domain.allocate(demands, lots, today=today)
        reasons: dict[tuple[str, int], str | None] = {
            (d.order_id, d.line_no): None for d in demands
        }
        for shortfall in result.shortfalls:
            reasons[(shortfall.order_id, shortfall.line_no)] = shortfall.reason.value
        await db.reserve(connection, result.reserves, reasons)
        await db.record_movements(
            connection,
            [
                Movement(
                    r.lot_id,
                    "reserved",
                    r.quantity,
                    causes.get(r.order_id, "rule:allocation"),
                    order_id=r.order_id,
                    location=r.location,
                )
                for r in result.reserves
            ],
        )
        return Reservation(
            reserves=result.reserves,
            shortfalls=result.shortfalls,
            lots={(lot.lot_id, lot.location): lot for lot in lots},
        )

    async def _refill(self, unit: UnitOfWork, skus: Iterable[str], *, cause: str) -> None:
        """Stock became available: fill waiting orders, oldest first."""
        wanted = sorted(set(skus))
        if not wanted:
            return
        waiting = await db.orders_waiting_for(unit.connection, wanted)
        if waiting:
            log.debug("filling backorders", orders=len(waiting), cause=cause)
            await self._allocate(unit, waiting)

    async def _inherit_recalls(
        self, unit: UnitOfWork, produced_by: dict[UUID, str]
    ) -> tuple[list[Movement], list[tuple[str, str, list[UUID]]]]:
        """Before anything is allocated from them: lots made from a recalled lot are recalled
        under its recall, and so is everything already made from them, at any depth (a
        product received before its ingredient's receipt named the ingredient's recall).
        Returns the history rows and, per recall, the lots whose reservations must go."""
        connection = unit.connection
        movements: list[Movement] = []
        roots: dict[str, list[UUID]] = defaultdict(list)
        for row in await db.inherit_recalls(connection, list(produced_by)):
            lot_id, recall_id = row["lot_id"], row["recall_id"]
            roots[recall_id].append(lot_id)
            movements.append(
                Movement(
                    lot_id,
                    "recalled",
                    None,
                    produced_by[lot_id],
                    detail=f"{recall_id}: made from recalled lot {row['input_lot_id']}",
                )
            )
        withdrawals: list[tuple[str, str, list[UUID]]] = []
        for recall_id, lot_ids in roots.items():
            cause = produced_by[lot_ids[0]]
            descendants, inherited = await self._recall_made_from(
                unit, lot_ids, recall_id, cause=cause
            )
            movements += inherited
            withdrawals.append((cause, recall_id, lot_ids + descendants))
        return movements, withdrawals

    async def _recall_made_from(
        self, unit: UnitOfWork, lot_ids: Sequence[UUID], recall_id: str, *, cause: str
    ) -> tuple[list[UUID], list[Movement]]:
        """Recall every lot made from these, at any depth, under the same recall. Returns the
        lots recalled now and their history rows."""
        connection = unit.connection
        descendants = await db.mark_recalled(
            connection, await db.made_from(connection, lot_ids), recall_id
        )
        return descendants, [
            Movement(
                lot_id, "recalled", None, cause, detail=f"{recall_id}: made from a recalled lot"
            )
            for lot_id in descendants
        ]

    async def _withdraw(
        self, unit: UnitOfWork, lot_ids: Sequence[UUID], *, cause: str, detail: str
    ) -> None:
        """A lot can no longer be shipped: its reservations go, and their orders re-allocate."""
        if not lot_ids:
            return
        held = await db.held_on_lots(unit.connection, lot_ids)
        if not held:
            return
        order_ids = sorted({h.order_id for h in held})
        await db.lock_order_lines(unit.connection, order_ids)
        held = await db.held_on_lots(unit.connection, lot_ids)  # as it stands under the locks
        causes = dict.fromkeys(order_ids, cause)
        await self._release(unit, [_reserve(h) for h in held], causes=causes, detail=detail)
        await self._allocate(unit, order_ids, causes=causes)

    async def _fit_reservations(
        self, unit: UnitOfWork, lot_ids: Iterable[UUID], *, cause: str
    ) -> None:
        """Where stock at a location fell below its reservations, the latest orders give way."""
        over = await db.overcommitted_stock(unit.connection, lot_ids)
        if not over:
            return
        rows = await db.stock_rows(unit.connection, over)
        held_by_stock: dict[StockKey, list[domain.Held]] = defaultdict(list)
        for held in await db.held_on_stock(unit.connection, over):
            held_by_stock[(held.lot_id, held.location)].append(held)
        releases: list[Reserve] = []
        for key in over:
            releases += domain.shrink_reservations(
                held_by_stock[key], available_for_orders=rows[key]["on_hand"]
            )
        await self._release(unit, releases, causes={}, detail=cause)
        await self._allocate(unit, sorted({r.order_id for r in releases}))

    async def _release(
        self,
        unit: UnitOfWork,
        releases: Sequence[Reserve],
        *,
        causes: dict[str, str],
        detail: str,
    ) -> None:
        if not releases:
            return
        await db.release(unit.connection, releases)
        await db.record_movements(
            unit.connection,
            [
                Movement(
                    r.lot_id,
                    "released",
                    r.quantity,
                    causes.get(r.order_id, "rule:allocation"),
                    order_id=r.order_id,
                    detail=detail,
                    location=r.location,
                )
                for r in releases
            ],
        )

    async def _publish(self, unit: UnitOfWork, order_ids: Sequence[str]) -> None:
        """Emit each open order's whole current allocation, with a new revision."""
        connection = unit.connection
        orders = [
            row for row in await db.bump_revisions(connection, order_ids) if row["status"] == "open"
        ]
        if not orders:
            return
        ids = [row["order_id"] for row in orders]
        lines: dict[str, list[domain.LineState]] = defaultdict(list)
        for state in await db.line_states(connection, ids):
            lines[state.order_id].append(state)
        allocations: dict[str, list[Allocation]] = defaultdict(list)
        for row in await db.reservations_with_lots(connection, ids):
            allocations[row["order_id"]].append(
                Allocation(
                    line_no=row["line_no"],
                    sku=row["sku"],
                    lot_id=row["lot_id"],
                    lot_code=row["lot_code"],
                    quantity=row["quantity"],
                    uom=row["uom"],
                    expiry_date=row["expiry_date"],
                    location=row["location"],
                    gtin=row["gtin"],
                )
            )
        now = datetime.now(UTC)
        for row in orders:
            order_id = row["order_id"]
            unit.emit(
                LotAllocated(
                    order_id=order_id,
                    customer_id=row["customer_id"],
                    allocations=allocations[order_id],
                    backordered=[
                        Backorder(
                            line_no=state.line_no,
                            sku=state.sku,
                            quantity=state.backordered,
                            uom=state.uom,
                            reason=state.backorder_reason
                            or domain.BackorderReason.INSUFFICIENT_STOCK,
                        )
                        for state in lines[order_id]
                        if state.backordered > 0
                    ],
                    revision=row["revision"],
                    allocated_at=now,
                ),
                time=now,
            )

    async def _draw(
        self, unit: UnitOfWork, quantities: dict[UUID, Decimal]
    ) -> dict[StockKey, Decimal]:
        """Where quantities that an event does not locate leave their lots."""
        stock = await db.stock_of(unit.connection, quantities)
        drawn: dict[StockKey, Decimal] = defaultdict(Decimal)
        for lot_id, quantity in quantities.items():
            for location, part in domain.draw_from_locations(_places(stock, lot_id), quantity):
                drawn[(lot_id, location)] += part
        return dict(drawn)

    async def _require_lot(self, unit: UnitOfWork, lot_id: UUID) -> Any:
        rows = await db.lock_lots(unit.connection, [lot_id])
        if not rows:
            raise InventoryError(404, "lot_not_found", f"no lot {lot_id}")
        return rows[0]


@dataclass
class Reservation:
    reserves: list[Reserve]
    shortfalls: list[domain.Shortfall]
    lots: dict[StockKey, domain.StockLot] = field(default_factory=dict)


def _reserve(held: domain.Held) -> Reserve:
    return Reserve(held.order_id, held.line_no, held.lot_id, held.quantity, held.location)


def _places(stock: dict[UUID, list[Record]], lot_id: UUID) -> list[tuple[str, Decimal]]:
    places = [(row["location"], row["on_hand"]) for row in stock.get(lot_id, [])]
    return places or [(UNKNOWN_LOCATION, ZERO)]
