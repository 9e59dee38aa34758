"""The warehouse floor: moves between locations, customer returns into held stock, and returns
to the supplier. Each takes stock by hand from one (lot, location) under the lot's lock, so
nothing leaves that is not there, also with several replicas. Moves and returns to the
supplier are announced on `lot-moved`, for the lot's records in recall."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from services.inventory import db, domain
from services.inventory.events import lot_moved
from services.inventory.records import (
    FloorMovement,
    LockedLot,
    Movement,
    ReturnedLine,
    StockChange,
)
from shared.contracts.envelope import Incoming
from shared.contracts.events import MOVE, RETURN_TO_VENDOR, GoodsReturned, ReturnLine
from shared.errors import Conflict, Invalid, NotFound
from shared.quantities import ZERO
from shared.runtime.consumer import EventRejected
from shared.runtime.database import Connection, UnitOfWork

if TYPE_CHECKING:
    from services.inventory.handlers import Inventory


class Floor:
    """Moves, returns and returns to vendor, over the inventory they change."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    # ------------------------------------------------------------------ moves

    async def move(
        self,
        unit: UnitOfWork,
        lot_id: UUID,
        *,
        source: str,
        target: str,
        quantity: Decimal,
        scanned: Sequence[domain.Scan] | None,
        reason: str | None,
        actor: str,
    ) -> None:
        """Move free units of a lot from one location to another, checked against the scanned
        cases. A move into a location that may be picked from (a restock) fills backorders."""
        if problem := domain.same_location_problem(source, target):
            raise Invalid("same_location", problem)
        lot = await self.inventory.require_lot(unit, lot_id)
        if scanned is not None:
            problem = domain.scan_problem(lot_code=lot.lot_code, gtin=lot.gtin, scanned=scanned)
            if problem:
                raise Conflict("scan_mismatch", problem)
        await _take(unit.connection, lot, source, quantity)
        why = f": {reason}" if reason else ""
        await _record_move(unit.connection, lot_id, source, target, quantity, why, actor)
        moving = FloorMovement(MOVE, quantity, source, actor, reason, to_location=target)
        _emit_moved(unit, lot, moving)
        if domain.is_pickable(target):
            await self.inventory.refill(unit, [lot.sku], cause="stock moved")
        moved = f"moved from {source} to {target}{why}"
        await self.inventory.announce(unit, {lot_id: moved}, actor=actor)

    # ------------------------------------------------------------------ returns to vendor

    async def return_to_vendor(
        self,
        unit: UnitOfWork,
        lot_id: UUID,
        *,
        location: str | None,
        quantity: Decimal,
        rma: str,
        reason: str,
        actor: str,
    ) -> None:
        """Units of a lot go back to its supplier under the supplier's RMA: out of stock, with
        who and why in the lot's history."""
        lot = await self.inventory.require_lot(unit, lot_id)
        stock = await db.stock_of(unit.connection, [lot_id])
        places = {row.location: row.on_hand for row in stock.get(lot_id, []) if row.on_hand > 0}
        location = location or only_location(lot, places)
        await _take(unit.connection, lot, location, quantity)
        await db.change_stock(
            unit.connection, [StockChange(lot_id, location, vendor_returned=quantity)], create=True
        )
        supplier = f" to supplier {lot.supplier_id}" if lot.supplier_id else ""
        detail = f"RMA {rma}{supplier}: {reason}"
        cause = f"user:{actor}"
        await db.record_movements(
            unit.connection,
            [
                Movement(
                    lot_id, "returned_to_vendor", quantity, cause, detail=detail, location=location
                )
            ],
        )
        returning = FloorMovement(RETURN_TO_VENDOR, quantity, location, actor, reason, rma=rma)
        _emit_moved(unit, lot, returning)
        await self.inventory.announce(unit, {lot_id: f"returned to vendor, {detail}"}, actor=actor)

    # ------------------------------------------------------------------ customer returns

    async def accept_return(self, unit: UnitOfWork, event: GoodsReturned) -> dict[int, LockedLot]:
        """A return over HTTP: every line must name a known lot; then `goods-returned` goes out
        through the outbox, and the consumer takes it into stock like one from outside."""
        lots, problems = await _lots_of(unit.connection, event.lines)
        if problems:
            raise NotFound("lot_not_found", "; ".join(problems))
        unit.emit(event, time=datetime.now(UTC))
        return lots

    async def on_goods_returned(
        self, unit: UnitOfWork, events: list[Incoming[GoodsReturned]]
    ) -> None:
        for incoming in events:
            await self._take_return(unit, incoming)

    async def _take_return(self, unit: UnitOfWork, incoming: Incoming[GoodsReturned]) -> None:
        """Returned units land on their lot at the returns location, held for inspection (a
        recalled lot's stays recalled stock). A return naming an unknown lot is refused whole;
        more than was shipped to the customer is taken in and flagged."""
        event, connection = incoming.data, unit.connection
        lots, problems = await _lots_of(connection, event.lines)
        if problems:
            raise EventRejected(
                f"return {event.return_id}: " + "; ".join(problems), error_type="unknown_lot"
            )
        await db.lock_lot_rows(connection, {lot.lot_id for lot in lots.values()})
        left = await db.returnable(
            connection, event.customer.customer_id, [lot.lot_id for lot in lots.values()]
        )
        lines = []
        for line in event.lines:
            lot = lots[line.line_no]
            beyond = domain.beyond_shipped(line.quantity, returnable=left[lot.lot_id])
            left[lot.lot_id] -= line.quantity
            lines.append(_returned_line(event, line, lot.lot_id, beyond))
        taken = await db.insert_return_lines(connection, lines)
        await db.change_stock(
            connection,
            [StockChange(r.lot_id, r.location, returned=r.quantity) for r in taken],
            create=True,
        )
        await db.record_movements(
            connection, [_return_movement(r, lots[r.line_no], incoming.id) for r in taken]
        )


