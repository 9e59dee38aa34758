"""Inventory rules: FEFO allocation, lot status, what an order's allocation looks like, which
reservations give way when stock shrinks. Pure: no I/O, no framework."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from uuid import UUID

from shared.quantities import ZERO, less_taken


class LotStatus(StrEnum):
    AVAILABLE = "available"
    QUARANTINED = "quarantined"
    RECALLED = "recalled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # failed its QC inspection: never allocatable again
    DEPLETED = "depleted"  # nothing on hand, and no block stored on it


class Block(StrEnum):
    """Why a lot may not be allocated, most serious first: a blocked lot's status is its most
    serious block. Every block but EXPIRED is stored on the lot (`lots.blocks`); the date
    decides expiry. A new block needs its member here and its `LotStatus`, nothing else."""

    RECALLED = LotStatus.RECALLED.value
    REJECTED = LotStatus.REJECTED.value
    QUARANTINED = LotStatus.QUARANTINED.value
    EXPIRED = LotStatus.EXPIRED.value


# What the database is asked to exclude from allocation: every block it may store.
BLOCKING: tuple[Block, ...] = tuple(Block)


class BackorderReason(StrEnum):
    NO_STOCK = "no_stock"
    INSUFFICIENT_STOCK = "insufficient_stock"
    SHORT_DATED = "short_dated"
    UOM_MISMATCH = "uom_mismatch"


def earliest_allocatable_expiry(today: date) -> date:
    """A lot is good through its expiry date: it expires the day after."""
    return today


def blocks_of(*, stored: Iterable[str], expiry_date: date | None, today: date) -> set[Block]:
    """Every block on a lot: those stored on it, and expiry when its date has passed."""
    blocks = {Block(value) for value in stored}
    if expiry_date is not None and expiry_date < earliest_allocatable_expiry(today):
        blocks.add(Block.EXPIRED)
    return blocks


def lot_status(
    *,
    stored: Iterable[str],
    expiry_date: date | None,
    today: date,
    on_hand: Decimal | None = None,
) -> LotStatus:
    """A blocked lot shows its most serious block: recalled, rejected, quarantined, expired.
    A lot with nothing on hand and no stored block is depleted, also past its date: the
    expiry of an empty lot is no news. Without `on_hand`, emptiness is not judged."""
    blocks = blocks_of(stored=stored, expiry_date=expiry_date, today=today)
    first = next((block for block in Block if block in blocks), None)
    if first is not Block.EXPIRED and first is not None:
        return LotStatus(first.value)
    if on_hand is not None and on_hand <= ZERO:
        return LotStatus.DEPLETED
    return LotStatus(first.value) if first else LotStatus.AVAILABLE


# The statuses that the passing of a lot's expiry date replaces (by `lot_status`): the sweep
# looks for lots still announced with one of them after their date.
EXPIRY_REPLACES: tuple[LotStatus, ...] = (LotStatus.AVAILABLE,)


@dataclass(frozen=True)
class LotState:
    """What decides a lot's status, and the status last announced for it."""

    lot_id: UUID
    lot_code: str
    sku: str
    blocks: list[str]
    expiry_date: date | None
    on_hand: Decimal
    announced: str | None

    def status(self, today: date) -> LotStatus:
        return lot_status(
            stored=self.blocks, expiry_date=self.expiry_date, today=today, on_hand=self.on_hand
        )


def status_changes(states: Iterable[LotState], *, today: date) -> list[tuple[LotState, LotStatus]]:
    """The lots whose status is not the one last announced, with their status now."""
    changed = []
    for state in states:
        status = state.status(today)
        if status.value != state.announced:
            changed.append((state, status))
    return changed


def is_announced(state: LotState) -> bool:
    """A lot's first status (the one it is received with, or the first after the upgrade that
    added announcements) is recorded, not announced: a consumer learns nothing from it (a lot
    is only allocated once available), and the envelope cannot carry a null
    `previous_status`, which the contract requires."""
    return state.announced is not None


class QcResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class QcState(StrEnum):
    """Where a lot received `qc_required` stands; a lot that needs no QC has none."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


QC_HOLD_REASON = "awaiting QC release"


def release_problem(
    *, blocks: Iterable[str], qc_state: str | None, qc_result: QcResult | None
) -> tuple[str, str] | None:
    """Why a release is refused, as (code, what): a recalled or rejected lot stays blocked; a
    lot awaiting QC is released only with its QC result."""
    stored = set(blocks)
    if Block.RECALLED in stored:
        return "lot_recalled", "is recalled; it stays blocked"
    if Block.REJECTED in stored:
        return "lot_rejected", "failed QC and is rejected; it stays blocked"
    if qc_state == QcState.PENDING and qc_result is None:
        return "qc_result_required", "awaits its QC release: give qc_result passed or failed"
    return None


@dataclass(frozen=True)
class StockLot:
    """A lot that may be allocated from: not on hold, not recalled, not expired."""

    lot_id: UUID
    lot_code: str
    sku: str
    uom: str
    available: Decimal
    expiry_date: date | None = None
    received_at: datetime | None = None
    location: str = "MAIN"
    gtin: str | None = None  # the product's GTIN, when the lot's receipt named one


@dataclass(frozen=True)
class Demand:
    """The unallocated, unshipped quantity of one order line."""

    order_id: str
    line_no: int
    sku: str
    uom: str
    quantity: Decimal
    min_remaining_shelf_life_days: int = 0


def still_to_ship(
    demands: Iterable[Demand], shipped: Mapping[tuple[str, int], Decimal]
) -> list[Demand]:
    """New orders' demand less what their lines already shipped (a shipment that reached
    inventory first): those units are never reserved."""
    return less_taken(demands, lambda demand: shipped.get((demand.order_id, demand.line_no), ZERO))


@dataclass(frozen=True)
class Reserve:
    order_id: str
    line_no: int
    lot_id: UUID
    quantity: Decimal
    location: str = "MAIN"


@dataclass(frozen=True)
class Shortfall:
    order_id: str
    line_no: int
    sku: str
    uom: str
    quantity: Decimal
    reason: BackorderReason


@dataclass
class AllocationResult:
    reserves: list[Reserve] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)

    def reserved_per_lot(self) -> dict[UUID, Decimal]:
        totals: dict[UUID, Decimal] = defaultdict(Decimal)
        for reserve in self.reserves:
            totals[reserve.lot_id] += reserve.quantity
        return dict(totals)

    def reserved_per_stock(self) -> dict[tuple[UUID, str], Decimal]:
        totals: dict[tuple[UUID, str], Decimal] = defaultdict(Decimal)
        for reserve in self.reserves:
            totals[(reserve.lot_id, reserve.location)] += reserve.quantity
        return dict(totals)


def fefo_key(lot: StockLot) -> tuple[Any, ...]:
    """FEFO across lots. Within a lot, the location holding the least goes first, so that it
    empties and frees its place (fewer part-used locations); equal ones by name."""
    by_lot = fefo_order(lot.expiry_date, lot.received_at, lot.lot_id, "")[:-1]
    return (*by_lot, lot.available, lot.location)


def fefo_order(
    expiry_date: date | None, received_at: datetime | None, lot_id: UUID, location: str
) -> tuple[Any, ...]:
    """First expired, first out; then first received; lots without expiry last, FIFO among them.
    `db.lock_allocatable` orders lots the same way in SQL to choose which to read; a test
    allocates from its lots and from every lot (tests/integration/test_fefo_reads.py)."""
    return (
        expiry_date is None,
        expiry_date or date.max,
        received_at is None,
        received_at or datetime.max,
        str(lot_id),
        location,
    )


class ReservedOnLine(Protocol):
    """A reservation of an order line on a lot at a location, as FEFO sees it."""

    @property
    def line_no(self) -> int: ...
    @property
    def expiry_date(self) -> date | None: ...
    @property
    def received_at(self) -> datetime | None: ...
    @property
    def lot_id(self) -> UUID: ...
    @property
    def location(self) -> str: ...


R = TypeVar("R", bound=ReservedOnLine)


def in_shipping_order(reserved: Iterable[R]) -> list[R]:
    """An order's reservations as its allocation lists them: line by line, a line's lots in
    FEFO order, a lot's locations by name (picking takes the one holding least first)."""
    return sorted(
        reserved,
        key=lambda r: (r.line_no, *fefo_order(r.expiry_date, r.received_at, r.lot_id, r.location)),
    )


