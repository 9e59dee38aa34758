"""Checking an onboarding file against its format: the header first (a column the format does
not know, or a required one missing, refuses the file), then each row on its own, with one
reason per column it breaks. Rows sharing a row key are all refused: which one is right is
not for the import to guess.

Checking keeps only the row keys and the refusals; the good rows are read and checked again
when they are sent, so a file of any size imports in little memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from lottrace.imports.formats import FileFormat
from lottrace.imports.readers import FileError, RawRow, Table
from lottrace.imports.rejects import Rejection

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FileRow(Generic[M]):
    line: int
    row: M


@dataclass(frozen=True)
class GoodRows(Generic[M]):
    """A checked file's good rows, in file order, read again each time they are iterated."""

    table: Table
    model: type[M]
    refused_lines: frozenset[int]
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[FileRow[M]]:
        for raw in self.table.rows():
            if raw.line in self.refused_lines:
                continue
            checked = check_row(raw, self.model)
            if isinstance(checked, list):
                raise FileError(f"line {raw.line} changed while the file was being imported")
            yield FileRow(raw.line, checked)


@dataclass(frozen=True)
class Checked(Generic[M]):
    rows: GoodRows[M]
    rejected: list[Rejection]


def check_header(header: Sequence[str], file_format: FileFormat) -> None:
    known = set(file_format.columns)
    unknown = [name for name in header if name and name not in known]
    if unknown:
        raise FileError(
            f"unknown columns: {', '.join(unknown)} (a {file_format.kind} file has:"
            f" {', '.join(file_format.columns)})"
        )
    missing = [name for name in file_format.required if name not in header]
    if missing:
        raise FileError(f"missing required columns: {', '.join(missing)}")


def _reason(error: ErrorDetails) -> str:
    kind, context, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "missing":
        return "required"
    if kind in ("greater_than", "greater_than_equal"):
        bound = "more than" if kind == "greater_than" else "at least"
        limit = context.get("gt", context.get("ge"))
        return f"must be {bound} {limit}, not {given}"
    if kind.startswith(("date_", "datetime_")) or "day is out of range" in error["msg"]:
        return f"{given} is not a date (YYYY-MM-DD) or date and time"
    return error["msg"].removeprefix("Value error, ")


def rejections(line: int, error: ValidationError) -> list[Rejection]:
    """A row's validation errors, one rejection per column, in the file's words."""
    return [
        Rejection(line, ".".join(str(part) for part in problem["loc"]), _reason(problem))
        for problem in error.errors(include_url=False)
    ]


def _encoding_problems(row: RawRow) -> list[Rejection]:
    return [
        Rejection(row.line, column, "not UTF-8 text: save the file as CSV UTF-8")
        for column, text in row.cells.items()
        if any("\udc80" <= char <= "\udcff" for char in text)
    ]


def check_row(raw: RawRow, model: type[M]) -> M | list[Rejection]:
    if problems := _encoding_problems(raw):
        return problems
    if "" in raw.cells:
        return [Rejection(raw.line, "", "a value in a column without a name in the header")]
    try:
        return model.model_validate_strings(raw.cells)
    except ValidationError as error:
        return rejections(raw.line, error)


def _repeated_keys(lines_by_key: dict[str, list[int]]) -> list[Rejection]:
    return [
        Rejection(
            line,
            "row_key",
            f"row key {key} is on lines {', '.join(map(str, lines))}: give each row its own"
            " row_key",
        )
        for key, lines in lines_by_key.items()
        if len(lines) > 1
        for line in lines
    ]


def check_table(table: Table, file_format: FileFormat) -> Checked[Any]:
    """The file's good rows and its rejected ones; FileError for a file refused whole."""
    check_header(table.header, file_format)
    lines_by_key: dict[str, list[int]] = defaultdict(list)
    rejected: list[Rejection] = []
    for raw in table.rows():
        checked = check_row(raw, file_format.row)
        if isinstance(checked, list):
            rejected += checked
        else:
            lines_by_key[checked.key].append(raw.line)
    rejected += _repeated_keys(lines_by_key)
    refused = frozenset(rejection.line for rejection in rejected)
    good = sum(len(lines) for lines in lines_by_key.values() if len(lines) == 1)
    return Checked(GoodRows(table, file_format.row, refused, good), sorted(rejected))
