"""The lot reports' figures (services/inventory/reporting.py), the data-quality rules
(services/recall/quality.py), the report tables (shared/tables.py) and `lottrace report` /
`lottrace doctor` against a stand-in service, without a database."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from lottrace.commands import reports as report_commands
from services.inventory import reporting
from services.inventory.reporting import LotReportFacts, Pace, ReturnedUnits
from services.inventory.schemas import ShortDatedLot
from services.recall import quality
from services.recall.quality import Finding, QualityLot, Tally
from shared.tables import Table, as_csv, as_xlsx
from tests.cli_stand_in import invoke, stand_in

TODAY = date(2026, 12, 6)


def identity(code: str) -> dict[str, Any]:
    """What a test lot's code stands for: its id, its SKU (the code's first part), its supplier."""
    return {
        "lot_id": uuid.uuid5(uuid.NAMESPACE_URL, code),
        "lot_code": code,
        "sku": code.split("-", maxsplit=1)[0],
        "supplier_id": "FARM",
    }


def lot(code: str, **given: Any) -> LotReportFacts:
    values: dict[str, Any] = {
        **identity(code),
        "received_at": datetime(2026, 11, 27, 9, tzinfo=UTC),  # 10 days ago, today included
        "expiry_date": None,
        "blocks": [],
        "qc_state": None,
        "recall_id": None,
        "received_here": Decimal(100),
        "shipped_here": Decimal(0),
        "shipped_before": Decimal(0),
        "on_hand": Decimal(100),
        "sellable": Decimal(100),
        "last_shipped": None,
        "held": False,
    }
    # `received` and `shipped`: through lottrace (the facts' `_here`).
    here = {f"{name}_here": given.pop(name) for name in ("received", "shipped") if name in given}
    return LotReportFacts(**{**values, **here, **given})


def in_days(days: int) -> date:
    return TODAY + timedelta(days=days)


# ------------------------------------------------------------------ the figures


def test_a_lot_expiring_today_can_still_be_sold_today() -> None:
    assert reporting.selling_days(TODAY, TODAY) == 1
    assert reporting.selling_days(in_days(9), TODAY) == 10
    assert reporting.selling_days(in_days(-1), TODAY) == 0


def test_each_lot_sells_after_the_lots_expiring_before_it() -> None:
    # 10 a day: the first lot sells 40 of its 50 in 4 days; the second's 10 days sell 100,
    # of which the first took 40, so 60 of its 80.
    sold = reporting.sold_before_expiry([(Decimal(50), 4), (Decimal(80), 10)], Decimal(10))
    assert sold == [Decimal(40), Decimal(60)]


def test_a_lot_whose_days_the_earlier_lots_already_fill_sells_nothing() -> None:
    sold = reporting.sold_before_expiry([(Decimal(100), 5), (Decimal(20), 5)], Decimal(10))
    assert sold == [Decimal(50), Decimal(0)]


def test_a_sku_that_does_not_sell_sells_nothing_in_time() -> None:
    assert reporting.sold_before_expiry([(Decimal(7), 30)], Decimal(0)) == [Decimal(0)]


def test_sell_through_and_return_rate_are_percentages_to_a_tenth() -> None:
    assert reporting.sell_through_percent(Decimal(1), Decimal(3)) == Decimal("33.3")
    assert reporting.return_rate_percent(Decimal(5), Decimal(40)) == Decimal("12.5")
    assert reporting.return_rate_percent(Decimal(5), Decimal(0)) is None


def test_a_lot_with_stock_is_paced_to_today_and_a_sold_out_one_to_its_last_shipment() -> None:
    selling = lot("A-1", shipped=Decimal(50), on_hand=Decimal(50))
    sold_out = lot("A-2", shipped=Decimal(100), on_hand=Decimal(0), last_shipped=in_days(-5))
    assert reporting.units_per_day(selling, TODAY) == Decimal(5)  # 50 over 10 days
    assert reporting.units_per_day(sold_out, TODAY) == Decimal(20)  # 100 over 5 days


def test_days_of_cover_is_on_hand_over_pace_and_none_for_a_lot_that_does_not_move() -> None:
    assert reporting.days_of_cover(Decimal(50), Decimal(5)) == Decimal(10)
    assert reporting.days_of_cover(Decimal(50), Decimal(0)) is None


def test_a_lot_is_fast_or_slow_against_its_skus_average_pace() -> None:
    assert reporting.pace_of(Decimal(15), Decimal(10)) is Pace.FAST
    assert reporting.pace_of(Decimal(10), Decimal(10)) is Pace.STEADY
    assert reporting.pace_of(Decimal(5), Decimal(10)) is Pace.SLOW
    assert reporting.pace_of(Decimal(0), Decimal(0)) is Pace.SLOW


def test_shelf_life_at_receipt_is_days_from_receipt_to_expiry() -> None:
    assert reporting.shelf_life_days(lot("A-1", expiry_date=date(2026, 12, 27))) == 30
    assert reporting.shelf_life_days(lot("A-1")) is None


# ------------------------------------------------------------------ the reports


def test_the_short_dated_report_leaves_out_held_expired_and_later_lots() -> None:
    lots = [
        lot("OJ-1", expiry_date=in_days(3), sellable=Decimal(50)),
        lot("OJ-2", expiry_date=in_days(9), sellable=Decimal(80)),
        lot("OJ-3", expiry_date=in_days(5), blocks=["quarantined"]),
        lot("OJ-4", expiry_date=in_days(-1)),
        lot("OJ-5", expiry_date=in_days(6), sellable=Decimal(0)),
    ]
    report = reporting.short_dated(
        lots, {"OJ": Decimal(280)}, today=TODAY, within_days=10, sales_days=28
    )
    assert [
        (r.lot_code, r.days_left, r.sells_in_time, r.wont_sell_in_time) for r in report.lots
    ] == [
        ("OJ-1", 4, Decimal(40), Decimal(10)),
        ("OJ-2", 10, Decimal(60), Decimal(20)),
    ]
    assert report.lots[0].daily_sell_rate == Decimal(10)


def test_lot_movement_names_the_fast_and_slow_movers_of_each_sku() -> None:
    lots = [
        lot("OJ-1", shipped=Decimal(90), on_hand=Decimal(10)),  # 9 a day
        lot("OJ-2", shipped=Decimal(20), on_hand=Decimal(80)),  # 2 a day
        lot("OJ-3", shipped=Decimal(40), on_hand=Decimal(60)),  # 4 a day; average 5
        lot("MILK-1", shipped=Decimal(20), on_hand=Decimal(80)),
    ]
    report = reporting.lot_movement(lots, today=TODAY, received_within_days=90)
    movement = {row.lot_code: row for row in report.lots}
    assert movement["OJ-1"].movement == "fast"
    assert movement["OJ-2"].sell_through_percent == Decimal(20)
    assert movement["OJ-2"].days_of_cover == Decimal(40)
    assert movement["OJ-3"].movement == "steady"
    assert movement["MILK-1"].movement == "steady"
    skus = {sku.sku: sku for sku in report.skus}
    assert (skus["OJ"].fast, skus["OJ"].slow, skus["OJ"].average_units_per_day) == (
        ["OJ-1"],
        ["OJ-2"],
        Decimal(5),
    )


def test_returns_are_rated_against_what_shipped_of_the_same_lots() -> None:
    one, two = lot("OJ-1", shipped=Decimal(40)), lot("OJ-2", shipped=Decimal(60), supplier_id=None)
    returned = [
        ReturnedUnits(one.lot_id, "damaged", Decimal(4)),
        ReturnedUnits(one.lot_id, "quality", Decimal(2)),
        ReturnedUnits(two.lot_id, "damaged", Decimal(3)),
    ]
    report = reporting.returns([one, two], returned, today=TODAY, received_within_days=365)
    assert [(g.key, g.sku, g.returned, g.return_rate_percent) for g in report.by_lot] == [
        ("OJ-1", "OJ", Decimal(6), Decimal(15)),
        ("OJ-2", "OJ", Decimal(3), Decimal(5)),
    ]
    assert [(g.key, g.return_rate_percent) for g in report.by_sku] == [("OJ", Decimal(9))]
    assert [g.key for g in report.by_supplier] == ["FARM", None]
    assert [(g.key, g.returned, g.shipped) for g in report.by_reason] == [
        ("damaged", Decimal(7), Decimal(100)),
        ("quality", Decimal(2), Decimal(100)),
    ]


def test_lots_that_share_a_code_under_two_skus_are_rated_apart() -> None:
    jam = lot("B-1", sku="JAM", shipped=Decimal(10))
    tea = lot("B-1", sku="TEA", lot_id=uuid.uuid4(), shipped=Decimal(20))
    returned = [
        ReturnedUnits(jam.lot_id, "damaged", Decimal(1)),
        ReturnedUnits(tea.lot_id, "damaged", Decimal(1)),
    ]
    report = reporting.returns([jam, tea], returned, today=TODAY, received_within_days=365)
    assert sorted((g.sku, g.return_rate_percent) for g in report.by_lot) == [
        ("JAM", Decimal(10)),
        ("TEA", Decimal(5)),
    ]


def test_the_supplier_scorecard_counts_qc_holds_recalls_and_shelf_life() -> None:
    lots = [
        lot("OJ-1", expiry_date=date(2026, 12, 27), qc_state="failed", held=True),
        lot("OJ-2", expiry_date=date(2026, 12, 17), recall_id="RC-1", shipped=Decimal(50)),
        lot("OJ-3", recall_id="RC-1"),
    ]
    returned = [ReturnedUnits(lots[1].lot_id, "quality", Decimal(5))]
    [score] = reporting.supplier_scorecard(
        lots, returned, today=TODAY, received_within_days=365
    ).suppliers
    assert (score.lots, score.units_received, score.qc_failed_lots, score.held_lots) == (
        3,
        Decimal(300),
        1,
        1,
    )
    assert (score.recalls, score.recalled_lots, score.return_rate_percent) == (1, 2, Decimal(10))
    assert score.qc_quarantined_lots == 1
    assert score.average_shelf_life_days_at_receipt == Decimal(25)


def test_a_qc_quarantine_on_receipt_is_counted_apart_from_quality_holds() -> None:
    lots = [
        lot("OJ-1", qc_state="pending"),  # quarantined on receipt, never held
        lot("OJ-2", qc_state="passed", held=True),  # and later held by hand
        lot("OJ-3", held=True),
        lot("OJ-4"),
    ]
    [score] = reporting.supplier_scorecard(
        lots, [], today=TODAY, received_within_days=365
    ).suppliers
    assert (score.qc_quarantined_lots, score.held_lots) == (2, 2)


def test_units_shipped_before_lottrace_count_as_received_and_shipped() -> None:
    # Imported: 40 left on hand (the lots file), 60 shipped before the move (imported
    # shipments): the lot was received 100 and sold 60.
    imported = lot("OJ-1", received=Decimal(40), shipped_before=Decimal(60), on_hand=Decimal(40))
    [row] = reporting.lot_movement([imported], today=TODAY, received_within_days=90).lots
    assert (row.received, row.shipped, row.sell_through_percent) == (
        Decimal(100),
        Decimal(60),
        Decimal(60),
    )
    returned = [ReturnedUnits(imported.lot_id, "damaged", Decimal(3))]
    report = reporting.returns([imported], returned, today=TODAY, received_within_days=365)
    assert report.by_lot[0].return_rate_percent == Decimal(5)


def test_short_dated_takes_lots_for_sale_in_its_window_in_fefo_order() -> None:
    later = datetime(2026, 11, 30, tzinfo=UTC)
    lots = [
        lot("OJ-1", expiry_date=in_days(3)),
        lot("OJ-2", expiry_date=in_days(-1)),  # expired: allocation's rule blocks it
        lot("OJ-3", expiry_date=in_days(1), received_at=later),
        lot("OJ-4", expiry_date=in_days(1)),  # same date, received first: sells first
        lot("OJ-5", expiry_date=in_days(8)),  # beyond the window
    ]
    report = reporting.short_dated(
        lots, {"OJ": Decimal(280)}, today=TODAY, within_days=7, sales_days=28
    )
    # 10 a day: OJ-4's 2 days sell 20; OJ-3's too, all taken by OJ-4; OJ-1's 4 days 40 - 20.
    sold = {row.lot_code: row.sells_in_time for row in report.lots}
    assert sold == {"OJ-4": Decimal(20), "OJ-3": Decimal(0), "OJ-1": Decimal(20)}
    assert reporting.ExpiryWindow.of(TODAY, 7) == reporting.ExpiryWindow(TODAY, in_days(7))


# ------------------------------------------------------------------ tables


def test_a_table_of_models_has_their_fields_as_columns_and_defuses_formulas() -> None:
    row = ShortDatedLot(
        lot_id=uuid.UUID(int=1),
        lot_code="=HYPERLINK(1)",
        sku="OJ",
        expiry_date=TODAY,
        days_left=1,
        on_hand=Decimal("4.50"),
        daily_sell_rate=Decimal(1),
        sells_in_time=Decimal(1),
        wont_sell_in_time=Decimal("3.5"),
    )
    table = Table.of("Short-dated", ShortDatedLot, [row])
    [header, cells] = list(csv.reader(io.StringIO(as_csv(table).decode())))
    assert header == list(ShortDatedLot.model_fields)
    assert cells[1:5] == ["'=HYPERLINK(1)", "OJ", "2026-12-06", "1"]
    assert cells[5] == "4.5"
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx([table])))["Short-dated"]
    assert [cell.value for cell in sheet[1]] == header
    assert (sheet["B2"].value, sheet["F2"].value) == ("=HYPERLINK(1)", 4.5)
    assert sheet["B2"].data_type == "s"


# ------------------------------------------------------------------ data quality


def quality_lot(code: str, **given: Any) -> QualityLot:
    values: dict[str, Any] = {
        **identity(code),
        "supplier_lot_code": "F-77",
        "expiry_date": TODAY,
        "produced": False,
        "inputs_received": [],
    }
    return QualityLot(**{**values, **given})


DATED = {"OJ", "JUICE"}  # SKUs with a lot received with an expiry date


def findings_of(lot: QualityLot) -> list[Finding]:
    return [finding for finding, _ in quality.lot_findings(lot, DATED)]


def test_a_complete_lot_has_no_finding() -> None:
    assert quality.lot_findings(quality_lot("OJ-1"), DATED) == []


def test_an_undated_lot_is_a_finding_only_where_other_lots_of_its_sku_carry_a_date() -> None:
    assert findings_of(quality_lot("OJ-1", expiry_date=None)) == [Finding.MISSING_EXPIRY]
    assert findings_of(quality_lot("SOAP-1", expiry_date=None)) == []


def test_a_purchased_lot_needs_its_supplier_and_their_lot_code_and_a_produced_one_neither() -> None:
    nobody = quality_lot("OJ-1", supplier_id=None, supplier_lot_code=None)
    no_code = quality_lot("OJ-2", supplier_lot_code=None)
    ours = quality_lot("OJ-3", supplier_id=None, supplier_lot_code=None, produced=True)
    assert findings_of(nobody) == [Finding.MISSING_SUPPLIER]
    assert findings_of(no_code) == [Finding.MISSING_SUPPLIER_LOT_CODE]
    assert findings_of(ours) == []


def test_a_production_with_inputs_never_received_is_a_finding() -> None:
    made = quality_lot("JUICE-1", produced=True, inputs_received=[False, True, False])
    assert quality.lot_findings(made, DATED) == [
        (Finding.UNKNOWN_INPUTS, "2 input lot(s) not received")
    ]


def test_missing_key_data_elements_are_named_by_event_type() -> None:
    receipt = {
        "receipt_id": "R-1", "lot_code": "OJ-1", "sku": "OJ", "quantity": 5, "uom": "EA",
        "received_at": datetime(2026, 12, 1, tzinfo=UTC), "location": None,
        "supplier_id": "FARM", "supplier_lot_code": "F-77",
    }  # fmt: skip
    shipment = {
        "shipment_id": "SH-1", "order_id": "SO-1", "lot_code": "OJ-1", "sku": "OJ",
        "quantity": 1, "uom": "EA", "shipped_at": datetime(2026, 12, 2, tzinfo=UTC),
        "customer_id": "C-1", "lot_location": "MAIN", "supplier_id": "FARM",
        "supplier_lot_code": "F-77",
    }  # fmt: skip
    lot_id = uuid.uuid4()
    records = quality.LotRecords({lot_id: [receipt]}, {}, {lot_id: [shipment]})
    rows = records.event_rows(lot_id)
    # Our own lot code (not the supplier's) without a location has no TLC source reference.
    assert quality.missing_kdes(rows) == [
        "Receiving: Event Location (Receive / Transform / Ship-From)",
        "Receiving: TLC Source Reference",
        "Shipping: Ship-To Address",
    ]


def test_the_tally_counts_every_lot_and_keeps_only_the_first_examples() -> None:
    tally = Tally(examples_per_finding=1)
    for code in ("OJ-1", "OJ-2"):
        tally.checked(quality_lot(code, supplier_id=None, supplier_lot_code=None), [])
    tally.checked(quality_lot("OJ-3"), [])
    report = tally.report(datetime(2026, 12, 6, tzinfo=UTC))
    missing = next(f for f in report.findings if f.code == Finding.MISSING_SUPPLIER)
    assert (report.lots_checked, report.clean, missing.count) == (3, False, 2)
    assert [example.lot_code for example in missing.examples] == ["OJ-1"]
    assert Tally().report(datetime(2026, 12, 6, tzinfo=UTC)).clean


def test_a_report_shows_at_most_the_examples_asked_for() -> None:
    tally = Tally()
    for code in ("OJ-1", "OJ-2", "OJ-3"):
        tally.checked(quality_lot(code, supplier_id=None, supplier_lot_code=None), [])
    report = quality.with_examples(tally.report(datetime(2026, 12, 6, tzinfo=UTC)), 2)
    missing = next(f for f in report.findings if f.code == Finding.MISSING_SUPPLIER)
    assert (missing.count, [e.lot_code for e in missing.examples]) == (3, ["OJ-1", "OJ-2"])


def test_the_scheduled_check_is_due_once_most_of_its_interval_has_passed() -> None:
    checked = datetime(2026, 12, 6, 10, tzinfo=UTC)
    every = timedelta(minutes=5)
    assert quality.is_due(None, checked, every)
    assert not quality.is_due(checked, checked + timedelta(minutes=4), every)
    assert quality.is_due(checked, checked + timedelta(minutes=4, seconds=30), every)


# ------------------------------------------------------------------ the CLI


def served(monkeypatch: pytest.MonkeyPatch, answers: dict[str, bytes]) -> list[httpx.Request]:
    """`lottrace report` and `doctor` against a stand-in service answering `answers` by path."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers[request.url.path])

    return stand_in(monkeypatch, answer, report_commands)


