"""The recall loop's rules: the FDA check sample, where a customer's units are, who is due a
reminder, which lot reported units name, and which recalls a return counts for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from services.recall.domain import (
    ZERO,
    ResponseRefused,
    UnitFigures,
    check_level_of,
    check_sample,
    refuse_below_target,
    reminder_due,
    reported_lot,
    return_recalls,
    sample_size,
    target_of,
    unit_figures,
)
from services.recall.records import CustomerStanding, LotUnits, RecallLotRef
from shared.contracts.events import ReportedUnits
from shared.errors import Conflict

BRIE = UUID("0193a6d2-0001-7000-8000-000000000001")
BRIE_TOO = UUID("0193a6d2-0002-7000-8000-000000000002")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def standing(**given: object) -> CustomerStanding:
    values: dict[str, object] = {
        "customer_id": "C1", "name": None, "notified": True, "reached": False, "bounced": False,
        "acknowledged": False, "returned": False, "reminders": 0,
        "last_contact_at": NOW - timedelta(hours=49),
    }  # fmt: skip
    return CustomerStanding(**{**values, **given})  # type: ignore[arg-type]


def test_the_check_sample_is_the_same_on_every_read_and_sized_by_the_level() -> None:
    customers = [f"C{n}" for n in range(1000)]
    sample = check_sample("R1", customers, "C")
    assert len(sample) == sample_size("C", 1000) == 100
    assert check_sample("R1", reversed(customers), "C") == sample
    assert check_sample("R2", customers, "C") != sample  # another recall, another draw
    assert check_sample("R1", customers, "A") == sorted(customers)
    assert check_sample("R1", customers, "E") == []


def test_units_returned_destroyed_and_on_hand_leave_the_rest_unaccounted() -> None:
    units = LotUnits(BRIE, Decimal(10), Decimal(3), Decimal(5), Decimal(2), Decimal(1))
    figures = unit_figures(units)
    # The customer says 5 went back though 3 arrived: 2 are in transit, counted returned.
    assert (figures.returned, figures.unaccounted, figures.recovered) == tuple(
        map(Decimal, (5, 2, 7))
    )


def test_recovered_units_never_exceed_what_was_shipped() -> None:
    units = LotUnits(BRIE, Decimal(10), Decimal(8), None, Decimal(6), None)
    figures = unit_figures(units)
    assert (figures.recovered, figures.unaccounted, figures.percent) == tuple(
        map(Decimal, (10, 0, 100))
    )


def test_a_reminder_is_due_to_the_silent_after_the_delay_up_to_the_most() -> None:
    delay = timedelta(hours=48)
    assert reminder_due(standing(), now=NOW, delay=delay, most=2) == 1
    assert reminder_due(standing(reminders=1), now=NOW, delay=delay, most=2) == 2
    assert reminder_due(standing(reminders=2), now=NOW, delay=delay, most=2) is None
    assert reminder_due(standing(acknowledged=True), now=NOW, delay=delay, most=2) is None
    assert reminder_due(standing(returned=True), now=NOW, delay=delay, most=2) is None
    recent = standing(last_contact_at=NOW - timedelta(hours=47))
    assert reminder_due(recent, now=NOW, delay=delay, most=2) is None


def test_reported_units_must_name_one_lot_of_the_recall() -> None:
    lots = [RecallLotRef("R1", BRIE, "BRIE-1", "BRIE"), RecallLotRef("R1", BRIE_TOO, "BRIE-1", "X")]
    assert reported_lot(ReportedUnits(lot_id=BRIE, destroyed=1), lots).lot_id == BRIE
    with pytest.raises(ResponseRefused) as ambiguous:
        reported_lot(ReportedUnits(lot_code="BRIE-1", destroyed=1), lots)
    assert ambiguous.value.code == "lot_ambiguous"
    with pytest.raises(ResponseRefused) as outside:
        reported_lot(ReportedUnits(lot_code="CAMEMBERT-1", destroyed=1), lots)
    assert outside.value.code == "lot_not_in_recall"


def test_a_return_counts_for_the_recall_it_names_or_else_the_open_ones() -> None:
    recalls = [("R1", "closed"), ("R2", "open"), ("R3", "open")]
    assert return_recalls("R1", recalls) == ["R1"]
    assert return_recalls(None, recalls) == ["R2", "R3"]
    assert return_recalls("R9", recalls) == []


def test_close_below_target_needs_a_reason() -> None:
    refuse_below_target(Decimal(95), Decimal(95), override=None)
    refuse_below_target(Decimal(10), Decimal(95), override="agreed with FDA")
    with pytest.raises(Conflict) as refused:
        refuse_below_target(Decimal("94.9"), Decimal(95), override=None)
    assert refused.value.code == "below_target"


def test_a_class_i_recall_nine_units_short_in_20000_is_below_its_100_percent_target() -> None:
    figures = UnitFigures(Decimal(20_000), Decimal(19_991), ZERO, ZERO, Decimal(9), Decimal(19_991))

    assert figures.percent == Decimal("99.9")  # shown rounded down, never up to 100
    with pytest.raises(Conflict):
        refuse_below_target(figures.exact_percent, Decimal(100), override=None)


def test_an_on_hand_count_followed_by_returns_leaves_nothing_unaccounted() -> None:
    lot = UUID("0193a6c0-1a2b-7c3d-8e4f-000000000009")
    # Reported 10 on hand, then sent all 10 back without reporting on hand again.
    figures = unit_figures(LotUnits(lot, Decimal(10), Decimal(10), None, None, Decimal(10)))

    assert (figures.returned, figures.on_hand, figures.unaccounted) == (Decimal(10), ZERO, ZERO)
    assert figures.percent == Decimal(100)


@pytest.mark.parametrize(
    ("classification", "level", "target"), [("I", "A", 100), ("II", "B", 95), ("III", "D", 90)]
)
def test_a_recall_without_a_chosen_level_or_target_takes_its_class_defaults(
    classification: str, level: str, target: int
) -> None:
    assert check_level_of(classification, None) == level
    assert target_of(classification, None) == Decimal(target)
    assert (check_level_of(classification, "C"), target_of(classification, Decimal(80))) == (
        "C",
        Decimal(80),
    )
