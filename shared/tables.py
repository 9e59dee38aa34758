"""Reports as tables: rows of typed cells written as CSV (every text cell formula-safe) or as an
XLSX workbook (a sheet per table, numbers and dates as Excel values), and a report sent in the
format a request asks for (`report_response`)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import tempfile
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, BinaryIO, Protocol, TypeAlias
from uuid import UUID

import anyio
import xlsxwriter
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from shared.errors import Invalid
from shared.runtime.logging import get_logger

log = get_logger(__name__)

Cell: TypeAlias = str | bool | int | Decimal | date | time | UUID | None
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_MAX_DATA_ROWS = 1_048_575  # Excel's row limit less the header
XLSX_SHEET_NAME_LIMIT = 31  # Excel refuses longer sheet names

# A spreadsheet opening a CSV runs a cell starting with one of these as a formula; names and
# codes are outside text, so such cells get a leading apostrophe (OWASP). Phone numbers and
# signed numbers start with + or - too; with only digits and separators after the sign they
# cannot call anything, so they stay as they are.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_LIKE = re.compile(r"[+-][\d\s().-]*")


def csv_safe(text: str) -> str:
    if not text.startswith(_FORMULA_STARTS) or _NUMBER_LIKE.fullmatch(text):
        return text
    return "'" + text


def plain_decimal(value: Decimal) -> str:
    """The short spelling of a decimal, without exponent: 40.000 and 40 are one quantity."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


class TableFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class TableTooLarge(ValueError):
    """More rows than one sheet holds."""


@dataclass(frozen=True)
class Table:
    """One sheet: its name, column headers and rows of cells in column order."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    @classmethod
    def of(cls, name: str, kind: type[BaseModel], items: Sequence[BaseModel]) -> Table:
        """A table of pydantic models: a column per field, in field order, so that the CSV
        and sheet headers are the JSON field names. Nested models and lists are left out."""
        columns = tuple(name for name in kind.model_fields if _is_flat(kind, name))
        rows = tuple(tuple(_cell(getattr(item, column)) for column in columns) for item in items)
        return cls(name, columns, rows)


def _is_flat(kind: type[BaseModel], name: str) -> bool:
    annotation = str(kind.model_fields[name].annotation)
    return "list[" not in annotation and "dict[" not in annotation


def _cell(value: Any) -> Cell:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, bool, int, Decimal, date, UUID)) or value is None:
        return value
    raise TypeError(f"a table cell cannot hold {type(value).__name__}")


def csv_text(cell: Cell) -> str:
    """A cell as CSV text: text formula-safe, booleans `true`/`false`, decimals plain."""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, (int, UUID)):
        return str(cell)
    if isinstance(cell, str):
        return csv_safe(cell)
    if isinstance(cell, Decimal):
        return plain_decimal(cell)
    if isinstance(cell, time):
        return cell.isoformat(timespec="seconds")
    return "" if cell is None else cell.isoformat()


def as_csv(table: Table) -> bytes:
    """RFC 4180 CSV with a header row and CRLF line ends."""
    return csv_lines([table.columns]) + csv_rows(table.rows)


def csv_lines(lines: Iterable[Sequence[str]]) -> bytes:
    """Lines of text fields as RFC 4180 CSV with CRLF line ends, each field as it is."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(lines)
    return buffer.getvalue().encode("utf-8")


def csv_rows(rows: Iterable[Sequence[Cell]]) -> bytes:
    """Rows of cells as CSV lines, each cell as `csv_text` writes it."""
    return csv_lines([csv_text(cell) for cell in row] for row in rows)


def as_xlsx(tables: Sequence[Table]) -> bytes:
    """A workbook with one sheet per table: a bold frozen header with an autofilter, numbers
    and dates as Excel values, and every text written as text (never run as a formula)."""
    for table in tables:
        _check_fits(len(table.rows))
    output = io.BytesIO()
    workbook = xlsxwriter.Workbook(output, {"in_memory": True})
    formats = _formats(workbook)
    for table in tables:
        sheet = _Sheet(workbook, table.name, table.columns, formats)
        sheet.add(table.rows)
        sheet.finish()
    workbook.close()
    return output.getvalue()


