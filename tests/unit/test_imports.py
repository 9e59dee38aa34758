"""Onboarding files as `lottrace import` reads them: CSV and XLSX, the header refused whole,
each bad row refused with its line, column and reason, and the good rows kept."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import xlsxwriter
from typer.testing import CliRunner

from lottrace.commands import app
from lottrace.imports.formats import FORMATS, FileKind
from lottrace.imports.readers import FileError, read_table
from lottrace.imports.rejects import Rejection, write_rejects
from lottrace.imports.upload import with_lots
from lottrace.imports.validation import Checked, FileRow, check_table
from services.receiving.schemas import FoundLot

SAMPLES = Path(__file__).parents[2] / "docs" / "samples"
LOTS_HEADER = "row_key,sku,lot_code,location,on_hand,received_at,expiry_date"


def checked(path: Path, kind: FileKind) -> Checked[Any]:
    return check_table(read_table(path), FORMATS[kind])


def lots_file(tmp_path: Path, *lines: str, raw: bytes = b"") -> Path:
    path = tmp_path / "lots.csv"
    path.write_bytes(raw + "\n".join([LOTS_HEADER, *lines]).encode() + b"\n")
    return path


def test_the_sample_files_are_read_whole() -> None:
    lots = checked(SAMPLES / "lots.csv", FileKind.LOTS)
    shipments = checked(SAMPLES / "shipments.csv", FileKind.SHIPMENTS)
    assert (len(lots.rows), lots.rejected) == (6, [])
    assert (len(shipments.rows), shipments.rejected) == (5, [])
    first = next(iter(lots.rows)).row
    assert first.received_at == datetime(2026, 9, 1, tzinfo=UTC)  # a date alone: midnight UTC
    assert (first.on_hand, first.currency, first.gtin) == (Decimal(240), "EUR", "09501101530003")


def test_each_bad_row_is_refused_with_its_line_column_and_reason(tmp_path: Path) -> None:
    path = lots_file(
        tmp_path,
        "A,OJ-1L,L1,MAIN,10,2026-01-05,2027-01-01",
        "B,OJ-1L,L2,MAIN,-3,2026-01-05,2025-02-30",
        "C,OJ-1L,L3,MAIN,4,2026-01-05,",
        "A,OJ-1L,L4,MAIN,5,2026-01-05,",
        ",,,MAIN,5,,",
        "",
        "E,OJ-1L,L5,MAIN,6,yesterday,",
    )
    result = checked(path, FileKind.LOTS)
    assert [item.row.key for item in result.rows] == ["C"]
    assert result.rejected == [
        Rejection(2, "row_key", "row key A is on lines 2, 5: give each row its own row_key"),
        Rejection(3, "expiry_date", "2025-02-30 is not a date (YYYY-MM-DD) or date and time"),
        Rejection(3, "on_hand", "must be at least 0, not -3"),
        Rejection(5, "row_key", "row key A is on lines 2, 5: give each row its own row_key"),
        Rejection(6, "lot_code", "required"),
        Rejection(6, "received_at", "required"),
        Rejection(6, "sku", "required"),
        Rejection(8, "received_at", "yesterday is not a date (YYYY-MM-DD) or date and time"),
    ]


def test_a_row_in_another_encoding_is_refused_and_the_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "lots.csv"
    path.write_bytes(
        f"{LOTS_HEADER},supplier_name,supplier_id\n".encode()
        + b"A,OJ-1L,L1,MAIN,10,2026-01-05,,Caf\xe9 Grove,GROVE\n"
        + "B,OJ-1L,L2,MAIN,10,2026-01-05,,Café Grove,GROVE\n".encode()
    )
    result = checked(path, FileKind.LOTS)
    assert [item.row.supplier_name for item in result.rows] == ["Café Grove"]
    assert result.rejected == [
        Rejection(2, "supplier_name", "not UTF-8 text: save the file as CSV UTF-8")
    ]


def test_the_good_rows_are_checked_again_each_time_they_are_read(tmp_path: Path) -> None:
    path = tmp_path / "lots.csv"
    path.write_text(
        "row_key,sku,lot_code,location,on_hand,received_at\n"
        "A,OJ-1L,L1,MAIN,5,2026-01-05\nB,OJ-1L,L2,MAIN,-1,2026-01-05\n"
        "C,OJ-1L,L3,MAIN,7,2026-01-05\n"
    )
    rows = checked(path, FileKind.LOTS).rows
    assert len(rows) == 2
    assert [item.row.key for item in rows] == ["A", "C"]
    assert [item.line for item in rows] == [2, 4], "read a second time, in file order"


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = lots_file(tmp_path, "A,OJ-1L,L1,MAIN,10,2026-01-05,", raw=b"\xef\xbb\xbf")
    assert [item.row.key for item in checked(path, FileKind.LOTS).rows] == ["A"]


def test_without_a_row_key_the_lot_at_its_location_is_the_key(tmp_path: Path) -> None:
    path = tmp_path / "lots.csv"
    path.write_text("sku,lot_code,location,on_hand,received_at\nOJ-1L,L1,COLD,3,2026-01-05\n")
    assert [item.row.key for item in checked(path, FileKind.LOTS).rows] == ["OJ-1L/L1/COLD"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "sku,lot_code,location,on_hand,received_at,colour,Weight",
            "unknown columns: colour, weight (a lots file has: row_key, sku,",
        ),
        ("sku,lot_code,on_hand", "missing required columns: location, received_at"),
    ],
)
def test_a_header_the_format_does_not_fit_refuses_the_file(
    tmp_path: Path, header: str, message: str
) -> None:
    path = tmp_path / "lots.csv"
    path.write_text(header + "\n")
    with pytest.raises(FileError, match=message.replace("(", r"\(")):
        checked(path, FileKind.LOTS)


def test_a_utf16_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "lots.csv"
    path.write_bytes((LOTS_HEADER + "\n").encode("utf-16"))
    with pytest.raises(FileError, match="UTF-16: save it as CSV UTF-8"):
        checked(path, FileKind.LOTS)


def test_an_xlsx_file_reads_as_its_csv_does(tmp_path: Path) -> None:
    path = tmp_path / "lots.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["Row_Key", "sku", "lot_code", "location", "on_hand", "received_at"])
    sheet.write_row(1, 0, ["A", "OJ-1L", "L1", "MAIN", 12])
    sheet.write_datetime(1, 5, datetime(2026, 1, 5), day)
    sheet.write_row(2, 0, ["B", "OJ-1L", "L2", "MAIN", -1])
    sheet.write_datetime(2, 5, datetime(2026, 1, 5, 9, 30), day)
    book.close()
    result = checked(path, FileKind.LOTS)
    first = list(result.rows)
    assert [(r.line, r.row.on_hand, r.row.received_at) for r in first] == [
        (2, Decimal(12), datetime(2026, 1, 5, tzinfo=UTC))
    ]
    assert result.rejected == [Rejection(3, "on_hand", "must be at least 0, not -1")]
    assert list(result.rows) == first != [], "the sheet reads the same a second time"


def test_a_shipment_of_a_lot_the_platform_lacks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shipments.csv"
    path.write_text(
        "order_id,customer_id,shipped_at,sku,lot_code,quantity,uom\n"
        "SO-1,C1,2026-02-01,OJ-1L,L1,5,\n"
        "SO-2,C1,2026-02-01,OJ-1L,NOPE,5,\n"
        "SO-3,C1,2026-02-01,OJ-1L,L1,5,KG\n"
    )
    rows: list[FileRow[Any]] = list(checked(path, FileKind.SHIPMENTS).rows)
    lot = FoundLot(sku="OJ-1L", lot_code="L1", lot_id=uuid4(), uom="EA")
    resolved, rejected = with_lots(rows, {("OJ-1L", "L1"): lot})
    assert [(item.line, item.row.lot_id, item.row.uom) for item in resolved] == [
        (2, lot.lot_id, "EA")
    ]
    assert resolved[0].row.key == "SO-1/1/OJ-1L/L1"
    assert rejected == [
        Rejection(
            3, "lot_code", "no lot NOPE of OJ-1L on the platform: import it in a lots file first"
        ),
        Rejection(4, "uom", "lot L1 of OJ-1L is counted in EA, not KG"),
    ]


def test_the_rejects_file_lists_line_column_reason(tmp_path: Path) -> None:
    out = tmp_path / "rejects.csv"
    write_rejects(
        out, [Rejection(7, "on_hand", "must be at least 0, not -1"), Rejection(3, "", "x")]
    )
    assert out.read_text().splitlines() == [
        "line,column,reason",
        "3,,x",
        '7,on_hand,"must be at least 0, not -1"',
    ]


def test_dates_keep_their_day(tmp_path: Path) -> None:
    path = lots_file(tmp_path, "A,OJ-1L,L1,MAIN,10,2026-01-05T23:30:00-05:00,2027-01-31")
    row = next(iter(checked(path, FileKind.LOTS).rows)).row
    assert (row.received_at, row.expiry_date) == (
        datetime(2026, 1, 6, 4, 30, tzinfo=UTC),
        date(2027, 1, 31),
    )


# ---------------------------------------------------------------------- the command


def invoke(*args: str) -> Any:
    # No platform listens on port 9: reaching it is exit 1 (unreachable), not 2.
    return CliRunner().invoke(
        app,
        ["import", *args, "--receiving-url", "http://127.0.0.1:9"],
        env={"COLUMNS": "200", "LOTTRACE_API_KEY": "k"},
    )


def test_a_refused_file_exits_2_before_reaching_the_platform(tmp_path: Path) -> None:
    path = tmp_path / "lots.csv"
    path.write_text("sku,lot_code,location,on_hand,received_at,colour\n")
    result = invoke("lots", str(path))
    assert result.exit_code == 2
    assert "unknown columns: colour" in result.stderr


def test_an_unreachable_platform_exits_1_having_checked_the_file(tmp_path: Path) -> None:
    path = lots_file(tmp_path, "A,OJ-1L,L1,MAIN,10,2026-01-05,")
    result = invoke("lots", str(path))
    assert result.exit_code == 1
    assert "cannot reach receiving at http://127.0.0.1:9" in result.stderr


def test_a_value_in_a_column_without_a_name_refuses_its_row(tmp_path: Path) -> None:
    path = lots_file(
        tmp_path, "A,OJ-1L,L1,MAIN,10,2026-01-05,,", "B,OJ-1L,L2,MAIN,10,2026-01-05,,9"
    )
    result = checked(path, FileKind.LOTS)
    assert [item.row.key for item in result.rows] == ["A"]
    assert result.rejected == [Rejection(3, "", "a value in a column without a name in the header")]


def test_a_derived_row_key_too_long_refuses_its_row_at_the_file_check(tmp_path: Path) -> None:
    long_code = "L" * 60
    lots = lots_file(
        tmp_path,
        f",{'S' * 40},{long_code},MAIN,1,2026-01-05,",
        f"K,OJ-1L,{long_code},MAIN,1,2026-01-05,",
    )
    shipments = tmp_path / "shipments.csv"
    shipments.write_text(
        "order_id,customer_id,shipped_at,sku,lot_code,quantity\n"
        f"SO-1,C1,2026-02-01,{'S' * 40},{long_code},5\n"
    )
    reason = "the derived row key is longer than 100 characters: give a row_key"
    lots_checked = checked(lots, FileKind.LOTS)
    assert [item.row.key for item in lots_checked.rows] == ["K"]
    assert lots_checked.rejected == [Rejection(2, "row_key", reason)]
    assert checked(shipments, FileKind.SHIPMENTS).rejected == [Rejection(2, "row_key", reason)]


def test_the_ship_to_columns_are_the_customers_address(tmp_path: Path) -> None:
    path = tmp_path / "shipments.csv"
    path.write_text(
        "order_id,customer_id,shipped_at,sku,lot_code,quantity,ship_to_line1,ship_to_city,"
        "ship_to_postal_code,ship_to_country\n"
        "SO-1,C1,2026-02-01,OJ-1L,L1,5,1 Rue de la Paix,Paris,75002,FR\n"
        "SO-2,C1,2026-02-01,OJ-1L,L1,5,,,,\n"
    )
    first, second = [item.row for item in checked(path, FileKind.SHIPMENTS).rows]
    assert first.customer.address is not None
    assert first.customer.address.model_dump(exclude_none=True) == {
        "line1": "1 Rue de la Paix",
        "city": "Paris",
        "postal_code": "75002",
        "country": "FR",
    }
    assert second.customer.address is None


class RefusingPlatform(BaseHTTPRequestHandler):
    """A receiving that refuses every batch with 422, as for a row the file check let through."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = json.dumps({"error": "validation_error", "detail": "rows.0.row_key: too long"})
        self.send_response(422)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_a_batch_the_platform_refuses_exits_1_with_its_message(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingPlatform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = lots_file(tmp_path, "A,OJ-1L,L1,MAIN,10,2026-01-05,")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(
            app,
            ["import", "lots", str(path), "--receiving-url", url],
            env={"COLUMNS": "200", "LOTTRACE_API_KEY": "k"},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert "422 validation_error: rows.0.row_key: too long" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_row_the_wire_refuses_is_a_rejected_row_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "shipments.csv"
    path.write_text(
        "order_id,customer_id,shipped_at,sku,lot_code,quantity\nSO-1,C1,2026-02-01,OJ-1L,L1,5\n"
    )
    [item] = list(checked(path, FileKind.SHIPMENTS).rows)
    # What the file check would have refused, as a row changed since (or a check missed).
    spoilt = FileRow(item.line, item.row.model_copy(update={"row_key": "K" * 101}))
    lot = FoundLot(sku="OJ-1L", lot_code="L1", lot_id=uuid4(), uom="EA")
    resolved, rejected = with_lots([spoilt], {("OJ-1L", "L1"): lot})
    assert (resolved, rejected) == (
        [],
        [Rejection(2, "row_key", "String should have at most 100 characters")],
    )