@dataclass(frozen=True)
class FefoNeed:
    """What a batch's demands ask of one SKU in one unit: the total, and the strictest
    shelf-life cut-off among them (`expiry_date >= cutoff`). Taken in FEFO order, the lots up
    to those whose stock eligible for every one of those demands covers the total are all
    that FEFO can take from: each demand finds enough before them, whatever came first. The
    lots after them need not be read or locked. `quantity` None reads every lot of the SKU."""

    sku: str
    uom: str
    quantity: Decimal | None
    cutoff: date


def shelf_life_cutoff(demand: Demand, today: date) -> date:
    """The earliest expiry date a lot may have to serve the demand's order."""
    return today + timedelta(days=demand.min_remaining_shelf_life_days)


def good_through(lot: StockLot, cutoff: date) -> bool:
    """Whether the lot does not expire before the cut-off (a lot without expiry never does)."""
    return lot.expiry_date is None or lot.expiry_date >= cutoff


def fefo_needs(demands: Iterable[Demand], *, today: date) -> list[FefoNeed]:
    """The needs of these demands, per SKU and unit, sorted."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cutoffs: dict[tuple[str, str], date] = {}
    for demand in demands:
        if demand.quantity <= ZERO:
            continue
        key = (demand.sku, demand.uom)
        totals[key] += demand.quantity
        cutoff = shelf_life_cutoff(demand, today)
        cutoffs[key] = max(cutoffs.get(key, cutoff), cutoff)
    return [
        FefoNeed(sku, uom, totals[(sku, uom)], cutoffs[(sku, uom)]) for sku, uom in sorted(totals)
    ]


def needs_read_whole(needs: Iterable[FefoNeed], lots: Iterable[StockLot]) -> list[FefoNeed]:
    """The needs that the stock read for them does not cover, as needs of every lot: the stock
    is short (then every lot was read already, and a reason is owed), or it changed between
    the database's choice of lots and its locks on them."""
    lots_by_sku: dict[str, list[StockLot]] = defaultdict(list)
    for lot in lots:
        lots_by_sku[lot.sku].append(lot)
    whole = []
    for need in needs:
        if need.quantity is None:
            continue
        covered = sum(
            (
                lot.available
                for lot in lots_by_sku.get(need.sku, ())
                if lot.uom == need.uom and good_through(lot, need.cutoff)
            ),
            ZERO,
        )
        if covered < need.quantity:
            whole.append(FefoNeed(need.sku, need.uom, None, need.cutoff))
    return whole


def allocate(
    demands: Sequence[Demand], lots: Iterable[StockLot], *, today: date
) -> AllocationResult:
    """Allocate demands in the order given (arrival order), each FEFO from eligible lots.

    A lot is eligible for a line when it is the same SKU and unit, has quantity left, and does
    not expire before today + the order's minimum remaining shelf life. A line may be split
    across lots; what cannot be allocated is a shortfall with its reason.
    """
    by_sku: dict[str, list[StockLot]] = defaultdict(list)
    for lot in lots:
        by_sku[lot.sku].append(lot)
    for candidates in by_sku.values():
        candidates.sort(key=fefo_key)
    # Stock of one lot may sit at several locations: each is its own pool.
    left = {
        (lot.lot_id, lot.location): lot.available
        for candidates in by_sku.values()
        for lot in candidates
    }
    result = AllocationResult()
    for demand in demands:
        if demand.quantity > ZERO:
            _fill(demand, by_sku, left, today=today, result=result)
    return result


def _fill(
    demand: Demand,
    by_sku: Mapping[str, list[StockLot]],
    left: dict[tuple[UUID, str], Decimal],
    *,
    today: date,
    result: AllocationResult,
) -> None:
    """Reserve one demand from the eligible pools `left`, in FEFO order, taking what it uses
    from them; a part no pool can give is a shortfall, with why."""
    need = demand.quantity
    cutoff = shelf_life_cutoff(demand, today)
    short_dated = uom_mismatch = False
    for lot in by_sku.get(demand.sku, ()):
        if need <= ZERO:
            break
        if left[(lot.lot_id, lot.location)] <= ZERO:
            continue
        if lot.uom != demand.uom:
            uom_mismatch = True
            continue
        if not good_through(lot, cutoff):
            short_dated = True
            continue
        take = min(need, left[(lot.lot_id, lot.location)])
        left[(lot.lot_id, lot.location)] -= take
        need -= take
        result.reserves.append(
            Reserve(demand.order_id, demand.line_no, lot.lot_id, take, lot.location)
        )
    if need > ZERO:
        reason = _shortfall_reason(
            partly=need < demand.quantity,
            short_dated=short_dated,
            uom_mismatch=uom_mismatch,
            sku_in_stock=demand.sku in by_sku,
        )
        result.shortfalls.append(
            Shortfall(demand.order_id, demand.line_no, demand.sku, demand.uom, need, reason)
        )


