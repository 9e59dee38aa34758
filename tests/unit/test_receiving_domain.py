"""Receiving rules: how a lot is numbered, when a re-receipt is the same lot, whether input lots
can give what a production receipt consumes, and the lot's blended unit cost."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from services.receiving.domain import (
    DEFAULT_LOT_CODE_PATTERN,
    InputLot,
    InputRequest,
    LotCodeRule,
    LotDates,
    LotNumbering,
    ReceivingError,
    blended_unit_cost,
    check_consumption,
    conflicting_dates,
    merged_dates,
)
from services.receiving.imports import ImportPlan
from services.receiving.schemas import LotImportRow
from shared.contracts.types import Supplier
from shared.runtime.http import STATUS_OF_KIND

RECEIVED = datetime(2026, 11, 21, 9, 30)


def render(
    rule: LotCodeRule,
    *,
    sku: str = "OJ-1L",
    seq: int = 7,
    supplier_lot_code: str | None = None,
    supplier_id: str | None = None,
    gtin: str | None = None,
) -> str:
    return rule.render(
        sku=sku,
        received=RECEIVED,
        seq=seq,
        supplier_lot_code=supplier_lot_code,
        supplier_id=supplier_id,
        gtin=gtin,
    )


# ------------------------------------------------------------------ lot numbering


def test_the_default_rule_numbers_a_lot_by_sku_receipt_day_and_sequence() -> None:
    rule = LotNumbering().rule_for("OJ-1L", None)

    assert rule.pattern == DEFAULT_LOT_CODE_PATTERN
    assert render(rule) == "OJ-1L-20261121-0007"
    assert rule.needs_sequence


def test_a_per_sku_rule_beats_a_per_supplier_rule_which_beats_the_default() -> None:
    numbering = LotNumbering.from_mapping(
        {
            "default": "{sku}-{seq}",
            "skus": {"OJ-1L": "OJ{received:%y%j}{seq:03d}"},
            "suppliers": {"SUP-1": "{supplier_id}-{supplier_lot_code}"},
        }
    )

    assert render(numbering.rule_for("OJ-1L", "SUP-1"), seq=3) == "OJ26325003"
    assert (
        render(numbering.rule_for("AJ-1L", "SUP-1"), supplier_id="SUP-1", supplier_lot_code="B7")
        == "SUP-1-B7"
    )
    assert render(numbering.rule_for("AJ-1L", "SUP-2"), sku="AJ-1L", seq=3) == "AJ-1L-3"
    assert render(numbering.rule_for("AJ-1L", None), sku="AJ-1L", seq=3) == "AJ-1L-3"


def test_rules_that_name_no_default_keep_the_standard_pattern() -> None:
    numbering = LotNumbering.from_mapping({"skus": {"OJ-1L": "{supplier_lot_code}"}})

    assert numbering.rule_for("AJ-1L", None).pattern == DEFAULT_LOT_CODE_PATTERN


def test_a_rule_using_the_suppliers_lot_code_takes_it_as_the_lot_code() -> None:
    rule = LotCodeRule("{supplier_lot_code}")

    assert render(rule, supplier_lot_code="L2611-A") == "L2611-A"
    assert rule.needs_supplier_lot_code
    assert not rule.needs_sequence


@pytest.mark.parametrize("missing", [None, ""])
def test_a_rule_using_the_suppliers_lot_code_refuses_a_receipt_without_one(
    missing: str | None,
) -> None:
    rule = LotCodeRule("{sku}/{supplier_lot_code}")

    with pytest.raises(ReceivingError, match="supplier_lot_code") as refused:
        render(rule, supplier_lot_code=missing)

    assert refused.value.code == "supplier_lot_code_required"
    assert STATUS_OF_KIND[refused.value.kind] == 422


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("{sku}-{batch}", id="unknown field"),
        pytest.param("{sku}-{0}", id="positional field by number"),
        pytest.param("{received.year}", id="attribute of a field"),
        pytest.param("{seq:%Y}", id="date format on the sequence"),
        pytest.param("{sku:05d}", id="number format on the SKU"),
        pytest.param("{sku!z}", id="unknown conversion"),
        pytest.param("{sku", id="unclosed brace"),
    ],
)
def test_an_invalid_pattern_is_refused_when_the_rule_is_made(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"pattern|expected"):
        LotCodeRule(pattern)


def test_a_pattern_with_an_empty_positional_field_is_refused_as_invalid() -> None:
    with pytest.raises(ValueError, match="pattern"):
        LotCodeRule("{sku}-{}")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"default": "{lot}"}, id="bad default"),
        pytest.param({"skus": {"OJ-1L": "{sku:%d}"}}, id="bad per-SKU pattern"),
        pytest.param({"suppliers": {"SUP-1": "{supplier}"}}, id="bad per-supplier pattern"),
        pytest.param({"default": "{sku}", "sku": {"OJ-1L": "{sku}"}}, id="misspelt top-level key"),
    ],
)
def test_a_lot_code_rules_document_with_a_mistake_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"pattern|unknown keys"):
        LotNumbering.from_mapping(document)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"default": None}, id="default: (YAML null)"),
        pytest.param({"default": ""}, id="empty default"),
        pytest.param({"default": "  "}, id="blank default"),
    ],
)
def test_an_empty_default_in_the_rules_document_is_refused_not_made_the_lot_code_none(
    document: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="default must be a non-empty pattern"):
        LotNumbering.from_mapping(document)


def test_a_generated_lot_code_longer_than_64_characters_is_refused() -> None:
    rule = LotCodeRule("{sku}-{seq:04d}")

    assert len(render(rule, sku="S" * 59)) == 64
    with pytest.raises(ReceivingError, match="too long") as refused:
        render(rule, sku="S" * 60)

    assert refused.value.code == "invalid_lot_code"


def test_a_pattern_without_a_sequence_does_not_need_one() -> None:
    rule = LotCodeRule("{gtin}-{received:%Y%m%d}")

    assert not rule.needs_sequence
    assert render(rule, gtin="09501101530003") == "09501101530003-20261121"


# ------------------------------------------------------------------ re-receiving a lot


def test_a_re_receipt_conflicts_on_each_date_both_sides_state_differently() -> None:
    existing = LotDates(date(2026, 11, 1), date(2027, 5, 1), date(2027, 4, 1))
    incoming = LotDates(date(2026, 11, 2), date(2027, 5, 2), date(2027, 4, 1))

    conflicts = conflicting_dates(existing, incoming)

    assert len(conflicts) == 2
    assert "production_date 2026-11-02" in conflicts[0]
    assert "2026-11-01" in conflicts[0]
    assert "expiry_date 2027-05-02" in conflicts[1]
    assert "2027-05-01" in conflicts[1]


def test_a_date_only_one_side_states_is_not_a_conflict() -> None:
    existing = LotDates(expiry_date=date(2027, 5, 1))
    incoming = LotDates(production_date=date(2026, 11, 1), best_before_date=date(2027, 4, 1))

    assert conflicting_dates(existing, incoming) == []
    assert conflicting_dates(incoming, existing) == []


def test_a_re_receipt_fills_in_dates_the_lot_did_not_have_and_keeps_the_ones_it_had() -> None:
    existing = LotDates(expiry_date=date(2027, 5, 1))
    incoming = LotDates(production_date=date(2026, 11, 1), expiry_date=None)

    assert merged_dates(existing, incoming) == LotDates(
        production_date=date(2026, 11, 1), expiry_date=date(2027, 5, 1), best_before_date=None
    )


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (LotDates(date(2026, 11, 2), date(2026, 11, 1)), ["expiry_date is before production_date"]),
        (
            LotDates(date(2026, 11, 2), best_before_date=date(2026, 11, 1)),
            ["best_before_date is before production_date"],
        ),
        (LotDates(date(2026, 11, 1), date(2026, 11, 1), date(2026, 11, 1)), []),
        (LotDates(expiry_date=date(2000, 1, 1)), []),
    ],
)
def test_a_lot_cannot_expire_before_it_was_produced(dates: LotDates, expected: list[str]) -> None:
    assert dates.problems() == expected


# ------------------------------------------------------------------ production inputs

PRODUCED = UUID("0193a6d2-7c1e-7b7e-9a51-000000000001")
APPLES = InputLot(
    lot_id=UUID("0193a6d2-7c1e-7b7e-9a51-000000000002"),
    lot_code="APL-0042",
    sku="APPLE",
    uom="KG",
    available=Decimal("12.5"),
)


def request(
    quantity: str, *, uom: str | None = "KG", lot_id: UUID | None = APPLES.lot_id
) -> InputRequest:
    return InputRequest(
        lot_id=lot_id,
        lot_code=None if lot_id else "APL-0042",
        sku=None if lot_id else "APPLE",
        quantity=Decimal(quantity),
        uom=uom,
    )


def test_an_input_lot_with_enough_stock_may_be_consumed_to_the_last_unit() -> None:
    check_consumption(request("12.5"), APPLES, produced_lot_id=PRODUCED)
    check_consumption(request("3", uom=None), APPLES, produced_lot_id=PRODUCED)


def test_an_unknown_input_lot_is_refused_naming_it() -> None:
    with pytest.raises(ReceivingError, match="APL-0042 of APPLE") as refused:
        check_consumption(request("1", lot_id=None), None, produced_lot_id=PRODUCED)

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("unknown_input_lot", 422)


def test_a_lot_cannot_be_made_from_itself() -> None:
    with pytest.raises(ReceivingError, match="APL-0042") as refused:
        check_consumption(request("1"), APPLES, produced_lot_id=APPLES.lot_id)

    assert refused.value.code == "input_is_output"


def test_an_input_in_another_unit_than_its_lot_is_refused() -> None:
    with pytest.raises(ReceivingError, match="APL-0042 is counted in KG, not EA") as refused:
        check_consumption(request("1", uom="EA"), APPLES, produced_lot_id=PRODUCED)

    assert refused.value.code == "uom_mismatch"


def test_consuming_more_than_an_input_lot_has_is_a_conflict_naming_lot_and_quantities() -> None:
    with pytest.raises(ReceivingError) as refused:
        check_consumption(request("12.51"), APPLES, produced_lot_id=PRODUCED)

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("insufficient_input", 409)
    message = str(refused.value)
    assert "APL-0042" in message
    assert "12.5 KG" in message
    assert "12.51" in message


# ------------------------------------------------------------------ cost


def test_a_re_receipt_blends_the_unit_cost_weighted_by_quantity() -> None:
    cost, currency = blended_unit_cost(
        Decimal("2.00"), "EUR", Decimal(30), Decimal("3.00"), "EUR", Decimal(10)
    )

    assert (cost, currency) == (Decimal("2.25"), "EUR")


def test_a_blended_cost_keeps_six_decimal_places() -> None:
    cost, _ = blended_unit_cost(Decimal(1), "EUR", Decimal(2), Decimal(2), "EUR", Decimal(1))

    assert cost == Decimal("1.333333")


def test_a_re_receipt_in_another_currency_is_a_conflict() -> None:
    with pytest.raises(ReceivingError, match=r"EUR.*USD") as refused:
        blended_unit_cost(Decimal(2), "EUR", Decimal(30), Decimal(3), "USD", Decimal(10))

    assert (refused.value.code, STATUS_OF_KIND[refused.value.kind]) == ("currency_mismatch", 409)


def test_a_re_receipt_without_a_cost_keeps_the_lots_cost() -> None:
    assert blended_unit_cost(Decimal(2), "EUR", Decimal(30), None, None, Decimal(10)) == (
        Decimal(2),
        "EUR",
    )


def test_the_first_cost_given_becomes_the_lots_cost() -> None:
    assert blended_unit_cost(None, None, Decimal(30), Decimal(3), "USD", Decimal(10)) == (
        Decimal(3),
        "USD",
    )


# ------------------------------------------------------------------ onboarding import plan

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def lot_row(
    key: str, on_hand: int, received_at: str = "2026-07-15T00:00:00Z", **more: Any
) -> LotImportRow:
    return LotImportRow.model_validate(
        {"row_key": key, "sku": "OJ-1L", "lot_code": "L-1", "location": "MAIN",
         "on_hand": on_hand, "received_at": received_at, "supplier_id": "GROVE", **more}
    )  # fmt: skip


def test_a_lot_imported_sold_out_is_registered_once_and_receives_nothing() -> None:
    plan = ImportPlan({}, NOW)
    for row in (lot_row("A", 0), lot_row("B", 0, location="COLD"), lot_row("C", 5, location="DRY")):
        plan.take(row)
    [registered] = plan.registrations
    assert (registered.lot_code, registered.location, registered.reason) == (
        "L-1",
        "MAIN",
        "onboarding",
    )
    assert registered.supplier == Supplier(supplier_id="GROVE")
    assert [receipt.event.quantity for receipt in plan.receipts] == [Decimal(5)]  # row C only
    assert [row.receipt_id is None for row in plan.imported] == [True, True, False]


def test_a_sold_out_row_of_a_lot_already_there_announces_nothing() -> None:
    stored = ImportPlan({}, NOW)
    stored.take(lot_row("A", 5))
    plan = ImportPlan({("OJ-1L", "L-1"): stored.lots[("OJ-1L", "L-1")]}, NOW)
    plan.take(lot_row("B", 0, location="COLD"))
    assert (plan.registrations, plan.receipts, plan.rejected) == ([], [], [])


def test_a_lot_received_after_now_is_refused_on_received_at() -> None:
    plan = ImportPlan({}, NOW)
    plan.take(lot_row("A", 5, received_at="2026-12-02T00:00:00Z"))
    assert (plan.imported, plan.registrations, plan.receipts) == ([], [], [])
    assert [(r.row_key, r.column) for r in plan.rejected] == [("A", "received_at")]
    assert "is in the future" in plan.rejected[0].reason
