"""How inventory adds up a batch's changes before it writes them: one row per key, in key
order (the lock order), amounts summed, the latest reason or expiry date named kept."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from services.inventory.records import LineChange, ReceivedStock, StockChange, summed

LOT_A, LOT_B = uuid.UUID(int=1), uuid.UUID(int=2)


def test_stock_changes_add_up_per_lot_and_location_in_lock_order() -> None:
    changes = [
        StockChange(LOT_B, "MAIN", reserved=Decimal(2)),
        StockChange(LOT_A, "MAIN", shipped=Decimal(1), reserved=Decimal(-1)),
        StockChange(LOT_B, "MAIN", reserved=Decimal(3), shipped=Decimal(4)),
        StockChange(LOT_A, "B", received=Decimal(5)),
    ]
    assert summed(changes) == [
        StockChange(LOT_A, "B", received=Decimal(5)),
        StockChange(LOT_A, "MAIN", shipped=Decimal(1), reserved=Decimal(-1)),
        StockChange(LOT_B, "MAIN", reserved=Decimal(5), shipped=Decimal(4)),
    ]


def test_a_line_keeps_the_latest_backorder_reason_set_and_adds_its_amounts() -> None:
    changes = [
        LineChange.backorder("O1", 1, "short_dated"),
        LineChange("O1", 1, reserved=Decimal(2)),
        LineChange.backorder("O1", 1, None),
        LineChange("O1", 1, reserved=Decimal(-1), shipped=Decimal(1)),
        LineChange("O2", 1, reserved=Decimal(3)),
    ]
    assert summed(changes) == [
        LineChange("O1", 1, reserved=Decimal(1), shipped=Decimal(1), sets_reason=True),
        LineChange("O2", 1, reserved=Decimal(3)),
    ]


def test_receipts_of_one_lot_at_one_location_add_up_and_the_latest_expiry_named_wins() -> None:
    def receipt(quantity: int, expiry: date | None) -> ReceivedStock:
        return ReceivedStock(
            LOT_A, "APPLE", "A-1", None, "EA", None, expiry, datetime(2026, 12, 1, tzinfo=UTC),
            None, None, "MAIN", Decimal(quantity),
        )  # fmt: skip

    later = date(2027, 2, 1)
    [total] = summed([receipt(1, date(2027, 1, 1)), receipt(2, later), receipt(3, None)])
    assert (total.quantity, total.expiry_date) == (Decimal(6), later)