def _shortfall_reason(
    *, partly: bool, short_dated: bool, uom_mismatch: bool, sku_in_stock: bool
) -> BackorderReason:
    if partly:
        return BackorderReason.INSUFFICIENT_STOCK
    if short_dated:
        return BackorderReason.SHORT_DATED
    if uom_mismatch:
        return BackorderReason.UOM_MISMATCH
    return BackorderReason.INSUFFICIENT_STOCK if sku_in_stock else BackorderReason.NO_STOCK


# ------------------------------------------------------------------ giving reservations back


@dataclass(frozen=True)
class Held:
    """A reservation as it stands, with the lot's expiry for choosing which gives way."""

    order_id: str
    line_no: int
    lot_id: UUID
    quantity: Decimal
    expiry_date: date | None = None
    location: str = "MAIN"


def excess_to_release(
    reservations: Sequence[Held], *, ordered: Decimal, shipped: Decimal
) -> list[Reserve]:
    """When a line's reserved + shipped exceeds what was ordered (it shipped from another lot
    than reserved), give back the excess: lots without expiry first, then latest-expiring."""
    excess = shipped + sum((r.quantity for r in reservations), ZERO) - ordered
    # Keep what FEFO would ship first: give back undated lots, then the latest-expiring.
    latest_first = sorted(
        reservations,
        key=lambda r: (r.expiry_date is None, r.expiry_date or date.max),
        reverse=True,
    )
    return _give_back(latest_first, excess)


def shrink_reservations(
    reservations: Sequence[Held], *, available_for_orders: Decimal
) -> list[Reserve]:
    """When a lot's stock falls below what is reserved from it (a count found less), give back
    reservations of the latest orders first until the rest fits."""
    excess = sum((r.quantity for r in reservations), ZERO) - max(available_for_orders, ZERO)
    return _give_back(list(reversed(reservations)), excess)


def _give_back(reservations: Sequence[Held], excess: Decimal) -> list[Reserve]:
    """Release from reservations in the order given until `excess` is given back."""
    released: list[Reserve] = []
    for held in reservations:
        if excess <= ZERO:
            break
        give = min(excess, held.quantity)
        released.append(Reserve(held.order_id, held.line_no, held.lot_id, give, held.location))
        excess -= give
    return released


# ------------------------------------------------------------------ the order's allocation


@dataclass(frozen=True)
class LineState:
    order_id: str
    line_no: int
    sku: str
    uom: str
    ordered: Decimal
    shipped: Decimal
    reserved: Decimal
    backorder_reason: str | None

    @property
    def backordered(self) -> Decimal:
        return max(self.ordered - self.shipped - self.reserved, ZERO)

    def shortfall(self) -> Shortfall | None:
        """What the line lacks. A line short without a recorded reason lost stock it had been
        given (a count, a hold): it is short of stock."""
        if self.backordered <= ZERO:
            return None
        reason = self.backorder_reason or BackorderReason.INSUFFICIENT_STOCK
        return Shortfall(
            self.order_id,
            self.line_no,
            self.sku,
            self.uom,
            self.backordered,
            BackorderReason(reason),
        )


def merged(changes: Iterable[Reserve]) -> list[Reserve]:
    """One row per order line, lot and location, quantities summed, in that key order."""
    totals: dict[tuple[str, int, UUID, str], Decimal] = defaultdict(Decimal)
    for r in changes:
        totals[(r.order_id, r.line_no, r.lot_id, r.location)] += r.quantity
    return [
        Reserve(order_id, line_no, lot_id, quantity, location)
        for (order_id, line_no, lot_id, location), quantity in sorted(totals.items())
    ]


