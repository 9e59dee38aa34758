"""The rejected-row report: which line, which column, and why; as a CSV for the person who
fixes the file."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path


@dataclass(frozen=True, order=True)
class Rejection:
    line: int
    column: str  # "" when the reason is about the row as a whole
    reason: str


REJECT_COLUMNS = [field.name for field in fields(Rejection)]


def write_rejects(path: Path, rejections: Iterable[Rejection]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(REJECT_COLUMNS)
        writer.writerows(astuple(rejection) for rejection in sorted(rejections))