run_cli = invoke


def monitor_report(*lots: QualityLot) -> bytes:
    tally = Tally()
    for lot in lots:
        tally.checked(lot, [])
    return tally.report(datetime(2026, 12, 6, tzinfo=UTC)).model_dump_json().encode()


def test_doctor_shows_each_finding_with_its_fix_and_exits_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defect = quality_lot("OJ-9", supplier_id=None, supplier_lot_code=None)
    served(monkeypatch, {"/reports/data-quality": monitor_report(defect)})
    result = run_cli("doctor")
    assert result.exit_code == 3, result.output
    assert "Purchased lots without a supplier (1)" in result.output
    assert "OJ-9" in result.output
    assert "how to fix" in result.output


def test_doctor_exits_0_when_the_records_are_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    served(monkeypatch, {"/reports/data-quality": monitor_report(quality_lot("OJ-1"))})
    result = run_cli("doctor")
    assert result.exit_code == 0, result.output
    assert "1 lots checked at 2026-12-06" in result.output


def test_doctor_refresh_asks_for_a_check_now(monkeypatch: pytest.MonkeyPatch) -> None:
    clean = monitor_report(quality_lot("OJ-1"))
    requests = served(monkeypatch, {"/reports/data-quality/refresh": clean})
    assert run_cli("doctor", "--refresh").exit_code == 0
    assert (requests[0].method, requests[0].url.path) == ("POST", "/reports/data-quality/refresh")


