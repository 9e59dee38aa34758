"""The availability rule of the warehouse floor: which status a lot has, which changes are
announced, and which releases are refused."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.inventory.domain import (
    LotState,
    LotStatus,
    QcResult,
    is_announced,
    lot_status,
    release_problem,
    status_changes,
)

TODAY = date(2026, 12, 6)
PAST = TODAY - timedelta(days=1)


@pytest.mark.parametrize(
    ("stored", "expiry", "on_hand", "expected"),
    [
        ((), None, Decimal(5), LotStatus.AVAILABLE),
        (("quarantined", "recalled"), None, Decimal(5), LotStatus.RECALLED),
        (("quarantined", "rejected"), None, Decimal(5), LotStatus.REJECTED),
        (("quarantined",), PAST, Decimal(0), LotStatus.QUARANTINED),
        ((), PAST, Decimal(5), LotStatus.EXPIRED),
        ((), PAST, Decimal(0), LotStatus.DEPLETED),  # an empty lot's expiry is no news
        ((), TODAY, Decimal(0), LotStatus.DEPLETED),
        ((), TODAY, None, LotStatus.AVAILABLE),  # good through its expiry date
    ],
)
def test_a_lot_shows_its_most_serious_block_then_emptiness_then_expiry(
    stored: tuple[str, ...], expiry: date | None, on_hand: Decimal | None, expected: LotStatus
) -> None:
    assert lot_status(stored=stored, expiry_date=expiry, today=TODAY, on_hand=on_hand) == expected


def state(announced: str | None, *, blocks: tuple[str, ...] = (), on_hand: int = 5) -> LotState:
    lot_id = uuid.uuid4()
    return LotState(lot_id, "L-1", "OJ", list(blocks), None, Decimal(on_hand), announced)


def test_only_a_status_other_than_the_one_announced_is_a_change() -> None:
    same, held, first = state("available"), state("available", blocks=("quarantined",)), state(None)
    changes = status_changes([same, held, first], today=TODAY)
    assert [(s.lot_id, status) for s, status in changes] == [
        (held.lot_id, LotStatus.QUARANTINED),
        (first.lot_id, LotStatus.AVAILABLE),
    ]
    assert [is_announced(s) for s, _ in changes] == [True, False]  # the first is recorded only


@pytest.mark.parametrize(
    ("blocks", "qc_state", "qc_result", "refusal"),
    [
        (("quarantined",), None, None, None),
        (("quarantined",), "pending", None, "qc_result_required"),
        (("quarantined",), "pending", QcResult.PASSED, None),
        (("quarantined",), "pending", QcResult.FAILED, None),
        (("rejected",), "failed", QcResult.PASSED, "lot_rejected"),
        (("recalled", "quarantined"), None, QcResult.PASSED, "lot_recalled"),
    ],
)
def test_a_lot_awaiting_qc_needs_its_result_and_a_rejected_or_recalled_lot_stays_blocked(
    blocks: tuple[str, ...], qc_state: str | None, qc_result: QcResult | None, refusal: str | None
) -> None:
    found = release_problem(blocks=blocks, qc_state=qc_state, qc_result=qc_result)
    assert (found[0] if found else None) == refusal
