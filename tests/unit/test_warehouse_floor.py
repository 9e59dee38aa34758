"""The warehouse floor's pure rules: what may leave a location by hand, which scans are this
lot, where allocation picks within a lot, how much of a return is flagged, and the stock
balance `lottrace check` holds returns to."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from lottrace.check.compare import LotFlows, unaccounted
from services.inventory.domain import (
    RETURNS_LOCATION,
    Demand,
    StockLot,
    allocate,
    beyond_shipped,
    draw_from_locations,
    is_pickable,
    scan_problem,
    take_problem,
)

TODAY = date(2026, 12, 6)


@pytest.mark.parametrize(
    ("on_hand", "reserved", "quantity", "refusal"),
    [
        (Decimal(10), Decimal(0), Decimal(10), None),
        (Decimal(10), Decimal(4), Decimal(6), None),
        (Decimal(10), Decimal(4), Decimal(7), "insufficient_stock"),  # reserved units stay
        (Decimal(0), Decimal(0), Decimal(1), "lot_not_at_location"),
        (None, Decimal(0), Decimal(1), "lot_not_at_location"),
    ],
)
def test_only_free_units_of_a_location_the_lot_is_at_leave_by_hand(
    on_hand: Decimal | None, reserved: Decimal, quantity: Decimal, refusal: str | None
) -> None:
    found = take_problem(
        lot_code="L-1", location="MAIN", on_hand=on_hand, reserved=reserved, quantity=quantity
    )
    assert (found[0] if found else None) == refusal


def test_a_scan_is_this_lot_only_with_its_lot_code_and_product() -> None:
    gtin = "09501101530003"
    assert scan_problem(lot_code="L-1", gtin=gtin, scanned=[("L-1", gtin), ("L-1", None)]) is None
    assert scan_problem(lot_code="L-1", gtin=gtin, scanned=[("L-1", "9501101530003")]) is None
    assert "L-2" in (scan_problem(lot_code="L-1", gtin=gtin, scanned=[("L-2", gtin)]) or "")
    assert "product" in (scan_problem(lot_code="L-1", gtin=gtin, scanned=[("L-1", "1" * 14)]) or "")
    assert scan_problem(lot_code="L-1", gtin=None, scanned=[(None, gtin)]) is not None


def test_within_a_lot_the_location_holding_least_is_picked_first() -> None:
    lot, later = uuid.uuid4(), uuid.uuid4()
    stock = [
        StockLot(lot, "L-1", "OJ", "EA", Decimal(9), date(2027, 1, 1), None, "A-BIG"),
        StockLot(lot, "L-1", "OJ", "EA", Decimal(2), date(2027, 1, 1), None, "Z-SMALL"),
        StockLot(later, "L-2", "OJ", "EA", Decimal(1), date(2027, 1, 2), None, "A-FIRST"),
    ]
    result = allocate([Demand("SO-1", 1, "OJ", "EA", Decimal(5))], stock, today=TODAY)
    assert [(r.location, r.quantity) for r in result.reserves] == [
        ("Z-SMALL", Decimal(2)),
        ("A-BIG", Decimal(3)),
    ]
    assert (is_pickable("RETURNS"), is_pickable("Z-SMALL")) == (False, True)


def test_a_return_beyond_what_the_customer_could_still_return_is_flagged() -> None:
    assert beyond_shipped(Decimal(2), returnable=Decimal(6)) == 0
    assert beyond_shipped(Decimal(6), returnable=Decimal(4)) == 2
    assert beyond_shipped(Decimal(3), returnable=Decimal(-1)) == 3  # nothing left to return


def test_returns_and_returns_to_vendor_keep_the_lot_balanced() -> None:
    # 10 received, 6 shipped, 2 came back, 3 went back to the supplier: 3 on hand.
    flows = LotFlows(
        received=Decimal(10),
        on_hand=Decimal(3),
        consumed=Decimal(0),
        shipped=Decimal(6),
        adjusted=Decimal(0),
        returned=Decimal(2),
        vendor_returned=Decimal(3),
    )
    assert unaccounted(flows) == 0
    assert unaccounted(LotFlows(Decimal(10), Decimal(3), Decimal(0), Decimal(6), Decimal(0))) == 1


def test_stock_that_leaves_unannounced_never_comes_out_of_returns_awaiting_inspection() -> None:
    held_and_pickable = [("MAIN", Decimal(5)), (RETURNS_LOCATION, Decimal(8))]

    assert draw_from_locations(held_and_pickable, Decimal(5)) == [("MAIN", Decimal(5))]
    # Beyond what is pickable, the gap shows as negative stock where goods are picked.
    assert draw_from_locations(held_and_pickable, Decimal(7)) == [("MAIN", Decimal(7))]
    assert draw_from_locations([(RETURNS_LOCATION, Decimal(8))], Decimal(2)) == [
        (RETURNS_LOCATION, Decimal(2))
    ]
