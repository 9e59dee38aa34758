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

from services.inventory import db, domain, history_facts
from services.inventory.domain import LotState, Reserve
from services.inventory.events import lot_allocated, lot_status_changed
from services.inventory.floor import Floor, only_location
from services.inventory.records import (
    Edge,
    LineChange,
    LockedLot,
    LotFacts,
    Movement,
    NewLine,
    NewOrder,
    OrderRevision,
    ReceivedStock,
    ReservedLot,
    ShippedEarly,
    Shipping,
    StockChange,
    StockKey,
    StockRow,
    summed,
)
from services.inventory.reporting import ShippedDay
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    GoodsReceived,
    GoodsReturned,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    RecallIssued,
)
from shared.errors import Conflict, NotFound
from shared.records import built_from
from shared.runtime.consumer import EventHandler
from shared.runtime.database import Connection, UnitOfWork
from shared.runtime.logging import get_logger

log = get_logger(__name__)

Today = Callable[[], date]
ShipmentKey = tuple[str, int, UUID]  # order, line, lot

# Where stock that left a lot goes when no receipt has said yet where the lot is.
UNKNOWN_LOCATION = "UNKNOWN"
ZERO = Decimal(0)


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Withdrawal:
    """Lots whose reservations must go (a recall reached them through genealogy, or they
    await QC), and why."""

    cause: str
    detail: str
    lot_ids: list[UUID]


