"""Reading an onboarding file, CSV (UTF-8, with or without a byte-order mark) or XLSX (the
first sheet), into its header and its rows of text by column, each with the line it is on.
A table's rows are read afresh each time they are asked for, so that an import can check a
file of any size in one pass and send it in another without holding its rows.

Bytes that are not UTF-8 are kept as they are (as surrogates) so that validation can name the
row and the column they are in, rather than refusing the whole file."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


class FileError(ValueError):
    """The file as a whole cannot be read as an onboarding file; nothing is imported."""


@dataclass(frozen=True)
class RawRow:
    line: int  # the file's line (CSV) or sheet row (XLSX) the row starts on; the header is 1
    cells: dict[str, str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    read_rows: Callable[[], Iterator[RawRow]]

    def rows(self) -> Iterator[RawRow]:
        """The rows after the header, from the first, without blank ones."""
        return self.read_rows()


def read_table(path: Path) -> Table:
    if path.suffix.lower() == ".xlsx":
        return _xlsx_table(path)
    return _csv_table(path.read_bytes())


def _named(header: list[str]) -> list[str]:
    names = [name.strip().lower() for name in header]
    if not any(names):
        raise FileError("the first line names no columns: it must be the header")
    repeated = sorted({name for name in names if names.count(name) > 1 and name})
    if repeated:
        raise FileError(f"columns named twice: {', '.join(repeated)}")
    return names


def _row(line: int, names: list[str], values: list[str]) -> RawRow | None:
    """A row's non-empty cells by column; None for a blank row. A value in a column without
    a name (beyond the header, or under an empty heading) is kept under "", for validation
    to refuse."""
    cells: dict[str, str] = {}
    for index, value in enumerate(values):
        if text := value.strip():
            cells[names[index] if index < len(names) else ""] = text
    return RawRow(line, cells) if cells else None


def _csv_table(raw: bytes) -> Table:
    if raw.startswith(UTF16_MARKS):
        raise FileError("the file is UTF-16: save it as CSV UTF-8")
    text = raw.decode("utf-8-sig", errors="surrogateescape")
    try:
        header = next(csv.reader(io.StringIO(text, newline="")))
    except StopIteration:
        raise FileError("the file is empty") from None
    if any("\udc80" <= char <= "\udcff" for char in "".join(header)):
        raise FileError("the header is not UTF-8 text: save the file as CSV UTF-8")
    names = _named(header)

    def rows() -> Iterator[RawRow]:
        reader = csv.reader(io.StringIO(text, newline=""))
        next(reader)
        line = reader.line_num + 1
        for values in reader:
            row = _row(line, names, values)
            line = reader.line_num + 1
            if row is not None:
                yield row

    return Table(names, rows)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _first_sheet_values(path: Path) -> Generator[tuple[Any, ...], None, None]:
    """The first sheet's rows of cell values; the workbook is closed once they are read."""
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a file that is not XLSX
        raise FileError(f"not a readable XLSX file: {error}") from error
    try:
        yield from book.worksheets[0].iter_rows(values_only=True)
    finally:
        book.close()


def _xlsx_table(path: Path) -> Table:
    values = _first_sheet_values(path)
    try:
        names = _named([_cell_text(cell) for cell in next(values)])
    except StopIteration:
        raise FileError("the first sheet is empty") from None
    finally:
        values.close()

    def rows() -> Iterator[RawRow]:
        cells_by_row = _first_sheet_values(path)
        next(cells_by_row, None)
        for line, cells in enumerate(cells_by_row, start=2):
            row = _row(line, names, [_cell_text(cell) for cell in cells])
            if row is not None:
                yield row

    return Table(names, rows)
