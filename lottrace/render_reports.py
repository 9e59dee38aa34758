"""The lot reports and the data-quality monitor as rich tables, for `lottrace report` and
`lottrace doctor`."""

from __future__ import annotations

from collections.abc import Iterator

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table as RichTable

from services.recall.schemas import DataQualityReport
from shared.tables import Cell, Table, csv_text


def _text(cell: Cell) -> str:
    if cell is None:
        return "–"
    return escape(cell) if isinstance(cell, str) else csv_text(cell)


# Ids a person does not read: the lot code beside them says which lot it is.
_HIDDEN = frozenset({"lot_id"})


def report_table(table: Table, *, title: str) -> RichTable:
    """A report table as it reads in a terminal: its columns (ids left out) and rows."""
    shown = RichTable(title=title, title_justify="left")
    kept = [index for index, column in enumerate(table.columns) if column not in _HIDDEN]
    for index in kept:
        shown.add_column(table.columns[index], overflow="fold")
    for row in table.rows:
        shown.add_row(*(_text(row[index]) for index in kept))
    return shown


def doctor_panels(report: DataQualityReport) -> Iterator[RichTable | Panel]:
    """A summary of every finding, then each finding with lots: its examples and its fix."""
    summary = RichTable(
        title=f"Data quality: {report.lots_checked} lots checked at"
        f" {report.checked_at:%Y-%m-%d %H:%M:%S %Z}",
        title_justify="left",
    )
    for column in ("finding", "lots"):
        summary.add_column(column, justify="right" if column == "lots" else "left")
    for finding in report.findings:
        count = f"[red]{finding.count}[/]" if finding.count else "[green]0[/]"
        summary.add_row(escape(finding.title), count)
    yield summary
    for finding in report.findings:
        if not finding.count:
            continue
        examples = RichTable(title=f"{finding.title} ({finding.count})", title_justify="left")
        for column in ("lot code", "SKU", "what is wrong"):
            examples.add_column(column, overflow="fold")
        for example in finding.examples:
            examples.add_row(escape(example.lot_code), escape(example.sku), escape(example.detail))
        yield examples
        yield Panel(escape(finding.how_to_fix), title="how to fix", title_align="left")
