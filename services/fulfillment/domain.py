"""Fulfillment rules: what a shipment may contain. Pure: no I/O, no framework.

An order is shipped only from what is allocated to it, never more than was ordered, never
from a lot that is recalled or on hold, and, when the picker scans, only the lots scanned: a
scanned case names its lot by lot code and, on a GS1 label, its product by GTIN, and both must
match what is allocated (two products may share a lot code).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from shared.errors import DomainError, ErrorKind
from shared.quantities import ZERO, less_taken


class OrderStatus(StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"


# The lot statuses (`lot-status-changed`) a lot may ship in; any other refuses it.
SHIPPABLE_STATUSES: tuple[str, ...] = ("available",)

AWAITING_ORDER = "awaiting_order"  # shown for an order only an allocation named so far


def may_ship(status: str, placed: bool) -> bool:
    """An order ships only while open, and only once the order itself has arrived."""
    return status == OrderStatus.OPEN and placed


def is_newer_allocation(revision: int | None, current: int) -> bool:
    """An allocation without a revision always replaces; one with a revision only replaces an
    older one, so a redelivered or overtaken event changes nothing."""
    return revision is None or revision > current


def shown_status(status: str, placed: bool) -> str:
    """The status a reader sees: an open order not placed yet is awaiting its order."""
    return AWAITING_ORDER if status == OrderStatus.OPEN and not placed else status


class ShipmentRefused(DomainError):
    """Nothing is shipped; `code` is stable and the message names the lot or line. A conflict
    with the order as it stands, unless the request itself is wrong or names no order."""

    kind = ErrorKind.CONFLICT


@dataclass(frozen=True)
class Line:
    line_no: int
    sku: str
    uom: str
    ordered: Decimal
    shipped: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.ordered - self.shipped, ZERO)


@dataclass(frozen=True)
class LotLine:
    """A quantity of one lot for one order line: what an allocation and a shipment share."""

    line_no: int
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: Decimal
    uom: str


@dataclass(frozen=True)
class Allocated(LotLine):
    expiry_date: date | None = None
    gtin: str | None = None  # the lot's product, when inventory knows it


@dataclass(frozen=True)
class ScannedLot:
    """A lot as a scanned case names it: the lot code, and the GTIN when the label has one."""

    lot_code: str
    gtin: str | None = None


@dataclass(frozen=True)
class ShipLine(LotLine):
    """A quantity of one lot that a shipment takes for one order line."""


@dataclass
class ShipmentPlan:
    lines: list[ShipLine] = field(default_factory=list)
    waiting: list[Allocated] = field(default_factory=list)  # blocked lots: wait for re-allocation

    @property
    def is_empty(self) -> bool:
        return not self.lines


def plan_shipment(
    lines: Sequence[Line],
    allocations: Sequence[Allocated],
    *,
    blocked: Mapping[UUID, str],
    requested: Mapping[int, Decimal | None] | None = None,
    scanned: Sequence[ScannedLot] | None = None,
    strict: bool = True,
) -> ShipmentPlan:
    """Which allocated quantities ship now.

    `requested` limits the shipment to some lines (a quantity, or None for all that remains).
    `scanned` limits it to the allocated lots the picker scanned (see `scanned_lot_ids`); a
    scanned case that matches none refuses the whole shipment. `blocked` lots (recalled, on
    hold) refuse it when `strict`, else their lines wait. Never more than the line's ordered
    quantity minus what shipped.
    """
    by_line: dict[int, list[Allocated]] = defaultdict(list)
    for allocation in allocations:
        by_line[allocation.line_no].append(allocation)
    if requested is not None:
        _check_lines_exist(lines, requested)
    scanned_lots = None if scanned is None else scanned_lot_ids(allocations, scanned)
    plan = ShipmentPlan()
    for line in lines:
        if requested is not None and line.line_no not in requested:
            continue
        candidates = [
            allocation
            for allocation in sorted(by_line[line.line_no], key=_fefo)
            if scanned_lots is None or allocation.lot_id in scanned_lots
        ]
        cap = _line_cap(line, None if requested is None else requested[line.line_no])
        _take_from_line(plan, line, cap, candidates, blocked=blocked, strict=strict)
    return plan


def _check_lines_exist(lines: Sequence[Line], requested: Mapping[int, Decimal | None]) -> None:
    known = {line.line_no for line in lines}
    for line_no in requested:
        if line_no not in known:
            raise ShipmentRefused(
                "unknown_line", f"the order has no line {line_no}", kind=ErrorKind.INVALID
            )


def _line_cap(line: Line, wanted: Decimal | None) -> Decimal:
    """What may ship of a line: what remains of it, or less when the request asks for less."""
    if wanted is None:
        return line.remaining
    if wanted > line.remaining:
        raise ShipmentRefused(
            "over_shipment",
            f"line {line.line_no} has {line.remaining} {line.uom} left to ship, {wanted} requested",
        )
    return wanted


def _take_from_line(
    plan: ShipmentPlan,
    line: Line,
    cap: Decimal,
    candidates: Sequence[Allocated],
    *,
    blocked: Mapping[UUID, str],
    strict: bool,
) -> None:
    """Fill the line from its allocations in FEFO order, up to `cap`; a blocked lot refuses
    the shipment when `strict`, else waits."""
    for allocation in candidates:
        if cap <= ZERO:
            break
        if allocation.lot_id in blocked:
            if strict:
                raise ShipmentRefused(
                    "lot_blocked",
                    f"lot {allocation.lot_code} is {blocked[allocation.lot_id]}:"
                    f" line {line.line_no} waits for re-allocation",
                )
            plan.waiting.append(allocation)
            continue
        take = min(cap, allocation.quantity)
        if take <= ZERO:
            continue
        plan.lines.append(
            ShipLine(line.line_no, line.sku, allocation.lot_id, allocation.lot_code, take, line.uom)
        )
        cap -= take


def scanned_lot_ids(allocations: Sequence[Allocated], scanned: Sequence[ScannedLot]) -> set[UUID]:
    """The allocated lots the scanned cases are: each scan matches the allocations of its lot
    code and, when both the scan and the allocation name a GTIN, of its GTIN.

    A scan with a GTIN matches the allocations of that lot code and GTIN; only when there are
    none does it fall back to those whose GTIN is unknown. A scan without a GTIN matches every
    allocation of its lot code. A scan that matches nothing refuses the whole shipment:
    `lot_not_allocated` when no allocation has its lot code, `wrong_product` when some do but
    of other GTINs (another product with the same lot code), naming what the order expects.
    """
    matched: set[UUID] = set()
    for scan in scanned:
        same_code = [a for a in allocations if a.lot_code == scan.lot_code]
        if not same_code:
            raise ShipmentRefused(
                "lot_not_allocated", f"scanned lot {scan.lot_code} is not allocated to this order"
            )
        if scan.gtin is None:
            matched.update(a.lot_id for a in same_code)
            continue
        wanted = _gtin14(scan.gtin)
        same_product = [a for a in same_code if a.gtin is not None and _gtin14(a.gtin) == wanted]
        unknown_product = [a for a in same_code if a.gtin is None]
        chosen = same_product or unknown_product
        if not chosen:
            expected = ", ".join(
                sorted({f"GTIN {a.gtin} ({a.sku})" for a in same_code if a.gtin is not None})
            )
            raise ShipmentRefused(
                "wrong_product",
                f"scanned case of GTIN {scan.gtin}, lot {scan.lot_code}, is the wrong product:"
                f" this order expects lot {scan.lot_code} as {expected}",
            )
        matched.update(a.lot_id for a in chosen)
    return matched


def _gtin14(gtin: str) -> str:
    """GTIN-8, -12 and -13 compare as the GTIN-14 they are (leading zeros), as (01) carries it."""
    return gtin.strip().zfill(14)


def _fefo(allocation: Allocated) -> tuple[bool, date, str]:
    return (
        allocation.expiry_date is None,
        allocation.expiry_date or date.max,
        str(allocation.lot_id),
    )


AllocationKey = tuple[int, UUID]  # (line_no, lot_id): one allocation of an order


def _taken(shipped: Sequence[ShipLine]) -> dict[AllocationKey, Decimal]:
    taken: dict[AllocationKey, Decimal] = defaultdict(Decimal)
    for line in shipped:
        taken[(line.line_no, line.lot_id)] += line.quantity
    return taken


def remaining_allocations(
    allocations: Sequence[Allocated], shipped: Sequence[ShipLine]
) -> list[Allocated]:
    """The allocation left after a shipment took its part: an allocation with nothing left is
    used up and gone."""
    taken = _taken(shipped)
    return less_taken(allocations, lambda item: taken.pop((item.line_no, item.lot_id), ZERO))


@dataclass(frozen=True)
class Settlement:
    """What a shipment changes in a stored allocation: the allocations it reduced, with what
    is left of them, and the ones it used up."""

    reduced: list[Allocated]
    used_up: list[AllocationKey]


def settle(allocations: Sequence[Allocated], shipped: Sequence[ShipLine]) -> Settlement:
    touched = set(_taken(shipped))
    left = remaining_allocations(allocations, shipped)
    still_there = {(a.line_no, a.lot_id) for a in left}
    return Settlement(
        reduced=[a for a in left if (a.line_no, a.lot_id) in touched],
        used_up=sorted(touched - still_there, key=lambda key: (key[0], str(key[1]))),
    )


def ships_in_full(lines: Sequence[Line], shipped: Sequence[ShipLine]) -> bool:
    """Whether these shipment lines complete every line of the order."""
    now_shipped: dict[int, Decimal] = defaultdict(Decimal)
    for line in shipped:
        now_shipped[line.line_no] += line.quantity
    return all(line.shipped + now_shipped[line.line_no] >= line.ordered for line in lines)


# ------------------------------------------------------------------ an allocation behind


class LineQuantity(Protocol):
    """A quantity of one order line: an allocation or a backorder of `lot-allocated`."""

    @property
    def line_no(self) -> int: ...
    @property
    def quantity(self) -> Decimal: ...


def counted_unshipped(
    allocations: Iterable[LineQuantity], backordered: Iterable[LineQuantity]
) -> dict[int, Decimal]:
    """What an allocation counts as unshipped per line: by the contract, every unshipped
    ordered unit is either allocated or backordered."""
    unshipped: dict[int, Decimal] = defaultdict(Decimal)
    for part in (*allocations, *backordered):
        unshipped[part.line_no] += part.quantity
    return unshipped


def unheard_quantities(
    lines: Sequence[Line], unshipped: Mapping[int, Decimal]
) -> dict[int, Decimal]:
    """Per line, how much more an allocation inventory published counts as unshipped than the
    line has left to ship: inventory published it before it heard of that much of our
    shipments, so those units are still in it, and must not ship twice.

    `unshipped`: what the allocation counts as unshipped per line, allocated plus backordered
    (the contract: every unshipped ordered unit appears in one or the other)."""
    return {
        line.line_no: behind
        for line in lines
        if (behind := unshipped.get(line.line_no, ZERO) - line.remaining) > ZERO
    }


def unheard_shipments(
    behind: Mapping[int, Decimal], shipped_newest_first: Sequence[ShipLine]
) -> list[ShipLine]:
    """The shipped quantities an allocation `behind` by so much per line had not heard of:
    each line's newest ones, since inventory hears an order's shipments in the order made."""
    left = dict(behind)
    unheard = []
    for shipped in shipped_newest_first:
        take = min(left.get(shipped.line_no, ZERO), shipped.quantity)
        if take > ZERO:
            unheard.append(replace(shipped, quantity=take))
            left[shipped.line_no] -= take
    return unheard
