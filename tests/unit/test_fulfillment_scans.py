"""Scan verification: a scanned case is matched to the order's allocation by its lot code and,
when both the case's label and the allocation name one, by its product's GTIN. Two products
may share a lot code; a case of the wrong one never passes."""

from __future__ import annotations

from collections.abc import Sequence
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
    plan_shipment,
    remaining_allocations,
    scanned_lot_ids,
)
from shared.runtime.http import STATUS_OF_KIND

NAMESPACE = UUID("5c3a9f10-0000-4000-8000-000000000000")
OJ_GTIN = "09501101530003"  # orange juice 1 L
AJ_GTIN = "09501101530010"  # apple juice 1 L
AJ_GTIN13 = "9501101530010"  # the same GTIN as a GTIN-13 (no leading zero)


def lot_id(sku: str, code: str) -> UUID:
    return uuid5(NAMESPACE, f"{sku}/{code}")


def line(line_no: int, ordered: str, *, sku: str) -> Line:
    return Line(line_no, sku, "EA", Decimal(ordered), Decimal(0))


def allocated(line_no: int, sku: str, code: str, quantity: str, gtin: str | None) -> Allocated:
    return Allocated(
        line_no, sku, lot_id(sku, code), code, Decimal(quantity), "EA", None, gtin=gtin
    )


def scan(code: str, gtin: str | None = None) -> ScannedLot:
    return ScannedLot(lot_code=code, gtin=gtin)


def plan(
    lines: Sequence[Line], allocations: Sequence[Allocated], scanned: Sequence[ScannedLot]
) -> ShipmentPlan:
    return plan_shipment(lines, allocations, blocked={}, scanned=scanned, strict=True)


def shipped(result: ShipmentPlan) -> list[tuple[int, str, UUID, Decimal]]:
    return [(s.line_no, s.sku, s.lot_id, s.quantity) for s in result.lines]


# Two products of one order whose lots happen to have the same code.
TWIN_LINES = [line(1, "4", sku="OJ-1L"), line(2, "6", sku="AJ-1L")]
TWIN_ALLOCATIONS = [
    allocated(1, "OJ-1L", "L2611", "4", OJ_GTIN),
    allocated(2, "AJ-1L", "L2611", "6", AJ_GTIN),
]


def test_a_case_of_another_product_with_an_allocated_lot_code_is_refused_naming_both() -> None:
    allocations = [allocated(1, "OJ-1L", "L2611", "4", OJ_GTIN)]

    with pytest.raises(ShipmentRefused) as refused:
        plan([line(1, "4", sku="OJ-1L")], allocations, [scan("L2611", AJ_GTIN)])

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("wrong_product", 409)
    message = str(refused.value)
    assert AJ_GTIN in message  # what was scanned
    assert "L2611" in message
    assert OJ_GTIN in message  # what the order expects
    assert "OJ-1L" in message


def test_one_wrong_case_among_right_ones_refuses_the_whole_shipment() -> None:
    allocations = [
        allocated(1, "OJ-1L", "L2611", "4", OJ_GTIN),
        allocated(1, "OJ-1L", "L2612", "4", OJ_GTIN),
    ]

    with pytest.raises(ShipmentRefused) as refused:
        plan(
            [line(1, "8", sku="OJ-1L")],
            allocations,
            [scan("L2611", OJ_GTIN), scan("L2612", AJ_GTIN)],
        )

    assert refused.value.code == "wrong_product"
    assert "L2612" in str(refused.value)


def test_the_right_product_ships_and_only_its_lot_not_the_other_product_with_that_code() -> None:
    result = plan(TWIN_LINES, TWIN_ALLOCATIONS, [scan("L2611", OJ_GTIN)])

    assert shipped(result) == [(1, "OJ-1L", lot_id("OJ-1L", "L2611"), Decimal(4))]


def test_twin_lot_codes_of_two_products_are_told_apart_by_gtin() -> None:
    result = plan(TWIN_LINES, TWIN_ALLOCATIONS, [scan("L2611", AJ_GTIN)])

    assert shipped(result) == [(2, "AJ-1L", lot_id("AJ-1L", "L2611"), Decimal(6))]


def test_scanning_a_case_of_each_product_ships_both() -> None:
    result = plan(TWIN_LINES, TWIN_ALLOCATIONS, [scan("L2611", OJ_GTIN), scan("L2611", AJ_GTIN)])

    assert shipped(result) == [
        (1, "OJ-1L", lot_id("OJ-1L", "L2611"), Decimal(4)),
        (2, "AJ-1L", lot_id("AJ-1L", "L2611"), Decimal(6)),
    ]


def test_a_scan_without_a_gtin_matches_by_lot_code_as_before() -> None:
    result = plan(TWIN_LINES, TWIN_ALLOCATIONS, [scan("L2611")])

    assert [s.line_no for s in result.lines] == [1, 2]


def test_an_allocation_whose_gtin_is_unknown_matches_by_lot_code() -> None:
    # an allocation from an inventory that did not send GTINs, or of a lot received without one
    allocations = [allocated(1, "OJ-1L", "L2611", "4", None)]

    result = plan([line(1, "4", sku="OJ-1L")], allocations, [scan("L2611", AJ_GTIN)])

    assert shipped(result) == [(1, "OJ-1L", lot_id("OJ-1L", "L2611"), Decimal(4))]


def test_a_gtin_match_is_preferred_to_an_allocation_whose_gtin_is_unknown() -> None:
    allocations = [
        allocated(1, "OJ-1L", "L2611", "4", OJ_GTIN),
        allocated(2, "AJ-1L", "L2611", "6", None),
    ]

    assert scanned_lot_ids(allocations, [scan("L2611", OJ_GTIN)]) == {lot_id("OJ-1L", "L2611")}
    assert scanned_lot_ids(allocations, [scan("L2611", AJ_GTIN)]) == {lot_id("AJ-1L", "L2611")}


def test_gtin_8_12_and_13_compare_as_the_gtin_14_a_scanned_label_carries() -> None:
    allocations = [allocated(1, "AJ-1L", "L2611", "6", AJ_GTIN13)]

    result = plan([line(1, "6", sku="AJ-1L")], allocations, [scan("L2611", AJ_GTIN)])

    assert [s.lot_id for s in result.lines] == [lot_id("AJ-1L", "L2611")]


def test_a_lot_code_not_allocated_at_all_is_still_lot_not_allocated() -> None:
    with pytest.raises(ShipmentRefused, match="NOT-OURS") as refused:
        plan(TWIN_LINES, TWIN_ALLOCATIONS, [scan("NOT-OURS", OJ_GTIN)])

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("lot_not_allocated", 409)


def test_what_remains_after_a_shipment_keeps_the_lots_gtin() -> None:
    taken = [ShipLine(2, "AJ-1L", lot_id("AJ-1L", "L2611"), "L2611", Decimal(2), "EA")]

    left = remaining_allocations(TWIN_ALLOCATIONS, taken)

    assert [(a.sku, a.quantity, a.gtin) for a in left] == [
        ("OJ-1L", Decimal(4), OJ_GTIN),
        ("AJ-1L", Decimal(4), AJ_GTIN),
    ]
