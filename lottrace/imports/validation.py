"""Checking an onboarding file against its format: the header first (a column the format does
not know, or a required one missing, refuses the file), then each row on its own, with one
reason per column it breaks. Rows sharing a row key are all refused: which one is right is
not for the import to guess."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
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
class Checked(Generic[M]):
    rows: list[FileRow[M]]
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


def _rejections(line: int, error: ValidationError) -> list[Rejection]:
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
        return _rejections(raw.line, error)


def _without_repeated_keys(rows: list[FileRow[Any]]) -> tuple[list[FileRow[Any]], list[Rejection]]:
    lines: dict[str, list[int]] = defaultdict(list)
    for item in rows:
        lines[item.row.key].append(item.line)
    kept: list[FileRow[Any]] = []
    rejected: list[Rejection] = []
    for item in rows:
        where = lines[item.row.key]
        if len(where) == 1:
            kept.append(item)
            continue
        reason = (
            f"row key {item.row.key} is on lines {', '.join(map(str, where))}:"
            " give each row its own row_key"
        )
        rejected.append(Rejection(item.line, "row_key", reason))
    return kept, rejected


def check_table(table: Table, file_format: FileFormat) -> Checked[Any]:
    """The file's good rows and its rejected ones; FileError for a file refused whole."""
    check_header(table.header, file_format)
    good: list[FileRow[Any]] = []
    rejected: list[Rejection] = []
    for raw in table.rows:
        checked = check_row(raw, file_format.row)
        if isinstance(checked, list):
            rejected += checked
        else:
            good.append(FileRow(raw.line, checked))
    kept, repeated = _without_repeated_keys(good)
    return Checked(kept, sorted([*rejected, *repeated]))