@dataclass
class Production:
    """What a batch of receipts consumed to make its lots."""

    consumed: dict[UUID, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    inputs: list[LotFacts] = field(default_factory=list)
    edges: set[Edge] = field(default_factory=set)
    produced_by: dict[UUID, str] = field(default_factory=dict)  # lot -> event that received it

    @classmethod
    def of(cls, events: Iterable[Incoming[GoodsReceived]]) -> Production:
        production = cls()
        for incoming in events:
            event = incoming.data
            for item in event.inputs:
                production.consumed[item.lot_id] += item.quantity
                production.inputs.append(LotFacts.of(item))
                production.edges.add(Edge(event.lot_id, item.lot_id))
                production.produced_by[event.lot_id] = incoming.id
        return production


@dataclass
class Shipments:
    """A batch of shipments per (order, line, lot), with the event and shipment behind each."""

    quantities: dict[ShipmentKey, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    causes: dict[ShipmentKey, tuple[str, str]] = field(default_factory=dict)
    facts: list[LotFacts] = field(default_factory=list)
    # Per lot and UTC day shipped, for the reports' sell rates.
    per_day: dict[tuple[UUID, date], Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    @classmethod
    def of(cls, events: Iterable[Incoming[OrderShipped]]) -> Shipments:
        shipments = cls()
        for incoming in events:
            shipment = incoming.data
            for line in shipment.lines:
                key = (shipment.order_id, line.line_no, line.lot_id)
                shipments.quantities[key] += line.quantity
                shipments.causes[key] = (incoming.id, shipment.shipment_id)
                shipments.facts.append(LotFacts.of(line))
                day = shipment.shipped_at.astimezone(UTC).date()
                shipments.per_day[(line.lot_id, day)] += line.quantity
        return shipments

    @property
    def order_ids(self) -> list[str]:
        return sorted({order_id for order_id, _, _ in self.quantities})

    @property
    def lot_ids(self) -> set[UUID]:
        return {lot_id for _, _, lot_id in self.quantities}

    def shipped_days(self) -> list[ShippedDay]:
        """What left each lot on each day: every unit a shipment names leaves stock."""
        return [ShippedDay(lot_id, day, q) for (lot_id, day), q in sorted(self.per_day.items())]

    def stored(
        self, used: list[Reserve], shipped: list[Reserve], known_lines: set[tuple[str, int]]
    ) -> Shipping:
        """The batch as `db.ship` stores it, once `shipped` says where each unit left from;
        lines not in `known_lines` shipped before inventory knew their order."""
        return Shipping(
            used=used,
            shipped=shipped,
            movements=[self.movement(s) for s in shipped],
            days=self.shipped_days(),
            early=[
                ShippedEarly(s.order_id, s.line_no, s.quantity)
                for s in shipped
                if (s.order_id, s.line_no) not in known_lines
            ],
            order_ids=self.order_ids,
            lot_ids=self.lot_ids,
        )

    def movement(self, shipped: Reserve) -> Movement:
        event_id, shipment_id = self.causes[(shipped.order_id, shipped.line_no, shipped.lot_id)]
        return Movement(
            shipped.lot_id,
            "shipped",
            shipped.quantity,
            event_id,
            order_id=shipped.order_id,
            detail=shipment_id,
            location=shipped.location,
        )


class Inventory:
    """The inventory application: one instance per service, its clock injectable for tests."""

    def __init__(self, today: Today = utc_today) -> None:
        self.today = today
        self.floor = Floor(self)

    # ------------------------------------------------------------------ event handlers

    def handlers(self) -> list[tuple[type[Any], EventHandler]]:
        """In the order a batch applies them: stock first, then what consumes it."""
        return [
            (GoodsReceived, self.on_goods_received),
            (RecallIssued, self.on_recall_issued),
            (OrderShipped, self.on_order_shipped),
            (GoodsReturned, self.floor.on_goods_returned),
            (OrderCancelled, self.on_order_cancelled),
            (OrderPlaced, self.on_order_placed),
        ]

    async def on_goods_received(
        self, unit: UnitOfWork, events: list[Incoming[GoodsReceived]]
    ) -> None:
        received = _received_stock(events)
        await db.upsert_received(unit.connection, received)
        movements = [_received_movement(incoming) for incoming in events]
        production = Production.of(events)
        withdrawals: list[Withdrawal] = []
        if production.consumed:
            inherited, withdrawals = await self._record_production(unit, production)
            movements += inherited
        await db.record_movements(unit.connection, movements)
        withdrawals += await self._quarantine_for_qc(unit, events)
        for withdrawal in withdrawals:
            await self._withdraw(
                unit, withdrawal.lot_ids, cause=withdrawal.cause, detail=withdrawal.detail
            )
        if production.consumed:
            await self._fit_reservations(
                unit, production.consumed, cause="production consumed stock"
            )
        await self.refill(unit, {row.sku for row in received}, cause="stock received")
        reasons = dict.fromkeys(production.consumed, "consumed by production")
        reasons |= {row.lot_id: "received" for row in received}
        for withdrawal in withdrawals:
            reasons |= dict.fromkeys(withdrawal.lot_ids, withdrawal.detail)
        await self.announce(unit, reasons)

    async def _quarantine_for_qc(
        self, unit: UnitOfWork, events: Iterable[Incoming[GoodsReceived]]
    ) -> list[Withdrawal]:
        """Lots received `qc_required` are quarantined until their QC release."""
        causes = {i.data.lot_id: i.id for i in events if i.data.qc_required}
        if not causes:
            return []
        await db.set_qc(
            unit.connection,
            causes,
            state=domain.QcState.PENDING,
            add=[domain.Block.QUARANTINED],
            hold_reason=domain.QC_HOLD_REASON,
        )
        await db.record_movements(
            unit.connection,
            [
                Movement(lot_id, "hold", None, cause, detail=domain.QC_HOLD_REASON)
                for lot_id, cause in causes.items()
            ],
        )
        return [
            Withdrawal(cause, domain.QC_HOLD_REASON, [lot_id]) for lot_id, cause in causes.items()
        ]

    async def _record_production(
        self, unit: UnitOfWork, production: Production
    ) -> tuple[list[Movement], list[Withdrawal]]:
        """Genealogy, inherited recalls and the inputs' stock drawn; their history rows and
        the withdrawals the inherited recalls call for."""
        connection = unit.connection
        await db.ensure_lots(connection, production.inputs)
        # The inputs are locked before the genealogy is recorded: a recall of one of them
        # committing meanwhile is seen below, and one that comes later sees these edges.
        await db.lock_lots(connection, production.consumed)
        await db.record_inputs(connection, sorted(production.edges))
        movements, withdrawals = await self._inherit_recalls(unit, production.produced_by)
        drawn = await self._draw(unit, production.consumed)
        await db.change_stock(
            connection,
            [StockChange(lot_id, location, consumed=q) for (lot_id, location), q in drawn.items()],
            create=True,
        )
        movements += [
            Movement(lot_id, "consumed", quantity, "rule:production", location=location)
            for (lot_id, location), quantity in drawn.items()
        ]
        return movements, withdrawals

    async def on_order_placed(self, unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
        orders: dict[str, Incoming[OrderPlaced]] = {}
        for incoming in events:
            orders.setdefault(incoming.data.order_id, incoming)  # a re-sent order counts once
        placed = [incoming.data for incoming in orders.values()]
        await db.lock_orders(unit.connection, orders)
        created, early = await db.insert_new_orders(
            unit.connection,
            [NewOrder.of(order) for order in placed],
            [line for order in placed for line in NewLine.all_of(order)],
        )
        # In the order they arrived, which is the order FEFO serves them in.
        created_ids = set(created)
        new = [order for order in placed if order.order_id in created_ids]
        if not new:
            return
        if early:
            await db.close_fulfilled_orders(unit.connection, created)
        # New orders: their demand is what they ordered less what shipped before they came,
        # and no one else has seen their lines.
        result = await self._reserve(
            unit,
            domain.still_to_ship(
                [demand for order in new for demand in _demands(order)],
                {(e.order_id, e.line_no): e.shipped for e in early},
            ),
            causes={order.order_id: orders[order.order_id].id for order in new},
        )
        reserved: dict[str, list[ReservedLot]] = defaultdict(list)
        for reserve in result.reserves:
            lot = result.lots[(reserve.lot_id, reserve.location)]
            reserved[reserve.order_id].append(ReservedLot.of(reserve, lot))
        shortfalls: dict[str, list[domain.Shortfall]] = defaultdict(list)
        for shortfall in result.shortfalls:
            shortfalls[shortfall.order_id].append(shortfall)
        now = datetime.now(UTC)
        for order in new:
            revision = OrderRevision(order.order_id, order.customer.customer_id, 1, "open")
            event = lot_allocated(
                revision, reserved[order.order_id], shortfalls[order.order_id], at=now
            )
            unit.emit(event, time=now)

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
        await self.refill(unit, skus, cause="stock released by a cancellation")

    async def on_order_shipped(
        self, unit: UnitOfWork, events: list[Incoming[OrderShipped]]
    ) -> None:
        connection = unit.connection
        # A historical shipment loaded at onboarding counts for traces, never moves stock:
        # inventory keeps only its history-only facts (history_facts.py).
        await _record_imported(connection, events)
        shipments = Shipments.of(incoming for incoming in events if not incoming.data.imported)
        if not shipments.quantities:
            return
        order_ids = shipments.order_ids
        await db.lock_orders(connection, order_ids)
        known_lines = await db.lock_order_lines(connection, order_ids)
        await db.ensure_and_lock_lots(connection, shipments.facts)
        used, beyond = domain.ship_from_reservations(
            await db.reservations_for(connection, shipments.quantities), shipments.quantities
        )
        shipped = await self._shipped_from(unit, used, beyond)
        states = await db.ship(
            connection,
            shipments.stored(used, shipped, known_lines),
            unpickable=domain.UNPICKABLE_LOCATIONS,
        )
        if beyond:
            await self._settle_shipped_otherwise(unit, order_ids, shipments.lot_ids)
        # Otherwise everything left from its reservations: nothing else can have changed. And
        # settling moves reservations only: the lots' states read as the stock left still hold.
        await self._announce_states(unit, states, dict.fromkeys(shipments.lot_ids, "shipped"))

    async def _shipped_from(
        self, unit: UnitOfWork, used: list[Reserve], beyond: dict[ShipmentKey, Decimal]
    ) -> list[Reserve]:
        """Shipped stock leaves where it was reserved; beyond that, where most of the lot is."""
        if not beyond:
            return domain.merged(used)
        stock = await db.stock_of(unit.connection, {lot_id for _, _, lot_id in beyond})
        taken = list(used)
        for (order_id, line_no, lot_id), quantity in beyond.items():
            for location, part in domain.draw_from_locations(_places(stock, lot_id), quantity):
                taken.append(Reserve(order_id, line_no, lot_id, part, location))
        shipped = domain.merged(taken)
        await db.create_stock_rows(unit.connection, [(s.lot_id, s.location) for s in shipped])
        return shipped

    async def _settle_shipped_otherwise(
        self, unit: UnitOfWork, order_ids: Sequence[str], lot_ids: set[UUID]
    ) -> None:
        """A line that shipped from another lot than reserved still holds its reservation:
        give the excess back so the stock serves other orders."""
        connection = unit.connection
        states = await db.over_reserved_lines(connection, order_ids)
        releases: list[Reserve] = []
        if states:
            held_by_line: dict[tuple[str, int], list[domain.Held]] = defaultdict(list)
            for held in await db.held_for_lines(
                connection, [(s.order_id, s.line_no) for s in states]
            ):
                held_by_line[(held.order_id, held.line_no)].append(held)
            for state in states:
                releases += domain.excess_to_release(
                    held_by_line[(state.order_id, state.line_no)],
                    ordered=state.ordered,
                    shipped=state.shipped,
                )
            await self._release(unit, releases, causes={}, detail="shipped otherwise")
        await self._fit_reservations(unit, lot_ids, cause="shipped beyond reservations")
        if releases:
            await self._publish(unit, sorted({r.order_id for r in releases}))
            skus = await db.skus_of(connection, {r.lot_id for r in releases})
            await self.refill(unit, skus, cause="released")

    async def on_recall_issued(
        self, unit: UnitOfWork, events: list[Incoming[RecallIssued]]
    ) -> None:
        connection = unit.connection
        reasons: dict[UUID, str] = {}
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
            reasons |= dict.fromkeys(newly + descendants, f"recall {recall.recall_id}")
        await self.announce(unit, reasons)

    # ------------------------------------------------------------------ commands (HTTP)

    async def hold(self, unit: UnitOfWork, lot_id: UUID, *, reason: str, actor: str) -> None:
        await self.require_lot(unit, lot_id)
        await db.set_hold(unit.connection, lot_id, reason=reason)
        await db.record_movements(
            unit.connection, [Movement(lot_id, "hold", None, f"user:{actor}", detail=reason)]
        )
        # Announced before the re-allocation, so that fulfillment hears of the hold first.
        await self.announce(unit, {lot_id: f"quality hold: {reason}"}, actor=actor)
        await self._withdraw(
            unit, [lot_id], cause=f"user:{actor}", detail=f"quality hold: {reason}"
        )

    async def release_hold(
        self,
        unit: UnitOfWork,
        lot_id: UUID,
        *,
        reason: str | None,
        actor: str,
        qc_result: domain.QcResult | None = None,
    ) -> None:
        """Release a quality hold, or give a lot its QC result: passed releases it, failed
        makes it rejected for good."""
        lot = await self.require_lot(unit, lot_id)
        qc_state = await db.qc_state_of(unit.connection, lot_id)
        refused = domain.release_problem(blocks=lot.blocks, qc_state=qc_state, qc_result=qc_result)
        if refused:
            raise Conflict(refused[0], f"lot {lot.lot_code} {refused[1]}")
        change, why = _release_change(qc_result, reason)
        await _store_release(unit, lot_id, qc_result, why)
        await db.record_movements(
            unit.connection, [Movement(lot_id, change, None, f"user:{actor}", detail=reason)]
        )
        if qc_result is domain.QcResult.FAILED:
            # A lot not on hold may hold reservations: they go to other lots, or wait.
            await self._withdraw(unit, [lot_id], cause=f"user:{actor}", detail=why)
        else:
            await self.refill(unit, [lot.sku], cause="hold released")
        await self.announce(unit, {lot_id: why}, actor=actor)

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
        lot = await self.require_lot(unit, lot_id)
        stock = await db.stock_of(unit.connection, [lot_id])
        places = {row.location: row.on_hand for row in stock.get(lot_id, [])}
        location = location or only_location(lot, places)
        on_hand = places.get(location, ZERO)
        change = delta if delta is not None else (counted or ZERO) - on_hand
        if problem := domain.adjustment_problem(on_hand=on_hand, delta=change):
            raise Conflict("negative_stock", f"lot {lot.lot_code} at {location}: {problem}")
        if change == 0:
            return ZERO
        await db.change_stock(
            unit.connection, [StockChange(lot_id, location, adjusted=change)], create=True
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
            await self.refill(unit, [lot.sku], cause="stock counted up")
        await self.announce(unit, {lot_id: f"counted: {reason}"}, actor=actor)
        return change

    async def sweep_expired(self, unit: UnitOfWork) -> int:
        """Release reservations on lots that expired since they were made, and re-allocate."""
        expired = await db.expired_with_reservations(
            unit.connection, earliest_expiry=domain.earliest_allocatable_expiry(self.today())
        )
        if expired:
            await self._withdraw(unit, expired, cause="rule:expiry", detail="lot expired")
        lapsed = await db.past_expiry_announced_as(
            unit.connection,
            earliest_expiry=domain.earliest_allocatable_expiry(self.today()),
            statuses=domain.EXPIRY_REPLACES,
        )
        await self.announce(unit, dict.fromkeys([*expired, *lapsed], "expiry date passed"))
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
        lots = await allocatable_for(connection, demands, today=today)
        result = domain.allocate(demands, lots, today=today)
        short = {(s.order_id, s.line_no): s.reason.value for s in result.shortfalls}
        reasons = [
            LineChange.backorder(d.order_id, d.line_no, short.get((d.order_id, d.line_no)))
            for d in demands
        ]
        await db.reserve(
            connection,
            result.reserves,
            reasons,
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

    async def refill(self, unit: UnitOfWork, skus: Iterable[str], *, cause: str) -> None:
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
    ) -> tuple[list[Movement], list[Withdrawal]]:
        """Before anything is allocated from them: lots made from a recalled lot are recalled
        under its recall, and so is everything already made from them, at any depth (a
        product received before its ingredient's receipt named the ingredient's recall).
        Returns the history rows and, per recall, the lots whose reservations must go."""
        connection = unit.connection
        movements: list[Movement] = []
        roots: dict[str, list[UUID]] = defaultdict(list)
        for row in await db.inherit_recalls(connection, list(produced_by)):
            roots[row.recall_id].append(row.lot_id)
            movements.append(
                Movement(
                    row.lot_id,
                    "recalled",
                    None,
                    produced_by[row.lot_id],
                    detail=f"{row.recall_id}: made from recalled lot {row.input_lot_id}",
                )
            )
        withdrawals: list[Withdrawal] = []
        for recall_id, lot_ids in roots.items():
            cause = produced_by[lot_ids[0]]
            descendants, inherited = await self._recall_made_from(
                unit, lot_ids, recall_id, cause=cause
            )
            movements += inherited
            withdrawals.append(Withdrawal(cause, f"recall {recall_id}", lot_ids + descendants))
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
        held_by_stock: dict[StockKey, list[domain.Held]] = defaultdict(list)
        for held in await db.held_on_stock(unit.connection, [row.key for row in over]):
            held_by_stock[(held.lot_id, held.location)].append(held)
        releases: list[Reserve] = []
        for row in over:
            releases += domain.shrink_reservations(
                held_by_stock[row.key], available_for_orders=row.on_hand
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
        await db.release(
            unit.connection,
            releases,
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
            order
            for order in await db.bump_revisions(connection, order_ids)
            if order.status == "open"
        ]
        if not orders:
            return
        ids = [order.order_id for order in orders]
        shortfalls: dict[str, list[domain.Shortfall]] = defaultdict(list)
        for state in await db.line_states(connection, ids):
            if shortfall := state.shortfall():
                shortfalls[state.order_id].append(shortfall)
        reserved: dict[str, list[ReservedLot]] = defaultdict(list)
        for row in await db.reservations_with_lots(connection, ids):
            reserved[row.order_id].append(row)
        now = datetime.now(UTC)
        for order in orders:
            event = lot_allocated(
                order, reserved[order.order_id], shortfalls[order.order_id], at=now
            )
            unit.emit(event, time=now)

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

    async def announce(
        self, unit: UnitOfWork, reasons: dict[UUID, str], *, actor: str | None = None
    ) -> None:
        """Emit `lot-status-changed` for each of these lots whose status, by the one rule set
        (`domain.lot_status`), is not the one announced last; `reasons` says why per lot."""
        if not reasons:
            return
        states = await db.lot_states(
            unit.connection, reasons, unpickable=domain.UNPICKABLE_LOCATIONS
        )
        await self._announce_states(unit, states, reasons, actor=actor)

    async def _announce_states(
        self,
        unit: UnitOfWork,
        states: Sequence[LotState],
        reasons: dict[UUID, str],
        *,
        actor: str | None = None,
    ) -> None:
        """`announce`, for lots whose states the caller read (locked) already."""
        changes = domain.status_changes(states, today=self.today())
        if not changes:
            return
        await db.set_announced(unit.connection, [(s.lot_id, new.value) for s, new in changes])
        now = datetime.now(UTC)
        for state, status in filter(lambda change: domain.is_announced(change[0]), changes):
            reason = reasons[state.lot_id]
            event = lot_status_changed(state, status, reason=reason, actor=actor, at=now)
            unit.emit(event, time=now)

    async def require_lot(self, unit: UnitOfWork, lot_id: UUID) -> LockedLot:
        rows = await db.lock_lots(unit.connection, [lot_id])
        if not rows:
            raise NotFound("lot_not_found", f"no lot {lot_id}")
        return rows[0]


@dataclass
class Reservation:
    reserves: list[Reserve]
    shortfalls: list[domain.Shortfall]
    lots: dict[StockKey, domain.StockLot] = field(default_factory=dict)


async def allocatable_for(
    connection: Connection, demands: Sequence[domain.Demand], *, today: date
) -> list[domain.StockLot]:
    """The lots FEFO may take these demands from, locked: of each SKU those that cover the
    demands, or every lot when they do not."""
    needs = domain.fefo_needs(demands, today=today)
    lots = await locked_for(connection, needs, today=today)
    whole = domain.needs_read_whole(needs, lots)
    if not whole:
        return lots
    # Out of the lock order: this may lock lots below those already held. A deadlock that
    # follows is rolled back and the batch retried (SQLSTATE class 40 is transient). Stock
    # short reads its SKU twice: both reads are the same rows, already locked.
    read_again = {need.sku for need in whole}
    return [lot for lot in lots if lot.sku not in read_again] + await locked_for(
        connection, whole, today=today
    )


async def locked_for(
    connection: Connection, needs: Sequence[domain.FefoNeed], *, today: date
) -> list[domain.StockLot]:
    """The allocatable lots of these needs by the domain's rules, locked."""
    return await db.lock_allocatable(
        connection,
        needs,
        blocking=domain.BLOCKING,
        earliest_expiry=domain.earliest_allocatable_expiry(today),
        unpickable=domain.UNPICKABLE_LOCATIONS,
    )


def _reserve(held: domain.Held) -> Reserve:
    return Reserve(held.order_id, held.line_no, held.lot_id, held.quantity, held.location)


def _places(stock: dict[UUID, list[StockRow]], lot_id: UUID) -> list[tuple[str, Decimal]]:
    places = [(row.location, row.on_hand) for row in stock.get(lot_id, [])]
    return places or [(UNKNOWN_LOCATION, ZERO)]


async def _store_release(
    unit: UnitOfWork, lot_id: UUID, qc_result: domain.QcResult | None, why: str
) -> None:
    """A failed QC result rejects the lot; otherwise its quarantine ends."""
    if qc_result is domain.QcResult.FAILED:
        await db.set_qc(
            unit.connection,
            [lot_id],
            state=domain.QcState.FAILED,
            add=[domain.Block.REJECTED],
            remove=[domain.Block.QUARANTINED],
            hold_reason=why,
        )
        return
    await db.set_hold(unit.connection, lot_id, reason=None)
    if qc_result is not None:
        await db.set_qc(unit.connection, [lot_id], state=domain.QcState.PASSED)


def _release_change(qc_result: domain.QcResult | None, reason: str | None) -> tuple[str, str]:
    """The history's name for a release, and the status change's reason."""
    if qc_result is None:
        return "release", f"hold released: {reason}" if reason else "hold released"
    why = f"QC {qc_result.value}" + (f": {reason}" if reason else "")
    return f"qc_{qc_result.value}", why


def _received_movement(incoming: Incoming[GoodsReceived]) -> Movement:
    event = incoming.data
    return Movement(
        event.lot_id,
        "received",
        event.quantity,
        incoming.id,
        detail=event.receipt_id,
        location=event.location,
    )


def _received_stock(events: Iterable[Incoming[GoodsReceived]]) -> list[ReceivedStock]:
    """One row per lot and location received in the batch."""
    return summed(ReceivedStock.of(incoming.data) for incoming in events)


def _demands(order: OrderPlaced) -> list[domain.Demand]:
    """Each line's demand, under the order's id and shelf-life rule."""
    return [built_from(domain.Demand, line, order) for line in order.lines]


async def _record_imported(connection: Connection, events: list[Incoming[OrderShipped]]) -> None:
    """The imported shipments' facts, each line once: shipped per day, the lot's history, what
    each customer received. No stock, reservation or order changes."""
    lines = history_facts.imported_lines(events)
    if not lines:
        return
    kept = await db.insert_imported_shipment_lines(connection, lines)
    await db.record_shipped_days(connection, [line.shipped_day() for line in kept])
    await db.record_movements(connection, [line.movement() for line in kept])
