"""The rules of `lottrace check`: each kind of difference is found, and consistent
projections give none."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal

from lottrace.check.compare import (
    Activity,
    CheckReport,
    GroupLag,
    Kind,
    LotFlows,
    LotRecord,
    OutboxState,
    Projections,
    ShipmentLine,
    StockRecord,
    Verdict,
    build_report,
    compare,
    settled,
    stuck_outboxes,
    unaccounted,
)

OJ = LotRecord(uuid.uuid4(), "OJ", "OJ-1", received=Decimal(100), consumed=Decimal(0))
ORANGES = LotRecord(uuid.uuid4(), "ORANGES", "OR-1", received=Decimal(50), consumed=Decimal(10))
SHIPPED = (ShipmentLine("SH-1", OJ.lot_id, Decimal(30)),)
QUIET = Activity(outboxes=(OutboxState("receiving", 0, 0.0),), lags=(), published=7)


def consistent() -> Projections:
    return Projections(
        receiving_lots=(OJ, ORANGES),
        inventory_lots=(OJ, ORANGES),
        recall_lots=(replace(OJ, consumed=Decimal(0)), replace(ORANGES, consumed=Decimal(0))),
        stock=(
            StockRecord(OJ.lot_id, on_hand=Decimal(70), adjusted=Decimal(0)),
            StockRecord(ORANGES.lot_id, on_hand=Decimal(38), adjusted=Decimal(-2)),
        ),
        fulfillment_shipments=SHIPPED,
        inventory_shipments=SHIPPED,
        recall_shipments=SHIPPED,
    )


def kinds(projections: Projections) -> list[tuple[Kind, str, tuple[str, ...]]]:
    return [(d.kind, d.key, d.services) for d in compare(projections)]


def test_consistent_projections_have_no_differences() -> None:
    assert compare(consistent()) == []


def test_every_received_unit_is_on_hand_consumed_or_shipped_give_or_take_adjustments() -> None:
    flows = LotFlows(
        received=Decimal(100),
        on_hand=Decimal(60),
        consumed=Decimal(5),
        shipped=Decimal(30),
        adjusted=Decimal(-5),
    )
    assert unaccounted(flows) == 0
    assert unaccounted(replace(flows, on_hand=Decimal(61))) == -1
    assert unaccounted(replace(flows, adjusted=Decimal(0))) == 5


def test_a_lot_inventory_lacks_or_saw_only_from_a_shipment_is_missing() -> None:
    lacking = replace(consistent(), inventory_lots=(ORANGES,))
    assert kinds(lacking) == [(Kind.LOT_MISSING, str(OJ.lot_id), ("receiving", "inventory"))]
    unreceived = replace(consistent(), recall_lots=(replace(OJ, receipt_seen=False), ORANGES))
    assert kinds(unreceived) == [(Kind.LOT_MISSING, str(OJ.lot_id), ("receiving", "recall"))]


def test_a_received_lot_receiving_does_not_know_is_unknown() -> None:
    stray = LotRecord(uuid.uuid4(), "OJ", "OJ-9", received=Decimal(5))
    found = kinds(replace(consistent(), recall_lots=(*consistent().recall_lots, stray)))
    assert found == [(Kind.LOT_UNKNOWN, str(stray.lot_id), ("receiving", "recall"))]


def test_identity_and_quantities_are_compared_lot_by_lot() -> None:
    renamed = replace(consistent(), recall_lots=(replace(OJ, lot_code="OJ-2"), ORANGES))
    assert kinds(renamed) == [(Kind.LOT_IDENTITY, str(OJ.lot_id), ("receiving", "recall"))]
    more = replace(consistent(), recall_lots=(replace(OJ, received=Decimal(101)), ORANGES))
    assert kinds(more) == [(Kind.RECEIVED_QUANTITY, str(OJ.lot_id), ("receiving", "recall"))]
    used = replace(consistent(), inventory_lots=(OJ, replace(ORANGES, consumed=Decimal(9))))
    assert (Kind.CONSUMED_QUANTITY, str(ORANGES.lot_id), ("receiving", "inventory")) in kinds(used)


def test_stock_that_does_not_balance_names_the_lot_and_the_units_unaccounted() -> None:
    stock = (
        StockRecord(OJ.lot_id, on_hand=Decimal(75), adjusted=Decimal(0)),
        consistent().stock[1],
    )
    differences = compare(replace(consistent(), stock=stock))
    assert [(d.kind, d.key) for d in differences] == [(Kind.LOT_BALANCE, str(OJ.lot_id))]
    assert "OJ-1" in differences[0].detail
    assert "-5 unaccounted" in differences[0].detail


def test_shipments_are_compared_by_presence_and_quantity_per_lot() -> None:
    other = ShipmentLine("SH-2", OJ.lot_id, Decimal(1))
    missing = replace(consistent(), inventory_shipments=())
    assert kinds(missing) == [(Kind.SHIPMENT_MISSING, "SH-1", ("fulfillment", "inventory"))]
    unknown = replace(consistent(), recall_shipments=(*SHIPPED, other))
    assert kinds(unknown) == [(Kind.SHIPMENT_UNKNOWN, "SH-2", ("fulfillment", "recall"))]
    fewer = replace(consistent(), recall_shipments=(replace(SHIPPED[0], quantity=Decimal(29)),))
    assert kinds(fewer) == [(Kind.SHIPMENT_QUANTITY, "SH-1", ("fulfillment", "recall"))]


def test_shipped_quantities_count_in_the_balance() -> None:
    more = (*SHIPPED, ShipmentLine("SH-2", OJ.lot_id, Decimal(3)))
    found = kinds(replace(consistent(), fulfillment_shipments=more))
    assert (Kind.LOT_BALANCE, str(OJ.lot_id), ("receiving", "inventory", "fulfillment")) in found


def test_work_in_flight_is_listed_and_unsettles_the_reading() -> None:
    busy = Activity(
        outboxes=(OutboxState("inventory", 3, 2.0),),
        lags=(GroupLag("recall", "order-shipped", 4), GroupLag("recall", "goods-received", 0)),
        published=7,
    )
    assert not busy.quiet
    assert busy.in_flight() == [
        "inventory outbox: 3 unpublished, oldest 2 s",
        "recall group: lag 4 on order-shipped",
    ]
    assert settled(QUIET, QUIET)
    assert not settled(busy, QUIET)
    assert not settled(QUIET, replace(QUIET, published=8))  # something went by in between


def test_an_outbox_waiting_longer_than_the_limit_is_stuck() -> None:
    old = Activity(outboxes=(OutboxState("fulfillment", 2, 900.0),), lags=(), published=0)
    assert [d.kind for d in stuck_outboxes(old, older_than=300)] == [Kind.OUTBOX_STUCK]
    assert stuck_outboxes(old, older_than=1000) == []


def test_the_verdict_tells_real_differences_from_work_in_flight() -> None:
    def report(projections: Projections, before: Activity) -> CheckReport:
        return build_report(projections, before, QUIET, stuck_after=300)

    busy = replace(QUIET, lags=(GroupLag("recall", "order-shipped", 1),))
    broken = replace(consistent(), inventory_shipments=())
    assert report(consistent(), QUIET).verdict is Verdict.CLEAN
    assert report(consistent(), QUIET).exit_code == 0
    assert report(broken, QUIET).verdict is Verdict.DIFFERENT
    assert report(broken, QUIET).exit_code == 1
    assert report(broken, busy).verdict is Verdict.IN_FLIGHT
    assert report(broken, busy).exit_code == 3
