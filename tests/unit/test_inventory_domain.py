"""Inventory rules: FEFO allocation, backorder reasons, lot status, and which reservations give
way when stock or demand shrinks."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inventory.domain import (
    AllocationResult,
    BackorderReason,
    Block,
    Demand,
    FefoNeed,
    Held,
    LineState,
    LotStatus,
    Reserve,
    StockLot,
    adjustment_problem,
    allocate,
    excess_to_release,
    fefo_key,
    fefo_needs,
    fefo_order,
    in_shipping_order,
    lot_status,
    needs_read_whole,
    ship_from_reservations,
    shrink_reservations,
    still_to_ship,
)
from services.inventory.records import ReservedLot

TODAY = date(2026, 11, 21)
SKU = "OJ-1L"
LOT_NAMESPACE = UUID("6f1c2a34-0000-4000-8000-000000000000")


def lot_id(code: str) -> UUID:
    return uuid5(LOT_NAMESPACE, code)


def lot(
    code: str,
    available: str | Decimal = "10",
    *,
    expiry: date | None = None,
    received: datetime | None = None,
    sku: str = SKU,
    uom: str = "EA",
) -> StockLot:
    return StockLot(
        lot_id=lot_id(code),
        lot_code=code,
        sku=sku,
        uom=uom,
        available=Decimal(available),
        expiry_date=expiry,
        received_at=received,
    )


def demand(
    order_id: str,
    quantity: str | Decimal,
    *,
    line_no: int = 1,
    sku: str = SKU,
    uom: str = "EA",
    shelf_life_days: int = 0,
) -> Demand:
    return Demand(
        order_id=order_id,
        line_no=line_no,
        sku=sku,
        uom=uom,
        quantity=Decimal(quantity),
        min_remaining_shelf_life_days=shelf_life_days,
    )


def in_days(days: int) -> date:
    return TODAY + timedelta(days=days)


def taken(result: AllocationResult, lots: list[StockLot]) -> list[tuple[str, str, Decimal]]:
    """(order, lot code, quantity) per reserve, in the order the allocator made them."""
    codes = {stock.lot_id: stock.lot_code for stock in lots}
    return [(r.order_id, codes[r.lot_id], r.quantity) for r in result.reserves]


def backordered(result: AllocationResult) -> dict[str, tuple[Decimal, BackorderReason]]:
    return {s.order_id: (s.quantity, s.reason) for s in result.shortfalls}


# ------------------------------------------------------------------ what allocation reads


def test_a_batch_needs_each_sku_and_unit_in_total_with_its_strictest_shelf_life() -> None:
    needs = fefo_needs(
        [
            demand("SO-1", "5", shelf_life_days=10),
            demand("SO-2", "7", shelf_life_days=30),
            demand("SO-3", "2", uom="KG"),
            demand("SO-4", "0", sku="OTHER", shelf_life_days=90),
        ],
        today=TODAY,
    )

    assert needs == [
        FefoNeed(SKU, "EA", Decimal(12), in_days(30)),
        FefoNeed(SKU, "KG", Decimal(2), TODAY),
    ]


def test_a_need_the_lots_read_do_not_cover_for_its_strictest_order_is_read_whole() -> None:
    needs = [
        FefoNeed(SKU, "EA", Decimal(12), in_days(30)),
        FefoNeed("OTHER", "EA", Decimal(5), TODAY),
    ]
    lots = [
        lot("SHORT-DATED", "50", expiry=in_days(20)),
        lot("LONG-DATED", "10", expiry=in_days(60)),
        lot("OTHER-1", "5", sku="OTHER"),
        lot("IN-KG", "100", uom="KG", expiry=in_days(90)),
    ]

    assert needs_read_whole(needs, lots) == [FefoNeed(SKU, "EA", None, in_days(30))]
    assert needs_read_whole(needs, [*lots, lot("UNDATED", "2")]) == []


# ------------------------------------------------------------------ FEFO order


def test_the_earliest_expiring_lot_is_allocated_first() -> None:
    lots = [
        lot("LATE", expiry=in_days(90)),
        lot("SOON", expiry=in_days(10)),
        lot("MID", expiry=in_days(30)),
    ]

    result = allocate([demand("SO-1", "4")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "SOON", Decimal(4))]
    assert result.shortfalls == []


def test_lots_expiring_the_same_day_go_out_in_the_order_they_were_received() -> None:
    expiry = in_days(20)
    lots = [
        lot("RECEIVED-LATER", "5", expiry=expiry, received=datetime(2026, 11, 3, 8)),
        lot("RECEIVED-FIRST", "5", expiry=expiry, received=datetime(2026, 11, 1, 8)),
    ]

    result = allocate([demand("SO-1", "7")], lots, today=TODAY)

    assert taken(result, lots) == [
        ("SO-1", "RECEIVED-FIRST", Decimal(5)),
        ("SO-1", "RECEIVED-LATER", Decimal(2)),
    ]


def test_lots_without_expiry_go_last_and_first_received_first_among_themselves() -> None:
    lots = [
        lot("UNDATED-NEW", "3", received=datetime(2026, 11, 20)),
        lot("UNDATED-OLD", "3", received=datetime(2026, 10, 1)),
        lot("DATED", "3", expiry=in_days(400), received=datetime(2026, 11, 21)),
    ]

    result = allocate([demand("SO-1", "9")], lots, today=TODAY)

    assert [code for _, code, _ in taken(result, lots)] == ["DATED", "UNDATED-OLD", "UNDATED-NEW"]
    assert sorted(lots, key=fefo_key) == [lots[2], lots[1], lots[0]]


def test_an_orders_reservations_ship_line_by_line_first_received_first_on_equal_expiry() -> None:
    # What an allocation lists and GET /orders/{id} shows. The two dated lots expire the same
    # day; the one received first has the greater id, so an order by id alone would invert them.
    first, later = sorted((lot_id("EARLY"), lot_id("LATE")), reverse=True)

    def reserved(line_no: int, lot: UUID, received: datetime | None) -> ReservedLot:
        return ReservedLot(
            order_id="SO-1", line_no=line_no, quantity=Decimal(1), location="A-01", lot_id=lot,
            lot_code=str(lot), sku=SKU, uom="EA", expiry_date=in_days(30) if received else None,
            received_at=received, gtin=None,
        )  # fmt: skip

    undated = reserved(1, lot_id("UNDATED"), None)
    received_later = reserved(1, later, datetime(2026, 11, 20))
    received_first = reserved(1, first, datetime(2026, 10, 1))
    second_line = reserved(2, lot_id("OTHER"), datetime(2026, 9, 1))
    given = [second_line, undated, received_later, received_first]

    assert in_shipping_order(given) == [received_first, received_later, undated, second_line]


def test_a_line_is_split_across_lots_when_one_lot_is_short() -> None:
    lots = [lot("A", "4", expiry=in_days(5)), lot("B", "10", expiry=in_days(6))]

    result = allocate([demand("SO-1", "6.5")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "A", Decimal(4)), ("SO-1", "B", Decimal("2.5"))]
    assert result.shortfalls == []


def test_every_unit_is_either_allocated_or_backordered() -> None:
    lots = [lot("A", "3", expiry=in_days(5)), lot("B", "2.25", expiry=in_days(9))]

    result = allocate([demand("SO-1", "8")], lots, today=TODAY)

    assert sum(r.quantity for r in result.reserves) == Decimal("5.25")
    assert backordered(result) == {"SO-1": (Decimal("2.75"), BackorderReason.INSUFFICIENT_STOCK)}


def test_an_earlier_order_takes_scarce_stock_before_a_later_one() -> None:
    lots = [lot("A", "5", expiry=in_days(5))]

    result = allocate([demand("SO-1", "4"), demand("SO-2", "4")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "A", Decimal(4)), ("SO-2", "A", Decimal(1))]
    assert backordered(result) == {"SO-2": (Decimal(3), BackorderReason.INSUFFICIENT_STOCK)}


def test_orders_are_served_in_arrival_order_not_by_their_ids() -> None:
    lots = [lot("A", "5", expiry=in_days(5))]

    result = allocate([demand("SO-9", "5"), demand("SO-1", "5")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-9", "A", Decimal(5))]
    assert backordered(result) == {"SO-1": (Decimal(5), BackorderReason.INSUFFICIENT_STOCK)}


def test_a_later_order_gets_the_next_lot_in_fefo_order_once_the_first_is_used_up() -> None:
    lots = [lot("SOON", "4", expiry=in_days(3)), lot("LATER", "4", expiry=in_days(30))]

    result = allocate([demand("SO-1", "4"), demand("SO-2", "4")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "SOON", Decimal(4)), ("SO-2", "LATER", Decimal(4))]


def test_a_line_with_nothing_left_to_allocate_is_neither_reserved_nor_backordered() -> None:
    result = allocate([demand("SO-1", "0")], [lot("A")], today=TODAY)

    assert result.reserves == []
    assert result.shortfalls == []


# ------------------------------------------------------------------ shelf life and expiry


def test_a_lot_expiring_exactly_on_the_shelf_life_cutoff_is_allocated() -> None:
    lots = [lot("ON-CUTOFF", expiry=in_days(14))]

    result = allocate([demand("SO-1", "2", shelf_life_days=14)], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "ON-CUTOFF", Decimal(2))]


def test_a_lot_expiring_before_the_shelf_life_cutoff_is_skipped_for_a_later_one() -> None:
    lots = [lot("TOO-SHORT", expiry=in_days(13)), lot("LONG-ENOUGH", expiry=in_days(40))]

    result = allocate([demand("SO-1", "2", shelf_life_days=14)], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "LONG-ENOUGH", Decimal(2))]


def test_a_short_dated_lot_still_serves_an_order_without_a_shelf_life_requirement() -> None:
    lots = [lot("TOO-SHORT", expiry=in_days(13))]

    result = allocate(
        [demand("SO-1", "2", shelf_life_days=14), demand("SO-2", "2")], lots, today=TODAY
    )

    assert taken(result, lots) == [("SO-2", "TOO-SHORT", Decimal(2))]
    assert backordered(result) == {"SO-1": (Decimal(2), BackorderReason.SHORT_DATED)}


def test_an_expired_lot_is_never_allocated() -> None:
    lots = [lot("EXPIRED", expiry=in_days(-1)), lot("TODAY", "1", expiry=TODAY)]

    result = allocate([demand("SO-1", "3")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "TODAY", Decimal(1))]
    assert backordered(result) == {"SO-1": (Decimal(2), BackorderReason.INSUFFICIENT_STOCK)}


def test_a_lot_counted_in_another_unit_is_not_allocated() -> None:
    lots = [lot("KILOS", uom="KG", expiry=in_days(1)), lot("EACHES", "1", expiry=in_days(50))]

    result = allocate([demand("SO-1", "1", uom="EA")], lots, today=TODAY)

    assert taken(result, lots) == [("SO-1", "EACHES", Decimal(1))]


# ------------------------------------------------------------------ backorder reasons


@pytest.mark.parametrize(
    ("lots", "demands", "expected"),
    [
        pytest.param(
            [lot("OTHER-SKU", sku="AJ-1L")],
            [demand("SO-1", "2")],
            BackorderReason.NO_STOCK,
            id="no lot of the SKU at all: no_stock",
        ),
        pytest.param(
            [lot("A", "2")],
            [demand("SO-0", "2"), demand("SO-1", "2")],
            BackorderReason.INSUFFICIENT_STOCK,
            id="the SKU's stock went to an earlier order: insufficient_stock",
        ),
        pytest.param(
            [lot("A", "1", expiry=in_days(30)), lot("SHORT", expiry=in_days(2))],
            [demand("SO-1", "3", shelf_life_days=10)],
            BackorderReason.INSUFFICIENT_STOCK,
            id="partly allocated: insufficient_stock even when a short-dated lot was skipped",
        ),
        pytest.param(
            [lot("SHORT", expiry=in_days(2))],
            [demand("SO-1", "3", shelf_life_days=10)],
            BackorderReason.SHORT_DATED,
            id="only lots expiring too soon: short_dated",
        ),
        pytest.param(
            [lot("KILOS", uom="KG")],
            [demand("SO-1", "3")],
            BackorderReason.UOM_MISMATCH,
            id="only lots in another unit: uom_mismatch",
        ),
        pytest.param(
            [lot("KILOS", uom="KG"), lot("SHORT", expiry=in_days(2))],
            [demand("SO-1", "3", shelf_life_days=10)],
            BackorderReason.SHORT_DATED,
            id="short-dated and other-unit lots: short_dated wins",
        ),
    ],
)
def test_a_backorder_says_why_the_line_could_not_be_allocated(
    lots: list[StockLot], demands: list[Demand], expected: BackorderReason
) -> None:
    result = allocate(demands, lots, today=TODAY)

    assert backordered(result)["SO-1"][1] is expected


def test_a_backorder_names_the_order_line_sku_unit_and_missing_quantity() -> None:
    result = allocate(
        [demand("SO-1", "5", line_no=3, uom="KG")], [lot("A", "1.5", uom="KG")], today=TODAY
    )

    (shortfall,) = result.shortfalls
    assert (shortfall.order_id, shortfall.line_no, shortfall.sku, shortfall.uom) == (
        "SO-1",
        3,
        SKU,
        "KG",
    )
    assert shortfall.quantity == Decimal("3.5")


# ------------------------------------------------------------------ lot status


@pytest.mark.parametrize(
    ("recalled", "on_hold", "expiry", "expected"),
    [
        (True, True, in_days(-5), LotStatus.RECALLED),
        (True, False, None, LotStatus.RECALLED),
        (False, True, in_days(-5), LotStatus.QUARANTINED),
        (False, True, None, LotStatus.QUARANTINED),
        (False, False, in_days(-1), LotStatus.EXPIRED),
        (False, False, TODAY, LotStatus.AVAILABLE),
        (False, False, None, LotStatus.AVAILABLE),
    ],
)
def test_recalled_outranks_quarantined_which_outranks_expired(
    recalled: bool, on_hold: bool, expiry: date | None, expected: LotStatus
) -> None:
    stored = [Block.RECALLED] * recalled + [Block.QUARANTINED] * on_hold
    status = lot_status(stored=stored, expiry_date=expiry, today=TODAY)

    assert status is expected


# ------------------------------------------------------------------ giving reservations back


def held(order_id: str, code: str, quantity: str, expiry: date | None) -> Held:
    return Held(order_id, 1, lot_id(code), Decimal(quantity), expiry)


def released(reserves: list[Reserve]) -> list[tuple[UUID, Decimal]]:
    return [(r.lot_id, r.quantity) for r in reserves]


def test_the_excess_of_a_line_shipped_from_another_lot_is_given_back_latest_expiring_first() -> (
    None
):
    reservations = [
        held("SO-1", "SOON", "4", in_days(5)),
        held("SO-1", "LATE", "3", in_days(60)),
        held("SO-1", "MID", "3", in_days(20)),
    ]

    # ordered 10, 5 shipped from an unreserved lot: 10 reserved + 5 shipped is 5 too many
    result = excess_to_release(reservations, ordered=Decimal(10), shipped=Decimal(5))

    assert released(result) == [(lot_id("LATE"), Decimal(3)), (lot_id("MID"), Decimal(2))]
    assert sum(r.quantity for r in result) == Decimal(5)


def test_nothing_is_given_back_when_reserved_and_shipped_fit_the_order() -> None:
    reservations = [held("SO-1", "A", "4", in_days(5))]

    assert excess_to_release(reservations, ordered=Decimal(10), shipped=Decimal(6)) == []


def test_a_reservation_on_a_lot_without_expiry_is_given_back_before_a_dated_one() -> None:
    reservations = [held("SO-1", "DATED", "2", in_days(30)), held("SO-1", "UNDATED", "2", None)]

    result = excess_to_release(reservations, ordered=Decimal(2), shipped=Decimal(0))

    assert released(result) == [(lot_id("UNDATED"), Decimal(2))]


def test_when_a_lot_shrinks_the_latest_orders_give_way_first() -> None:
    reservations = [
        held("SO-1", "A", "4", None),
        held("SO-2", "A", "3", None),
        held("SO-3", "A", "2", None),
    ]

    result = shrink_reservations(reservations, available_for_orders=Decimal(5))

    assert [(r.order_id, r.quantity) for r in result] == [
        ("SO-3", Decimal(2)),
        ("SO-2", Decimal(2)),
    ]


def test_reservations_that_still_fit_a_shrunk_lot_are_kept() -> None:
    reservations = [held("SO-1", "A", "4", None), held("SO-2", "A", "3", None)]

    assert shrink_reservations(reservations, available_for_orders=Decimal(7)) == []


def test_a_lot_counted_below_zero_for_orders_gives_back_every_reservation() -> None:
    reservations = [held("SO-1", "A", "4", None), held("SO-2", "A", "3", None)]

    result = shrink_reservations(reservations, available_for_orders=Decimal(-2))

    assert [(r.order_id, r.quantity) for r in result] == [
        ("SO-2", Decimal(3)),
        ("SO-1", Decimal(4)),
    ]


# ------------------------------------------------------------------ stock levels


def test_an_adjustment_may_not_take_stock_below_zero() -> None:
    problem = adjustment_problem(on_hand=Decimal(5), delta=Decimal("-5.5"))

    assert problem is not None
    assert "-0.5" in problem


def test_an_adjustment_may_take_stock_to_exactly_zero() -> None:
    assert adjustment_problem(on_hand=Decimal(5), delta=Decimal(-5)) is None


def test_a_line_backorders_what_is_neither_shipped_nor_reserved_and_never_a_negative_amount() -> (
    None
):
    def state(ordered: int, shipped: int, reserved: int) -> LineState:
        return LineState(
            "SO-1", 1, SKU, "EA", Decimal(ordered), Decimal(shipped), Decimal(reserved), None
        )

    assert state(10, 3, 4).backordered == Decimal(3)
    assert state(10, 8, 4).backordered == Decimal(0)


# ------------------------------------------------------------------ properties of allocate

SKUS = ("OJ-1L", "AJ-1L")
UOMS = ("EA", "KG")
amounts = st.decimals(
    min_value=Decimal(0), max_value=Decimal(50), places=2, allow_nan=False, allow_infinity=False
)
expiries = st.none() | st.integers(min_value=-60, max_value=60).map(in_days)
# A narrow window so that equal expiry dates and equal receipt times happen often.
receipts = st.none() | st.integers(min_value=0, max_value=5).map(
    lambda day: datetime(2026, 11, 1) + timedelta(days=day)
)


@st.composite
def stock(draw: st.DrawFn) -> list[StockLot]:
    count = draw(st.integers(min_value=0, max_value=8))
    return [
        StockLot(
            lot_id=UUID(int=index + 1),
            lot_code=f"L{index}",
            sku=draw(st.sampled_from(SKUS)),
            uom=draw(st.sampled_from(UOMS)),
            available=draw(amounts),
            expiry_date=draw(expiries),
            received_at=draw(receipts),
        )
        for index in range(count)
    ]


@st.composite
def orders(draw: st.DrawFn) -> list[Demand]:
    count = draw(st.integers(min_value=0, max_value=6))
    return [
        Demand(
            order_id=f"SO-{index}",
            line_no=1,
            sku=draw(st.sampled_from(SKUS)),
            uom=draw(st.sampled_from(UOMS)),
            quantity=draw(amounts),
            min_remaining_shelf_life_days=draw(st.integers(min_value=0, max_value=30)),
        )
        for index in range(count)
    ]


def eligible(stock_lot: StockLot, wanted: Demand) -> bool:
    cutoff = TODAY + timedelta(days=wanted.min_remaining_shelf_life_days)
    return (
        stock_lot.sku == wanted.sku
        and stock_lot.uom == wanted.uom
        and (stock_lot.expiry_date is None or stock_lot.expiry_date >= cutoff)
    )


@settings(max_examples=200, deadline=None)
@given(lots=stock(), demands=orders())
def test_allocation_never_breaks_the_fefo_rules(
    lots: list[StockLot], demands: list[Demand]
) -> None:
    result = allocate(demands, lots, today=TODAY)

    by_id = {stock_lot.lot_id: stock_lot for stock_lot in lots}
    by_order = {wanted.order_id: wanted for wanted in demands}
    per_lot = result.reserved_per_lot()
    left_at_end = {lid: s.available - per_lot.get(lid, Decimal(0)) for lid, s in by_id.items()}
    reserves_of: dict[str, list[Reserve]] = defaultdict(list)
    for reserve in result.reserves:
        reserves_of[reserve.order_id].append(reserve)

    # (e) a reserve is always of a positive quantity
    assert all(reserve.quantity > 0 for reserve in result.reserves)
    # (a) a lot never gives more than it has
    for lid, quantity in per_lot.items():
        assert quantity <= by_id[lid].available
    # (b) only lots of the line's SKU and unit, and not expiring before today + shelf life
    for reserve in result.reserves:
        assert eligible(by_id[reserve.lot_id], by_order[reserve.order_id])
    # (c) every demanded unit is allocated or backordered, exactly
    for wanted in demands:
        allocated = sum((r.quantity for r in reserves_of[wanted.order_id]), Decimal(0))
        short = sum(
            (s.quantity for s in result.shortfalls if s.order_id == wanted.order_id), Decimal(0)
        )
        assert allocated + short == wanted.quantity
        assert all(s.quantity > 0 for s in result.shortfalls)
    # (d) FEFO. Demands are served one after another and later ones only take stock away,
    # so when a demand took from lot B, every lot it could have used that sorts before B was
    # already empty then, and is still empty at the end. A lot eligible for the demand that
    # sorts before B and has stock left at the end was skipped.
    for wanted in demands:
        for reserve in reserves_of[wanted.order_id]:
            taken_from = by_id[reserve.lot_id]
            skipped = [
                s
                for s in lots
                if s.lot_id != taken_from.lot_id
                and eligible(s, wanted)
                and fefo_key(s) < fefo_key(taken_from)
                and left_at_end[s.lot_id] > 0
            ]
            assert skipped == [], f"{wanted.order_id} took {taken_from.lot_code} before {skipped}"
        # within one line the lots are taken in FEFO order, each once
        keys = [fefo_key(by_id[r.lot_id]) for r in reserves_of[wanted.order_id]]
        assert keys == sorted(set(keys))
    # a line is only backordered when every lot it could use is empty
    for shortfall in result.shortfalls:
        wanted = by_order[shortfall.order_id]
        assert all(left_at_end[s.lot_id] <= 0 for s in lots if eligible(s, wanted))


def test_a_shipment_uses_its_reservations_location_by_location_and_reports_the_rest() -> None:
    juice, jam = lot_id("JUICE-1"), lot_id("JAM-1")
    reservations = [
        Reserve("SO-1", 1, juice, Decimal(4), "DOCK-2"),
        Reserve("SO-1", 1, juice, Decimal(3), "DOCK-1"),
        Reserve("SO-2", 1, jam, Decimal(10), "MAIN"),
        Reserve("SO-3", 1, jam, Decimal(5), "MAIN"),  # not shipped: untouched
    ]
    shipped = {("SO-1", 1, juice): Decimal(9), ("SO-2", 1, jam): Decimal(6)}

    used, beyond = ship_from_reservations(reservations, shipped)

    assert used == [
        Reserve("SO-1", 1, juice, Decimal(3), "DOCK-1"),
        Reserve("SO-1", 1, juice, Decimal(4), "DOCK-2"),
        Reserve("SO-2", 1, jam, Decimal(6), "MAIN"),
    ]
    assert beyond == {("SO-1", 1, juice): Decimal(2)}
    assert shipped == {("SO-1", 1, juice): Decimal(9), ("SO-2", 1, jam): Decimal(6)}


def test_a_shipment_with_no_reservation_is_all_beyond_them() -> None:
    juice = lot_id("JUICE-1")
    assert ship_from_reservations([], {("SO-1", 1, juice): Decimal(2)}) == (
        [],
        {("SO-1", 1, juice): Decimal(2)},
    )


def test_every_block_is_a_lot_status_so_a_blocked_lot_shows_why() -> None:
    for block in Block:
        assert lot_status(stored=[block], expiry_date=None, today=TODAY) == LotStatus(block.value)


def test_a_line_short_without_a_recorded_reason_is_short_of_stock() -> None:
    line = LineState("SO-1", 1, SKU, "EA", Decimal(5), Decimal(1), Decimal(2), None)

    shortfall = line.shortfall()

    assert shortfall is not None
    assert shortfall.quantity == Decimal(2)
    assert shortfall.reason is BackorderReason.INSUFFICIENT_STOCK


def test_a_fully_served_line_has_no_shortfall() -> None:
    line = LineState("SO-1", 1, SKU, "EA", Decimal(5), Decimal(1), Decimal(4), "no_stock")

    assert line.shortfall() is None


def test_fefo_order_of_a_lot_is_its_fefo_key() -> None:
    lot = StockLot(uuid5(LOT_NAMESPACE, "A"), "A", SKU, "EA", Decimal(1), TODAY, None, "MAIN")

    # FEFO decides between lots; within a lot, the location rule: least available first.
    by_lot = fefo_order(lot.expiry_date, lot.received_at, lot.lot_id, "MAIN")[:-1]
    assert fefo_key(lot) == (*by_lot, lot.available, "MAIN")


def test_a_new_order_reserves_only_what_did_not_ship_before_it_arrived() -> None:
    demands = [demand("SO-1", "5"), demand("SO-1", "2", line_no=2), demand("SO-2", "4")]
    shipped_first = {("SO-1", 1): Decimal(2), ("SO-1", 2): Decimal(2)}

    left = still_to_ship(demands, shipped_first)

    assert [(d.order_id, d.line_no, d.quantity) for d in left] == [
        ("SO-1", 1, Decimal(3)),
        ("SO-2", 1, Decimal(4)),
    ]