def test_doctor_exits_1_when_the_platform_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    stand_in(monkeypatch, refuse, report_commands)
    assert run_cli("doctor").exit_code == 1


def test_report_asks_for_the_format_and_writes_what_comes_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    requests = served(monkeypatch, {"/reports/short-dated": b"lot_code\r\nOJ-1\r\n"})
    result = run_cli(
        "report", "short-dated", "--days", "7", "--format", "csv", "-o", str(tmp_path / "s.csv")
    )
    assert result.exit_code == 0, result.output
    assert dict(requests[0].url.params) == {"days": "7", "format": "csv"}
    assert (tmp_path / "s.csv").read_bytes() == b"lot_code\r\nOJ-1\r\n"
    assert run_cli("report", "suppliers", "--format", "xlsx").exit_code == 2
    assert run_cli("report", "data-quality", "--days", "3").exit_code == 2
    # The received-in-the-last-N-days reports need a day at least; short-dated takes today.
    assert run_cli("report", "returns", "--days", "0").exit_code == 2
    assert not requests[1:]


def test_report_shows_each_table_without_lot_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    one = lot("OJ-1", expiry_date=TODAY, sellable=Decimal(5))
    report = reporting.short_dated([one], {}, today=TODAY, within_days=7, sales_days=28)
    served(monkeypatch, {"/reports/short-dated": report.model_dump_json().encode()})
    result = run_cli("report", "short-dated")
    assert result.exit_code == 0, result.output
    assert "short-dated: Short-dated" in result.output
    assert "OJ-1" in result.output
    assert str(one.lot_id) not in result.output