def _check_fits(rows: int) -> None:
    if rows > XLSX_MAX_DATA_ROWS:
        raise TableTooLarge(f"{rows} rows do not fit in one sheet ({XLSX_MAX_DATA_ROWS} at most)")


def _formats(workbook: Any) -> dict[str, Any]:
    return {
        "header": workbook.add_format({"bold": True, "bottom": 1}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "time": workbook.add_format({"num_format": "hh:mm:ss"}),
    }


class _Sheet:
    """A sheet written row by row under its bold header: each column as wide as its widest
    text (up to 60), the header frozen and filtered once the last row is in."""

    def __init__(
        self, workbook: Any, name: str, columns: Sequence[str], formats: dict[str, Any]
    ) -> None:
        self.sheet = workbook.add_worksheet(name[:XLSX_SHEET_NAME_LIMIT])
        self.formats = formats
        self.columns = len(columns)
        self.rows = 0
        self.widths = [len(column) for column in columns]
        for index, column in enumerate(columns):
            self.sheet.write_string(0, index, column, formats["header"])

    def add(self, rows: Iterable[Sequence[Cell]]) -> None:
        for row in rows:
            self.rows += 1
            for index, cell in enumerate(row):
                _write_cell(self.sheet, self.rows, index, cell, self.formats)
                self.widths[index] = max(self.widths[index], len(csv_text(cell)))

    def finish(self) -> None:
        for index, width in enumerate(self.widths):
            self.sheet.set_column(index, index, min(width + 2, 60))
        self.sheet.freeze_panes(1, 0)
        self.sheet.autofilter(0, 0, self.rows, max(self.columns - 1, 0))


def _write_cell(sheet: Any, row: int, column: int, cell: Cell, formats: dict[str, Any]) -> None:
    if cell is None:
        return
    if isinstance(cell, bool):
        sheet.write_boolean(row, column, cell)
    elif isinstance(cell, (int, Decimal)):
        sheet.write_number(row, column, float(cell))
    elif isinstance(cell, date):
        sheet.write_datetime(row, column, cell, formats["date"])
    elif isinstance(cell, time):
        sheet.write_datetime(row, column, cell, formats["time"])
    else:
        sheet.write_string(row, column, str(cell))


@dataclass(frozen=True)
class Rendered:
    """A report ready to send: its bytes, media type and the file name to save it as."""

    content: bytes
    media_type: str
    filename: str

    @property
    def headers(self) -> dict[str, str]:
        return attachment(self.filename)


def attachment(filename: str) -> dict[str, str]:
    """The header that has a browser save the response as `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def rendered(tables: Sequence[Table], form: TableFormat, name: str) -> Rendered:
    """The tables as one file: CSV holds the first table (the report's main one), XLSX all."""
    if form is TableFormat.XLSX:
        return Rendered(as_xlsx(tables), XLSX_MEDIA_TYPE, f"{name}.xlsx")
    return Rendered(as_csv(tables[0]), CSV_MEDIA_TYPE, f"{name}.csv")


Rows: TypeAlias = Sequence[tuple[Cell, ...]]


@dataclass(frozen=True)
class StreamedTable:
    """One sheet whose rows come in batches, in order, as they are read: a report too large to
    hold at once is sent holding one batch at a time."""

    name: str
    columns: tuple[str, ...]
    batches: AsyncGenerator[Rows, None]


async def streamed_response(
    table: StreamedTable, form: TableFormat, name: str, *, stall_seconds: float
) -> Response:
    """The table as CSV sent batch by batch, or as an XLSX workbook written to a file first (a
    workbook's index comes last, and Excel's row limit must hold before a byte is sent). The
    first batch is read before answering: a failure to start reading is an error status, not
    a cut-off file. A client that takes none of the body for `stall_seconds` is dropped."""
    if form is TableFormat.XLSX:
        workbook = await _xlsx_file(table)
        size = os.fstat(workbook.fileno()).st_size
        return _ClosingStream(
            _file_chunks(workbook),
            stall_seconds=stall_seconds,
            media_type=XLSX_MEDIA_TYPE,
            headers={**attachment(f"{name}.xlsx"), "Content-Length": str(size)},
        )
    try:
        first = await table.batches.__anext__()
    except StopAsyncIteration:
        first = ()
    except BaseException:
        await table.batches.aclose()
        raise
    return _ClosingStream(
        _csv_chunks(table, first),
        stall_seconds=stall_seconds,
        media_type=CSV_MEDIA_TYPE,
        headers=attachment(f"{name}.csv"),
    )


class _Stalled(Exception):
    """The client took none of a chunk in time."""


class _ClosingStream(StreamingResponse):
    """A streamed body closed however the response ends, letting go at once of what it holds
    (a database connection and its snapshot, a file) instead of leaving that to the collector.

    A client gone midway cancels the task that sends the body. One that stays connected but
    reads nothing (a paused download) leaves a send waiting for room in the socket for good:
    a chunk not taken within `stall_seconds` ends the response."""

    def __init__(
        self, body: AsyncGenerator[bytes, None], *, stall_seconds: float, **options: Any
    ) -> None:
        super().__init__(body, **options)
        self._body = body
        self._stall_seconds = stall_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_in_time(message: Message) -> None:
            try:
                with anyio.fail_after(self._stall_seconds):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await super().__call__(scope, receive, send_in_time)
        except _Stalled:
            log.warning("download dropped: its client took nothing", seconds=self._stall_seconds)
        finally:
            with anyio.CancelScope(shield=True):
                await self._body.aclose()


async def _csv_chunks(table: StreamedTable, first: Rows) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(table.batches) as batches:
        yield csv_lines([table.columns]) + csv_rows(first)
        async for batch in batches:
            yield csv_rows(batch)


FILE_CHUNK_BYTES = 256 * 1024


async def _file_chunks(file: BinaryIO) -> AsyncGenerator[bytes, None]:
    with file:
        while chunk := await asyncio.to_thread(file.read, FILE_CHUNK_BYTES):
            yield chunk


async def _xlsx_file(table: StreamedTable) -> BinaryIO:
    """The table as a workbook in an open file, written row by row in a folder of its own
    (xlsxwriter's constant memory mode keeps the rows there until it zips them) on worker
    threads, so the service goes on answering. The folder is gone once the file is open, or
    once writing failed: nothing is left on disk however the export ends."""
    with tempfile.TemporaryDirectory(prefix="lottrace-report-") as folder:
        name = os.path.join(folder, "sheet.xlsx")
        workbook = xlsxwriter.Workbook(name, {"constant_memory": True, "tmpdir": folder})
        try:
            sheet = _Sheet(workbook, table.name, table.columns, _formats(workbook))
            async with contextlib.aclosing(table.batches) as batches:
                async for batch in batches:
                    _check_fits(sheet.rows + len(batch))
                    await asyncio.to_thread(sheet.add, batch)
            sheet.finish()
            await asyncio.to_thread(workbook.close)
        except BaseException:
            workbook.fileclosed = True  # dropped, not zipped: its folder goes with it
            raise
        return open(name, "rb")  # noqa: ASYNC230 (closed by _file_chunks)


class ReportFormat(StrEnum):
    """How a report is sent: its JSON model, or its tables as CSV or XLSX."""

    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


# The OpenAPI description of a report's other formats (the JSON one is its response model).
TABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON, or its tables as CSV (the main table) or XLSX (a"
        " sheet per table), as `format` asks.",
        "content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}},
    }
}


class Tabular(Protocol):
    """A report that is a JSON model and can be laid out as tables."""

    def model_dump_json(self) -> str: ...

    def tables(self) -> list[Table]: ...


def report_response(report: Tabular, form: ReportFormat, name: str) -> Response:
    """The report as `form` asks: its JSON, or its tables as a CSV or XLSX attachment."""
    if form is ReportFormat.JSON:
        return Response(report.model_dump_json(), media_type="application/json")
    try:
        sent = rendered(report.tables(), TableFormat(form.value), name)
    except TableTooLarge as error:
        raise Invalid(
            "report_too_large", f"{error}: narrow the report or use format=csv"
        ) from error
    return Response(sent.content, media_type=sent.media_type, headers=sent.headers)