def _emit_moved(unit: UnitOfWork, lot: LockedLot, movement: FloorMovement) -> None:
    """`lot-moved` through the outbox, in the transaction of the change it announces."""
    now = datetime.now(UTC)
    unit.emit(lot_moved(lot, movement, at=now), time=now)


async def _take(connection: Connection, lot: LockedLot, location: str, quantity: Decimal) -> None:
    """Refuse to take more of a lot from a location than is there and free (the lot is locked)."""
    rows = await db.stock_rows(connection, [(lot.lot_id, location)])
    row = rows.get((lot.lot_id, location))
    problem = domain.take_problem(
        lot_code=lot.lot_code,
        location=location,
        on_hand=row.on_hand if row else None,
        reserved=row.reserved if row else ZERO,
        quantity=quantity,
    )
    if problem:
        raise Conflict(*problem)


async def _record_move(
    connection: Connection,
    lot_id: UUID,
    source: str,
    target: str,
    quantity: Decimal,
    why: str,
    actor: str,
) -> None:
    """Out of one stock row, into another, and a history row at each end."""
    out = StockChange(lot_id, source, moved=-quantity)
    into = StockChange(lot_id, target, moved=quantity)
    await db.change_stock(connection, [out, into], create=True)
    cause = f"user:{actor}"
    await db.record_movements(
        connection,
        [
            Movement(
                lot_id, "moved_out", quantity, cause, detail=f"to {target}{why}", location=source
            ),
            Movement(
                lot_id, "moved_in", quantity, cause, detail=f"from {source}{why}", location=target
            ),
        ],
    )


async def _lots_of(
    connection: Connection, lines: Sequence[ReturnLine]
) -> tuple[dict[int, LockedLot], list[str]]:
    """The lot each return line names (by id, else by SKU and lot code), and what is wrong
    with the lines that name none, or a lot of another SKU."""
    found = await db.lots_named(
        connection,
        [line.lot_id for line in lines if line.lot_id],
        [(line.sku, line.lot_code) for line in lines if line.lot_id is None and line.lot_code],
    )
    by_id = {lot.lot_id: lot for lot in found}
    by_code = {(lot.sku, lot.lot_code): lot for lot in found}
    lots: dict[int, LockedLot] = {}
    problems: list[str] = []
    for line in lines:
        lot = (
            by_id.get(line.lot_id) if line.lot_id else by_code.get((line.sku, line.lot_code or ""))
        )
        if lot is None:
            problems.append(
                f"line {line.line_no}: no lot {line.lot_id or line.lot_code} of {line.sku}"
            )
        elif lot.sku != line.sku:
            problems.append(f"line {line.line_no}: lot {lot.lot_code} is {lot.sku}, not {line.sku}")
        else:
            lots[line.line_no] = lot
    return lots, problems


def _returned_line(
    event: GoodsReturned, line: ReturnLine, lot_id: UUID, beyond: Decimal
) -> ReturnedLine:
    return ReturnedLine(
        event.return_id,
        line.line_no,
        lot_id,
        event.customer.customer_id,
        event.order_id,
        event.recall_id,
        line.quantity,
        domain.RETURNS_LOCATION,
        line.reason,
        line.condition,
        beyond,
        event.returned_at,
    )


def _return_movement(line: ReturnedLine, lot: LockedLot, cause: str) -> Movement:
    """The history row of a returned line: from whom, why, and what is unusual about it."""
    notes = [f"return {line.return_id} from {line.customer_id}: {line.reason}"]
    if domain.Block.RECALLED in lot.blocks:
        notes.append("recalled stock")
    if line.beyond_shipped > 0:
        notes.append(f"flagged: {line.beyond_shipped} beyond what was shipped to the customer")
    return Movement(
        line.lot_id,
        "returned",
        line.quantity,
        cause,
        order_id=line.order_id,
        detail="; ".join(notes),
        location=line.location,
    )


def only_location(lot: LockedLot, places: dict[str, Decimal]) -> str:
    """A count or a return to vendor that names no location is of the one place the lot is at."""
    if len(places) != 1:
        raise Invalid(
            "location_required",
            f"lot {lot.lot_code} is at {len(places)} locations: say which",
        )
    return next(iter(places))
