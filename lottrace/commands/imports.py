"""`lottrace import lots|shipments FILE`: existing stock and shipment history onto the
platform (docs/onboarding.md). Exit status 0 when every row went in (or was already in), 2
when the file or some rows were refused (the good rows still go in), 1 when the platform
refused or could not be reached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from lottrace.client import Connection, LottraceClient, Service
from lottrace.commands.groups import add_group
from lottrace.commands.options import FROM_CONNECTION_OPTIONS, with_connection_options
from lottrace.commands.output import (
    FormatOption,
    OutputFormat,
    fail,
    run_against_platform,
    stderr,
    stdout,
    write_json,
)
from lottrace.imports import upload
from lottrace.imports.formats import FORMATS, FileKind
from lottrace.imports.readers import FileError, read_table
from lottrace.imports.rejects import Rejection, write_rejects
from lottrace.imports.validation import Checked, check_table

SHOWN_REJECTIONS = 50

FileArgument = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
        help="A .csv (UTF-8, with or without BOM) or .xlsx file (its first sheet).",
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Check every row, with the platform's rules too, and import nothing."
    ),
]
RejectsOption = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        dir_okay=False,
        show_default=False,
        help="Write the rejected rows (line, column, reason) to this CSV file.",
    ),
]
BatchOption = Annotated[
    int, typer.Option("--batch-size", min=1, max=2000, help="Rows per request.")
]


@dataclass(frozen=True)
class ImportRun:
    kind: FileKind
    file: Path
    dry_run: bool
    rejects: Path | None
    batch_size: int
    output: OutputFormat


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "import",
        "Existing stock and shipment history onto the platform (CSV or XLSX).",
        lots=import_lots,
        shipments=import_shipments,
    )


def _command(kind: FileKind, services: tuple[Service, ...], summary: str) -> Callable[..., None]:
    """The command importing one kind of file, with the options of the services it calls."""

    def command(
        file: FileArgument,
        dry_run: DryRunOption = False,
        rejects: RejectsOption = None,
        batch_size: BatchOption = 500,
        output: FormatOption = OutputFormat.TABLE,
        target: Connection = FROM_CONNECTION_OPTIONS,
    ) -> None:
        _import(ImportRun(kind, file, dry_run, rejects, batch_size, output), target)

    command.__doc__ = summary
    return with_connection_options(*services)(command)


import_lots = _command(
    FileKind.LOTS,
    ("receiving",),
    "Stock on hand per lot and location, each row received as on its received_at.",
)
import_shipments = _command(
    FileKind.SHIPMENTS,
    ("receiving", "fulfillment"),
    "Past shipments by lot and customer, for traces and recalls; they never move stock.",
)


def _checked(run: ImportRun) -> Checked[Any]:
    try:
        return check_table(read_table(run.file), FORMATS[run.kind])
    except (FileError, OSError) as error:
        fail(f"{run.file}: {error}", code=2)


async def _send(run: ImportRun, checked: Checked[Any], target: Connection) -> upload.ImportOutcome:
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr(), transient=True) as progress:
        task = progress.add_task(f"importing {run.kind}", total=len(checked.rows))
        async with LottraceClient(target) as api:
            return await upload.SENDERS[run.kind](
                api,
                checked.rows,
                batch_size=run.batch_size,
                dry_run=run.dry_run,
                advance=lambda rows: progress.advance(task, rows),
            )


def _import(run: ImportRun, target: Connection) -> None:
    checked = _checked(run)
    outcome = run_against_platform(_send(run, checked, target))
    rejected = sorted([*checked.rejected, *outcome.rejected])
    if run.rejects is not None:
        write_rejects(run.rejects, rejected)
    if run.output is OutputFormat.JSON:
        write_json(_summary(run, outcome, rejected))
    else:
        _print(run, outcome, rejected)
    if rejected:
        raise typer.Exit(2)


def _summary(run: ImportRun, outcome: upload.ImportOutcome, rejected: list[Rejection]) -> object:
    return {
        "kind": str(run.kind),
        "dry_run": run.dry_run,
        "imported": outcome.imported,
        "new_lots": outcome.new_lots,
        "already_imported": outcome.already_imported,
        "rejected": [vars(rejection) for rejection in rejected],
    }


def _print(run: ImportRun, outcome: upload.ImportOutcome, rejected: list[Rejection]) -> None:
    console = stdout()
    if rejected:
        console.print(_rejections_table(rejected))
        if len(rejected) > SHOWN_REJECTIONS:
            where = f" (all in {run.rejects})" if run.rejects else " (--rejects FILE lists all)"
            console.print(f"… and {len(rejected) - SHOWN_REJECTIONS} more{where}")
    verb = "would import" if run.dry_run else "imported"
    lots = f" ({outcome.new_lots:,} new lots)" if run.kind is FileKind.LOTS else ""
    console.print(
        f"{run.kind}: {verb} {_rows(outcome.imported)}{lots}, {outcome.already_imported:,}"
        f" already imported, {_rows(len({r.line for r in rejected}))} rejected"
    )


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def _rejections_table(rejected: list[Rejection]) -> Table:
    table = Table(title="Rejected rows")
    for name in ("line", "column", "reason"):
        table.add_column(name, justify="right" if name == "line" else "left")
    for rejection in rejected[:SHOWN_REJECTIONS]:
        table.add_row(str(rejection.line), rejection.column or "—", rejection.reason)
    return table
