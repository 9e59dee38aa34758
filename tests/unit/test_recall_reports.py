"""Traceability reports: FSMA 204 rows (receiving, transformation per input lot, shipping),
their CSV and XLSX renderings, and the EPCIS 2.0 document of a lot."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

import openpyxl

from services.recall.reports import (
    CUSTOMER_CSV_COLUMNS,
    EPCIS_CONTEXT,
    FSMA_COLUMNS,
    XLSX_SHEET_NAME,
    FsmaColumn,
    FsmaRow,
    customer_csv_row,
    epc_class,
    epcis_document,
    fsma_csv,
    fsma_rows,
    fsma_xlsx,
    tlc_source,
    traceability_lot_code,
)
from shared.tables import csv_safe, csv_text

NAMESPACE = UUID("3a7c1f00-0000-4000-8000-000000000000")
ORANGES_LOT = uuid5(NAMESPACE, "oranges")
SUGAR_LOT = uuid5(NAMESPACE, "sugar")
JUICE_LOT = uuid5(NAMESPACE, "juice")
DAY = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def purchase(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "receipt_id": "R-ORANGES",
        "lot_id": ORANGES_LOT,
        "lot_code": "FARM-LOT-7",
        "sku": "ORANGES",
        "gtin": "9501101530003",
        "quantity": Decimal("100.000"),
        "uom": "KG",
        "received_at": DAY,
        "location": "DOCK-1",
        "lot_location": "DOCK-1",
        "purchase_order": "PO-77",
        "supplier_id": "FARM-A",
        "supplier_name": "Farm A, Valencia",
        "supplier_lot_code": "FARM-LOT-7",
        "production_date": None,
        "expiry_date": date(2026, 12, 10),
        "best_before_date": None,
        "produced": False,
    }
    return {**row, **overrides}


# The juice lot made here, as a production receipt and a shipment of it both describe it.
JUICE_LOT_COLUMNS: dict[str, Any] = {
    "lot_id": JUICE_LOT,
    "lot_code": "OJ-20261120-0001",
    "sku": "OJ-1L",
    "gtin": None,
    "uom": "EA",
    "lot_location": "PLANT",
    "supplier_id": None,
    "supplier_name": None,
    "supplier_lot_code": None,
    "production_date": date(2026, 11, 20),
    "expiry_date": None,
    "best_before_date": date(2027, 1, 20),
    "produced": True,
}


def production(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        **JUICE_LOT_COLUMNS,
        "receipt_id": "R-JUICE",
        "quantity": Decimal("50"),
        "received_at": DAY + timedelta(hours=3),
        "location": "PLANT",
        "purchase_order": None,
    }
    return {**row, **overrides}


def juice_inputs() -> list[dict[str, Any]]:
    return [
        {
            "receipt_id": "R-JUICE",
            "input_lot_id": ORANGES_LOT,
            "input_lot_code": "FARM-LOT-7",
            "input_sku": "ORANGES",
            "input_gtin": "9501101530003",
            "quantity": Decimal("40"),
            "uom": "KG",
        },
        {
            "receipt_id": "R-JUICE",
            "input_lot_id": SUGAR_LOT,
            "input_lot_code": "SUG-1",
            "input_sku": "SUGAR",
            "input_gtin": None,
            "quantity": Decimal("2.5"),
            "uom": "KG",
        },
    ]


def shipment(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        **JUICE_LOT_COLUMNS,
        "shipment_id": "SH-1",
        "line_no": 1,
        "order_id": "SO-1",
        "quantity": Decimal("12"),
        "shipped_at": DAY + timedelta(days=1),
        "customer_id": "ANN",
        "customer_name": "Ann's Grocery",
        "customer_phone": "+34 600 000 000",
        "customer_address": {"line1": "Calle Mayor 1", "city": "Madrid", "country": "ES"},
    }
    return {**row, **overrides}


def story_rows() -> list[FsmaRow]:
    return fsma_rows([production(), purchase()], juice_inputs(), [shipment()])


def assert_cells(row: FsmaRow, expected: Mapping[FsmaColumn, object]) -> None:
    """`row` holds these values in these columns (None: the column is empty)."""
    assert {column: row.get(column) for column in expected} == expected


# ------------------------------------------------------------------ rows


def test_a_purchase_is_one_receiving_row_with_supplier_po_and_date_code() -> None:
    [row] = fsma_rows([purchase()], [], [])
    assert_cells(
        row,
        {
            FsmaColumn.EVENT_TYPE: "Receiving",
            FsmaColumn.TLC: "(01)09501101530003(10)FARM-LOT-7",
            FsmaColumn.LOT_CODE: "FARM-LOT-7",
            FsmaColumn.PRODUCT_DESCRIPTION: "ORANGES",
            FsmaColumn.QUANTITY: Decimal(100),
            FsmaColumn.UNIT_OF_MEASURE: "KG",
            FsmaColumn.EVENT_DATE: date(2026, 11, 20),
            FsmaColumn.EVENT_TIME: time(8, 30),
            FsmaColumn.EVENT_LOCATION: "DOCK-1",
            FsmaColumn.PREVIOUS_SOURCE: "Farm A, Valencia",
            FsmaColumn.PREVIOUS_SOURCE_ID: "FARM-A",
            FsmaColumn.TLC_SOURCE: "Farm A, Valencia",
            FsmaColumn.TLC_SOURCE_REFERENCE: "FARM-A",
            FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Purchase Order",
            FsmaColumn.REFERENCE_DOCUMENT_NUMBER: "PO-77",
            FsmaColumn.DATE_CODE: date(2026, 12, 10),
            FsmaColumn.DATE_CODE_TYPE: "Expiry Date",
            FsmaColumn.INPUT_TLC: None,
            FsmaColumn.RECIPIENT: None,
        },
    )


def test_a_purchase_without_po_references_the_receipt() -> None:
    [row] = fsma_rows([purchase(purchase_order=None)], [], [])
    assert_cells(
        row,
        {
            FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Receipt",
            FsmaColumn.REFERENCE_DOCUMENT_NUMBER: "R-ORANGES",
        },
    )


def test_a_production_receipt_with_two_inputs_is_two_transformation_rows() -> None:
    rows = fsma_rows([production()], juice_inputs(), [])
    assert [row[FsmaColumn.EVENT_TYPE] for row in rows] == ["Transformation"] * 2
    by_input = {row[FsmaColumn.INPUT_LOT_CODE]: row for row in rows}
    assert set(by_input) == {"FARM-LOT-7", "SUG-1"}
    oranges, sugar = by_input["FARM-LOT-7"], by_input["SUG-1"]
    assert_cells(
        oranges,
        {
            FsmaColumn.INPUT_TLC: "(01)09501101530003(10)FARM-LOT-7",
            FsmaColumn.INPUT_PRODUCT_DESCRIPTION: "ORANGES",
            FsmaColumn.INPUT_QUANTITY: Decimal(40),
            FsmaColumn.INPUT_UNIT_OF_MEASURE: "KG",
        },
    )
    assert_cells(sugar, {FsmaColumn.INPUT_TLC: "SUG-1", FsmaColumn.INPUT_QUANTITY: Decimal("2.5")})
    for row in rows:
        assert_cells(
            row,
            {
                FsmaColumn.TLC: "OJ-20261120-0001",
                FsmaColumn.PRODUCT_DESCRIPTION: "OJ-1L",
                FsmaColumn.QUANTITY: Decimal(50),
                FsmaColumn.UNIT_OF_MEASURE: "EA",
                FsmaColumn.EVENT_LOCATION: "PLANT",
                FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Production Receipt",
                FsmaColumn.REFERENCE_DOCUMENT_NUMBER: "R-JUICE",
                FsmaColumn.TLC_SOURCE: "Own facility (PLANT)",
                FsmaColumn.TLC_SOURCE_REFERENCE: "PLANT",
                FsmaColumn.DATE_CODE_TYPE: "Best Before Date",
            },
        )


def test_shipments_are_shipping_rows_with_the_customer_as_ship_to() -> None:
    second_line = shipment(line_no=2, quantity=Decimal(3), customer_address=None)
    rows = fsma_rows([], [], [shipment(), second_line])
    assert [row[FsmaColumn.EVENT_TYPE] for row in rows] == ["Shipping", "Shipping"]
    assert_cells(
        rows[0],
        {
            FsmaColumn.RECIPIENT: "Ann's Grocery",
            FsmaColumn.RECIPIENT_ID: "ANN",
            FsmaColumn.RECIPIENT_ADDRESS: "Calle Mayor 1, Madrid, ES",
            FsmaColumn.RECIPIENT_PHONE: "+34 600 000 000",
            FsmaColumn.EVENT_LOCATION: "PLANT",
            FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Shipment",
            FsmaColumn.REFERENCE_DOCUMENT_NUMBER: "SH-1",
            FsmaColumn.ORDER_NUMBER: "SO-1",
            FsmaColumn.EVENT_DATE: date(2026, 11, 21),
        },
    )
    assert_cells(rows[1], {FsmaColumn.QUANTITY: Decimal(3), FsmaColumn.RECIPIENT_ADDRESS: None})


def test_rows_sort_by_event_date_then_tlc() -> None:
    later_purchase = purchase(receipt_id="R-2", received_at=DAY + timedelta(days=1, hours=5))
    other_lot = purchase(receipt_id="R-3", lot_code="AAA-1", gtin=None, supplier_lot_code=None)
    rows = fsma_rows([later_purchase, production(), other_lot, purchase()], juice_inputs(), [])
    keys = [(row[FsmaColumn.EVENT_DATE], row[FsmaColumn.TLC]) for row in rows]
    assert keys == sorted(keys, key=lambda key: (key[0], str(key[1])))
    assert [row[FsmaColumn.REFERENCE_DOCUMENT_NUMBER] for row in rows] == [
        "PO-77",  # (01)0950... sorts before "AAA-1" and "OJ-..."
        "PO-77",
        "R-JUICE",
        "R-JUICE",
        "PO-77",  # the next day
    ]
    assert rows[1][FsmaColumn.TLC] == "AAA-1"


def test_event_date_and_time_are_utc() -> None:
    late_evening_in_new_york = datetime(2026, 11, 20, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    [row] = fsma_rows([purchase(received_at=late_evening_in_new_york)], [], [])
    assert (row[FsmaColumn.EVENT_DATE], row[FsmaColumn.EVENT_TIME]) == (
        date(2026, 11, 21),
        time(2, 0),
    )


def test_tlc_is_gtin_and_batch_when_the_gtin_is_known_else_the_lot_code() -> None:
    assert traceability_lot_code("09501101530003", "ABC") == "(01)09501101530003(10)ABC"
    assert traceability_lot_code("95011015", "ABC") == "(01)00000095011015(10)ABC"
    assert traceability_lot_code(None, "ABC") == "ABC"


def test_tlc_source_is_the_supplier_for_purchases_and_us_for_produced_or_recoded_lots() -> None:
    assert tlc_source(purchase()) == ("Farm A, Valencia", "FARM-A")
    assert tlc_source(purchase(supplier_lot_code=None, supplier_name=None)) == ("FARM-A", "FARM-A")
    recoded = purchase(lot_code="ORANGES-20261120-0001", supplier_lot_code="FARM-LOT-7")
    assert tlc_source(recoded) == ("Own facility (DOCK-1)", "DOCK-1")
    assert tlc_source(purchase(supplier_id=None, supplier_name=None)) == (
        "Own facility (DOCK-1)",
        "DOCK-1",
    )
    assert tlc_source(production()) == ("Own facility (PLANT)", "PLANT")


# ------------------------------------------------------------------ CSV and XLSX


def test_csv_has_the_fixed_header_and_quotes_per_rfc_4180() -> None:
    tricky = shipment(
        customer_name='Ann "the best", Grocer',
        customer_address={"line1": "Line one\nLine two", "city": "Zürich"},
    )
    text = fsma_csv(fsma_rows([purchase()], [], [tricky]))
    assert text.startswith(",".join(column.value for column in FSMA_COLUMNS) + "\r\n")
    assert '"Ann ""the best"", Grocer"' in text
    assert '"Line one\nLine two, Zürich"' in text
    assert text.endswith("\r\n")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == [column.value for column in FSMA_COLUMNS]
    assert len(parsed) == 3
    header = parsed[0]
    receiving = dict(zip(header, parsed[1], strict=True))
    shipping = dict(zip(header, parsed[2], strict=True))
    assert receiving["Quantity"] == "100"
    assert receiving["Event Date"] == "2026-11-20"
    assert receiving["Event Time (UTC)"] == "08:30:00"
    assert receiving["Date Code"] == "2026-12-10"
    assert shipping["Ship-To (Immediate Subsequent Recipient)"] == 'Ann "the best", Grocer'
    assert shipping["Ship-To Address"] == "Line one\nLine two, Zürich"
    assert shipping["Input TLC"] == ""


def test_cell_text_spells_values_plainly() -> None:
    assert csv_text(Decimal("2.500")) == "2.5"
    assert csv_text(Decimal("1E+2")) == "100"
    assert csv_text(None) == ""
    assert csv_text(time(7, 5, 3, 250_000)) == "07:05:03"


def test_xlsx_reads_back_with_the_same_header_rows_and_real_dates() -> None:
    rows = story_rows()
    workbook = openpyxl.load_workbook(io.BytesIO(fsma_xlsx(rows)))
    assert workbook.sheetnames == [XLSX_SHEET_NAME]
    sheet = workbook[XLSX_SHEET_NAME]
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == [column.value for column in FSMA_COLUMNS]
    assert len(values) == 1 + len(rows)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(FSMA_COLUMNS)).column_letter}5"
    assert sheet.cell(1, 1).font.b
    for row, read in zip(rows, values[1:], strict=True):
        expected: list[object] = []
        for column in FSMA_COLUMNS:
            value = row.get(column)
            if isinstance(value, Decimal):
                expected.append(float(value))
            elif isinstance(value, time):
                expected.append(value)
            elif isinstance(value, date):
                expected.append(datetime(value.year, value.month, value.day))
            else:
                expected.append(value)
        assert list(read) == expected
    date_cell = sheet.cell(2, FSMA_COLUMNS.index(FsmaColumn.EVENT_DATE) + 1)
    assert date_cell.is_date
    assert date_cell.number_format == "yyyy-mm-dd"


def test_xlsx_writes_formula_like_text_as_text() -> None:
    rows = fsma_rows([], [], [shipment(customer_name="=HYPERLINK(1)")])
    sheet = openpyxl.load_workbook(io.BytesIO(fsma_xlsx(rows)))[XLSX_SHEET_NAME]
    cell = sheet.cell(2, FSMA_COLUMNS.index(FsmaColumn.RECIPIENT) + 1)
    assert (cell.value, cell.data_type) == ("=HYPERLINK(1)", "s")


def test_csv_text_a_spreadsheet_would_run_as_a_formula_is_neutralised() -> None:
    rows = fsma_rows([], [], [shipment(customer_name="=HYPERLINK(1)")])
    [_, line] = fsma_csv(rows).splitlines()
    assert "'=HYPERLINK(1)" in line.split(",")
    formulas = ["-2+A1", "@SUM(A1)", "+cmd|x", "=1"]
    assert [csv_safe(text) for text in formulas] == ["'" + text for text in formulas]
    plain = ["ACME", "a=b", "+1 555 0100", "-12.5", "+44 (20) 7946-0958"]
    assert [csv_safe(text) for text in plain] == plain


def test_an_empty_report_is_just_the_header() -> None:
    assert fsma_csv([]).splitlines() == [",".join(column.value for column in FSMA_COLUMNS)]
    sheet = openpyxl.load_workbook(io.BytesIO(fsma_xlsx([])))[XLSX_SHEET_NAME]
    assert sheet.max_row == 1


# ------------------------------------------------------------------ EPCIS


def juice_document() -> dict[str, Any]:
    return epcis_document(
        receipts=[production()],
        inputs=juice_inputs(),
        shipments=[shipment()],
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


def test_epcis_document_envelope() -> None:
    document = juice_document()
    assert document["@context"] == EPCIS_CONTEXT
    assert document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    assert document["creationDate"] == "2026-11-22T00:00:00.000+00:00"
    events = document["epcisBody"]["eventList"]
    assert [(e["type"], e["bizStep"]) for e in events] == [
        ("TransformationEvent", "commissioning"),
        ("ObjectEvent", "shipping"),
    ]


def test_epcis_transformation_lists_inputs_and_output_with_ilmd() -> None:
    transformation = juice_document()["epcisBody"]["eventList"][0]
    assert transformation["inputQuantityList"] == [
        {
            "epcClass": "https://id.gs1.org/01/09501101530003/10/FARM-LOT-7",
            "quantity": 40,
            "uom": "KGM",
        },
        {"epcClass": "urn:lottrace:class:SUGAR:SUG-1", "quantity": 2.5, "uom": "KGM"},
    ]
    assert transformation["outputQuantityList"] == [
        {"epcClass": "urn:lottrace:class:OJ-1L:OJ-20261120-0001", "quantity": 50, "uom": "EA"}
    ]
    assert transformation["disposition"] == "active"
    assert transformation["eventTime"] == "2026-11-20T11:30:00.000+00:00"
    assert transformation["eventTimeZoneOffset"] == "+00:00"
    assert transformation["bizLocation"] == {"id": "urn:lottrace:location:PLANT"}
    assert transformation["ilmd"] == {
        "cbvmda:lotNumber": "OJ-20261120-0001",
        "cbvmda:bestBeforeDate": "2027-01-20",
        "cbvmda:productionDate": "2026-11-20",
    }


def test_epcis_shipping_is_observe_in_transit_to_the_customer() -> None:
    shipping = juice_document()["epcisBody"]["eventList"][1]
    assert shipping["action"] == "OBSERVE"
    assert shipping["disposition"] == "in_transit"
    assert shipping["quantityList"] == [
        {"epcClass": "urn:lottrace:class:OJ-1L:OJ-20261120-0001", "quantity": 12, "uom": "EA"}
    ]
    assert shipping["destinationList"] == [
        {"type": "owning_party", "destination": "urn:lottrace:party:customer:ANN"}
    ]
    assert shipping["sourceList"] == [{"type": "location", "source": "urn:lottrace:location:PLANT"}]
    assert {t["type"]: t["bizTransaction"] for t in shipping["bizTransactionList"]} == {
        "desadv": "urn:lottrace:shipment:SH-1",
        "po": "urn:lottrace:order:SO-1",
    }
    assert "bizLocation" not in shipping
    assert "ilmd" not in shipping  # ILMD belongs to ADD events only


def test_epcis_receiving_is_add_with_po_supplier_and_lot_master_data() -> None:
    document = epcis_document(
        receipts=[purchase(), production()],
        inputs=juice_inputs(),
        shipments=[],
        created_at=DAY,
    )
    receiving, transformation = document["epcisBody"]["eventList"]
    assert (receiving["type"], receiving["action"], receiving["bizStep"]) == (
        "ObjectEvent",
        "ADD",
        "receiving",
    )
    assert receiving["disposition"] == "in_progress"
    assert receiving["quantityList"] == [
        {
            "epcClass": "https://id.gs1.org/01/09501101530003/10/FARM-LOT-7",
            "quantity": 100,
            "uom": "KGM",
        }
    ]
    assert receiving["bizTransactionList"] == [
        {"type": "po", "bizTransaction": "urn:lottrace:po:PO-77"}
    ]
    assert receiving["sourceList"] == [
        {"type": "owning_party", "source": "urn:lottrace:party:supplier:FARM-A"}
    ]
    assert receiving["readPoint"] == {"id": "urn:lottrace:location:DOCK-1"}
    assert receiving["ilmd"] == {
        "cbvmda:lotNumber": "FARM-LOT-7",
        "cbvmda:itemExpirationDate": "2026-12-10",
    }
    # The oranges' document also shows the juice made from them.
    assert transformation["type"] == "TransformationEvent"


def test_epcis_event_ids_are_stable_and_distinct() -> None:
    first = [e["eventID"] for e in juice_document()["epcisBody"]["eventList"]]
    again = [e["eventID"] for e in juice_document()["epcisBody"]["eventList"]]
    assert first == again
    assert len(set(first)) == len(first)
    assert all(UUID(event_id.removeprefix("urn:uuid:")).version == 5 for event_id in first)


def test_epc_class_quotes_its_components() -> None:
    assert epc_class("OJ 1L", "A/B:1", None) == "urn:lottrace:class:OJ%201L:A%2FB%3A1"
    assert epc_class("X", "LOT 1", "95011015") == "https://id.gs1.org/01/00000095011015/10/LOT%201"


def test_a_customers_csv_row_is_one_cell_per_column_formula_safe_with_its_late_flag() -> None:
    line = {
        "customer_id": "CUST-1",
        "name": '=HYPERLINK("http://evil.example")',
        "email": "a@b.example",
        "phone": "+1 555 0101",
        "address": {"line1": "12 Elm St", "city": "Springfield", "postal_code": "01101"},
        "shipment_id": "SH-1",
        "order_id": "SO-1",
        "shipped_at": datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
        "sku": "OJ-1L",
        "lot_id": "0193a6f0-0000-7000-8000-000000000001",
        "lot_code": "-1L",
        "quantity": Decimal("12"),
        "uom": "EA",
        "late": True,
    }
    row = customer_csv_row(line)
    assert len(row) == len(CUSTOMER_CSV_COLUMNS)
    cells = dict(zip(CUSTOMER_CSV_COLUMNS, row, strict=True))
    assert cells["name"] == '\'=HYPERLINK("http://evil.example")'
    assert cells["lot_code"] == "'-1L"
    assert cells["phone"] == "+1 555 0101"  # a phone number stays as written
    assert cells["quantity"] == "12"
    assert cells["shipped_at"] == "2026-11-21T09:30:00+00:00"
    assert cells["late"] == "yes"
    assert customer_csv_row({**line, "late": False})[-1] == "no"
