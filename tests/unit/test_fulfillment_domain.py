"""Fulfillment rules: a shipment takes only what is allocated, never more than is left to ship,
never from a recalled or held lot, and, when the picker scans, only the lots scanned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID, uuid5

import pytest

from services.fulfillment.domain import (
    Allocated,
    Line,
    ScannedLot,
    ShipLine,
    ShipmentPlan,
    ShipmentRefused,
    counted_unshipped,
    plan_shipment,
    remaining_allocations,
    unheard_quantities,
    unheard_shipments,
)
from shared.contracts.events import Allocation, Backorder
from shared.runtime.http import STATUS_OF_KIND

LOT_NAMESPACE = UUID("7d2e3b45-0000-4000-8000-000000000000")


def lot_id(code: str) -> UUID:
    return uuid5(LOT_NAMESPACE, code)


def line(line_no: int, ordered: str, shipped: str = "0", *, sku: str = "OJ-1L") -> Line:
    return Line(line_no, sku, "EA", Decimal(ordered), Decimal(shipped))


def allocated(
    line_no: int, code: str, quantity: str, expiry: date | None = None, *, sku: str = "OJ-1L"
) -> Allocated:
    return Allocated(line_no, sku, lot_id(code), code, Decimal(quantity), "EA", expiry)


def shipped(plan: ShipmentPlan) -> list[tuple[int, str, Decimal]]:
    return [(ship.line_no, ship.lot_code, ship.quantity) for ship in plan.lines]


def plan(
    lines: Sequence[Line],
    allocations: Sequence[Allocated],
    *,
    blocked: Mapping[UUID, str] | None = None,
    requested: Mapping[int, Decimal | None] | None = None,
    scanned: Sequence[str] | None = None,
    strict: bool = True,
) -> ShipmentPlan:
    return plan_shipment(
        lines,
        allocations,
        blocked=blocked or {},
        requested=requested,
        scanned=None if scanned is None else [ScannedLot(code) for code in scanned],
        strict=strict,
    )


# ------------------------------------------------------------------ what ships


def test_everything_allocated_ships_when_nothing_limits_the_shipment() -> None:
    result = plan(
        [line(1, "5"), line(2, "3", sku="AJ-1L")],
        [allocated(1, "OJ-A", "5"), allocated(2, "AJ-A", "3", sku="AJ-1L")],
    )

    assert shipped(result) == [(1, "OJ-A", Decimal(5)), (2, "AJ-A", Decimal(3))]
    assert result.lines[1].sku == "AJ-1L"
    assert result.lines[1].lot_id == lot_id("AJ-A")


def test_a_stale_allocation_never_ships_more_than_is_left_to_ship() -> None:
    # 6 of 10 already shipped, but the allocation still says 10
    result = plan([line(1, "10", "6")], [allocated(1, "A", "10")])

    assert shipped(result) == [(1, "A", Decimal(4))]


def test_a_fully_shipped_line_ships_nothing_even_if_still_allocated() -> None:
    result = plan([line(1, "10", "10")], [allocated(1, "A", "3")])

    assert result.is_empty


def test_a_line_ships_its_earliest_expiring_lots_first_and_undated_lots_last() -> None:
    allocations = [
        allocated(1, "UNDATED", "4"),
        allocated(1, "LATE", "4", date(2027, 6, 1)),
        allocated(1, "SOON", "4", date(2026, 12, 1)),
    ]

    result = plan([line(1, "12", "3")], allocations)

    assert shipped(result) == [
        (1, "SOON", Decimal(4)),
        (1, "LATE", Decimal(4)),
        (1, "UNDATED", Decimal(1)),
    ]


def test_an_allocation_of_another_line_does_not_ship_on_this_one() -> None:
    result = plan([line(1, "5")], [allocated(2, "A", "5")])

    assert result.is_empty


# ------------------------------------------------------------------ blocked lots


def test_a_recalled_lot_refuses_the_whole_shipment_naming_the_lot() -> None:
    allocations = [allocated(1, "GOOD", "2"), allocated(2, "BAD-LOT", "3")]

    with pytest.raises(ShipmentRefused, match="BAD-LOT is recalled") as refused:
        plan(
            [line(1, "2"), line(2, "3")],
            allocations,
            blocked={lot_id("BAD-LOT"): "recalled"},
        )

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("lot_blocked", 409)


def test_a_recalled_lot_waits_while_other_lines_ship_when_not_strict() -> None:
    allocations = [
        allocated(1, "GOOD", "2"),
        allocated(2, "BAD-LOT", "3", date(2026, 12, 1)),
        allocated(2, "OTHER", "1", date(2027, 1, 1)),
    ]

    result = plan(
        [line(1, "2"), line(2, "4")],
        allocations,
        blocked={lot_id("BAD-LOT"): "recalled"},
        strict=False,
    )

    assert shipped(result) == [(1, "GOOD", Decimal(2)), (2, "OTHER", Decimal(1))]
    assert result.waiting == [allocations[1]]


def test_a_blocked_lot_the_picker_did_not_scan_does_not_hold_up_the_shipment() -> None:
    allocations = [allocated(1, "HELD", "3", date(2026, 12, 1)), allocated(1, "GOOD", "3")]

    result = plan(
        [line(1, "3")], allocations, blocked={lot_id("HELD"): "on hold"}, scanned=["GOOD"]
    )

    assert shipped(result) == [(1, "GOOD", Decimal(3))]


# ------------------------------------------------------------------ scans


def test_only_the_lots_the_picker_scanned_ship() -> None:
    allocations = [
        allocated(1, "A", "2", date(2026, 12, 1)),
        allocated(1, "B", "2", date(2027, 1, 1)),
        allocated(2, "C", "5"),
    ]

    result = plan([line(1, "4"), line(2, "5")], allocations, scanned=["B"])

    assert shipped(result) == [(1, "B", Decimal(2))]


def test_a_scanned_lot_not_allocated_to_the_order_refuses_the_shipment_naming_it() -> None:
    with pytest.raises(ShipmentRefused, match="WRONG-LOT") as refused:
        plan([line(1, "4")], [allocated(1, "A", "4")], scanned=["A", "WRONG-LOT"])

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("lot_not_allocated", 409)


# ------------------------------------------------------------------ requested lines


def test_only_the_requested_lines_ship() -> None:
    result = plan(
        [line(1, "4"), line(2, "5")],
        [allocated(1, "A", "4"), allocated(2, "B", "5")],
        requested={2: None},
    )

    assert shipped(result) == [(2, "B", Decimal(5))]


def test_a_requested_quantity_ships_part_of_a_line_in_fefo_order() -> None:
    allocations = [
        allocated(1, "LATE", "5", date(2027, 3, 1)),
        allocated(1, "SOON", "2", date(2026, 12, 1)),
    ]

    result = plan([line(1, "7")], allocations, requested={1: Decimal("3.5")})

    assert shipped(result) == [(1, "SOON", Decimal(2)), (1, "LATE", Decimal("1.5"))]


def test_requesting_more_than_is_left_to_ship_is_refused() -> None:
    with pytest.raises(
        ShipmentRefused, match=r"line 1 has 4 EA left to ship, 5 requested"
    ) as refused:
        plan([line(1, "10", "6")], [allocated(1, "A", "4")], requested={1: Decimal(5)})

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("over_shipment", 409)


def test_requesting_a_line_the_order_does_not_have_is_refused() -> None:
    with pytest.raises(ShipmentRefused, match="no line 9") as refused:
        plan([line(1, "4")], [allocated(1, "A", "4")], requested={9: None})

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("unknown_line", 422)


# ------------------------------------------------------------------ after a shipment


def test_what_shipped_is_taken_off_the_allocation() -> None:
    allocations = [
        allocated(1, "A", "4", date(2026, 12, 1)),
        allocated(1, "B", "4", date(2027, 1, 1)),
        allocated(2, "A", "2", date(2026, 12, 1)),
    ]
    shipment = [
        ShipLine(1, "OJ-1L", lot_id("A"), "A", Decimal(4), "EA"),
        ShipLine(1, "OJ-1L", lot_id("B"), "B", Decimal("1.5"), "EA"),
    ]

    left = remaining_allocations(allocations, shipment)

    assert [(a.line_no, a.lot_code, a.quantity) for a in left] == [
        (1, "B", Decimal("2.5")),
        (2, "A", Decimal(2)),
    ]
    assert left[0].expiry_date == date(2027, 1, 1)


def test_a_partial_shipment_then_the_rest_ships_the_whole_line_exactly_once() -> None:
    lines = [line(1, "7")]
    allocations = [allocated(1, "SOON", "2", date(2026, 12, 1)), allocated(1, "LATE", "5")]

    first = plan(lines, allocations, requested={1: Decimal(3)})
    rest = plan(
        [line(1, "7", "3")], remaining_allocations(allocations, first.lines), requested={1: None}
    )

    assert shipped(first) + shipped(rest) == [
        (1, "SOON", Decimal(2)),
        (1, "LATE", Decimal(1)),
        (1, "LATE", Decimal(4)),
    ]


# ------------------------------------------------------------------ an allocation behind


def ship_line(line_no: int, code: str, quantity: str) -> ShipLine:
    return ShipLine(line_no, "OJ-1L", lot_id(code), code, Decimal(quantity), "EA")


def test_an_allocation_that_heard_of_every_shipment_is_behind_by_nothing() -> None:
    # 3 of 4 shipped and inventory knows: it holds the last unit, or backorders it
    assert unheard_quantities([line(1, "4", "3")], {1: Decimal(1)}) == {}


def test_an_allocation_published_before_a_shipment_was_heard_still_counts_its_units() -> None:
    # 3 of 4 shipped from lot A; inventory, not knowing, published 3 of A and 1 of B
    lines = [line(1, "4", "3"), line(2, "2")]
    behind = unheard_quantities(lines, {1: Decimal(4), 2: Decimal(2)})

    assert behind == {1: Decimal(3)}
    unheard = unheard_shipments(behind, [ship_line(1, "A", "3")])
    left = remaining_allocations([allocated(1, "A", "3"), allocated(1, "B", "1")], unheard)
    assert [(a.lot_code, a.quantity) for a in left] == [("B", Decimal(1))]
    # what is left is what inventory will still hold once it hears: B, not a fourth unit of A
    assert shipped(plan(lines, left)) == [(1, "B", Decimal(1))]


def test_the_units_not_heard_of_are_the_newest_shipments_of_the_line() -> None:
    # shipped 2 of A, then 1 of B; inventory heard of the first only
    newest_first = [ship_line(1, "B", "1"), ship_line(2, "A", "5"), ship_line(1, "A", "2")]

    unheard = unheard_shipments({1: Decimal(1)}, newest_first)

    assert [(s.line_no, s.lot_code, s.quantity) for s in unheard] == [(1, "B", Decimal(1))]


def test_units_given_back_after_they_shipped_leave_nothing_more_to_ship() -> None:
    # 3 of A shipped for a line of 4; inventory, before hearing, gave one of them back to
    # another order's need and published 2 of A and 2 backordered
    lines = [line(1, "4", "3")]
    behind = unheard_quantities(lines, {1: Decimal(4)})
    left = remaining_allocations(
        [allocated(1, "A", "2")], unheard_shipments(behind, [ship_line(1, "A", "3")])
    )

    assert left == []
    assert plan(lines, left).is_empty


def test_a_revision_counts_allocated_and_backordered_units_as_unshipped() -> None:
    allocations = [
        Allocation(line_no=1, sku="OJ", lot_id=lot_id("A"), lot_code="A", quantity=Decimal(2)),
        Allocation(line_no=1, sku="OJ", lot_id=lot_id("B"), lot_code="B", quantity=Decimal(1)),
        Allocation(line_no=2, sku="AJ", lot_id=lot_id("C"), lot_code="C", quantity=Decimal(4)),
    ]
    backordered = [Backorder(line_no=1, sku="OJ", quantity=Decimal(1), reason="no stock")]
    assert counted_unshipped(allocations, backordered) == {1: Decimal(4), 2: Decimal(4)}