def ship_from_reservations(
    reservations: Iterable[Reserve], shipped: dict[tuple[str, int, UUID], Decimal]
) -> tuple[list[Reserve], dict[tuple[str, int, UUID], Decimal]]:
    """What a shipment of (order, line, lot) quantities uses up: that line's reservations of
    the lot, location by location in location order, up to the shipped quantity. Returns the
    part of each reservation that shipped, and what shipped beyond every reservation."""
    left = dict(shipped)
    used: list[Reserve] = []
    for held in sorted(reservations, key=lambda r: (r.order_id, r.line_no, r.lot_id, r.location)):
        key = (held.order_id, held.line_no, held.lot_id)
        take = min(held.quantity, left.get(key, ZERO))
        if take > ZERO:
            used.append(Reserve(held.order_id, held.line_no, held.lot_id, take, held.location))
            left[key] -= take
    return used, {key: quantity for key, quantity in left.items() if quantity > ZERO}


def draw_from_locations(
    stock: Sequence[tuple[str, Decimal]], quantity: Decimal
) -> list[tuple[str, Decimal]]:
    """Where a quantity leaves a lot when the event does not say where (production inputs,
    shipments beyond reservations): the locations holding most give first. What no location
    holds is taken from the largest, so the gap shows as negative stock there. Held locations
    (returns awaiting inspection) give nothing while the lot has a pickable one: their units
    leave only through a disposition."""
    stock = [item for item in stock if is_pickable(item[0])] or list(stock)
    if not stock:
        return []
    taken: list[tuple[str, Decimal]] = []
    need = quantity
    ordered = sorted(stock, key=lambda item: (-item[1], item[0]))
    for location, on_hand in ordered:
        if need <= ZERO:
            break
        take = min(need, max(on_hand, ZERO))
        if take > ZERO:
            taken.append((location, take))
            need -= take
    if need > ZERO:
        first = ordered[0][0]
        merged = dict(taken)
        merged[first] = merged.get(first, ZERO) + need
        taken = sorted(merged.items(), key=lambda item: item[0] != first)
    return taken


# ------------------------------------------------------------------ the warehouse floor

# Where customer returns land, held for inspection: never allocated from. A move out of it
# (restock), an adjustment (destroy) or a return to vendor disposes of them.
RETURNS_LOCATION = "RETURNS"
UNPICKABLE_LOCATIONS: tuple[str, ...] = (RETURNS_LOCATION,)


def is_pickable(location: str) -> bool:
    return location not in UNPICKABLE_LOCATIONS


def same_location_problem(source: str, target: str) -> str | None:
    """A move goes somewhere else: one to where the units already are would move nothing."""
    if source == target:
        return f"a move goes somewhere else than {source}"
    return None


def take_problem(
    *, lot_code: str, location: str, on_hand: Decimal | None, reserved: Decimal, quantity: Decimal
) -> tuple[str, str] | None:
    """Why `quantity` cannot leave a location of a lot by hand (a move, a return to vendor), as
    (code, what): the lot is not there, or not that much of it is free. Reserved units stay
    for the orders they are reserved for."""
    if on_hand is None or on_hand <= ZERO:
        return "lot_not_at_location", f"lot {lot_code} has no stock at {location}"
    free = on_hand - reserved
    if quantity > free:
        detail = f", {reserved} of {on_hand} reserved" if reserved > ZERO else ""
        return (
            "insufficient_stock",
            f"lot {lot_code} has {max(free, ZERO)} free at {location}{detail};"
            f" {quantity} asked for",
        )
    return None


Scan = tuple[str | None, str | None]  # a scanned case's lot code and GTIN


def scan_problem(*, lot_code: str, gtin: str | None, scanned: Iterable[Scan]) -> str | None:
    """A scanned case (lot code, GTIN) that is not this lot: another lot code, or the same code
    of another product. A scan without a lot code proves nothing and is refused too."""
    for scanned_code, scanned_gtin in scanned:
        if scanned_code != lot_code:
            return f"scanned lot {scanned_code or '(none)'} is not lot {lot_code}"
        if scanned_gtin and gtin and scanned_gtin.zfill(14) != gtin.zfill(14):
            return f"scanned GTIN {scanned_gtin} is not lot {lot_code}'s product ({gtin})"
    return None


def beyond_shipped(returned: Decimal, *, returnable: Decimal) -> Decimal:
    """How much of a returned quantity exceeds what the customer could still return."""
    return max(returned - max(returnable, ZERO), ZERO)


def adjustment_problem(*, on_hand: Decimal, delta: Decimal) -> str | None:
    """Stock never goes negative."""
    if on_hand + delta < ZERO:
        return f"on hand would be {on_hand + delta}: stock cannot go negative"
    return None
