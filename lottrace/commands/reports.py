"""`lottrace report`: the lot reports and the data-quality monitor; `lottrace doctor`: the
monitor, exiting 3 when it finds something (docs/reports.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from lottrace.client import Connection, LottraceClient, Service
from lottrace.commands.options import FROM_CONNECTION_OPTIONS, with_connection_options
from lottrace.commands.output import fail, run_against_platform, stdout
from lottrace.render_reports import doctor_panels, report_table
from services.inventory.reporting import MAX_DAYS
from services.inventory.schemas import (
    LotMovementReport,
    ReturnsReport,
    ShortDatedReport,
    SupplierScorecard,
)
from services.recall.quality import MAX_EXAMPLES
from services.recall.schemas import DataQualityReport

# `lottrace doctor`'s exit status when the monitor found something: apart from 1 (the platform
# refused or could not be reached) and 2 (bad input), so a script can tell them apart.
FINDINGS_EXIT = 3


class ReportName(StrEnum):
    SHORT_DATED = "short-dated"
    LOT_MOVEMENT = "lot-movement"
    RETURNS = "returns"
    SUPPLIERS = "suppliers"
    DATA_QUALITY = "data-quality"


class ReportOutput(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True)
class Endpoint:
    service: Service
    path: str
    model: type[BaseModel]
    days: bool = True  # takes `days`
    method: str = "GET"
    least_days: int = 1  # the fewest `days` it takes


ENDPOINTS: dict[ReportName, Endpoint] = {
    ReportName.SHORT_DATED: Endpoint(
        "inventory", "/reports/short-dated", ShortDatedReport, least_days=0
    ),
    ReportName.LOT_MOVEMENT: Endpoint("inventory", "/reports/lot-movement", LotMovementReport),
    ReportName.RETURNS: Endpoint("inventory", "/reports/returns", ReturnsReport),
    ReportName.SUPPLIERS: Endpoint("inventory", "/reports/suppliers", SupplierScorecard),
    ReportName.DATA_QUALITY: Endpoint(
        "recall", "/reports/data-quality", DataQualityReport, days=False
    ),
}

OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write the report to this file (xlsx needs one)."),
]


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("doctor")(doctor)


@with_connection_options("inventory", "recall")
def report(
    name: Annotated[ReportName, typer.Argument(help="Which report.")],
    days: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_DAYS,
            help="short-dated: lots expiring within N days (30, 0 for today); lot-movement,"
            " returns, suppliers: lots received in the last N days (90, 365, 365; 1 at least).",
        ),
    ] = None,
    sales_days: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_DAYS, help="short-dated: the sell rate's window in days (28)."),
    ] = None,
    output: Annotated[ReportOutput, typer.Option("--format", "-f")] = ReportOutput.TABLE,
    out: OutOption = None,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """A lot report as tables, JSON, CSV or XLSX (docs/reports.md says what each answers)."""
    endpoint = ENDPOINTS[name]
    if days is not None and not endpoint.days:
        fail(f"{name} takes no --days", code=2)
    if days is not None and days < endpoint.least_days:
        fail(f"{name} takes --days {endpoint.least_days} or more", code=2)
    if output is ReportOutput.XLSX and out is None:
        fail("--format xlsx needs --out FILE", code=2)
    params = {"days": days, "sales_days": sales_days}
    params = {key: value for key, value in params.items() if value is not None}
    wire = ReportOutput.JSON if output is ReportOutput.TABLE else output
    content = run_against_platform(_fetch(target, endpoint, {**params, "format": wire.value}))
    if output is not ReportOutput.TABLE:
        _write(content, out)
        return
    parsed: Any = endpoint.model.model_validate_json(content)
    console = stdout()
    for table in parsed.tables():
        console.print(report_table(table, title=f"{name}: {table.name}"))


@with_connection_options("recall")
def doctor(
    examples: Annotated[
        int, typer.Option(min=0, max=MAX_EXAMPLES, help="Example lots shown per finding.")
    ] = 10,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Check every lot now instead of showing the latest scheduled check (needs"
            " the recall-manager role).",
        ),
    ] = False,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Show the data-quality monitor's latest check of every lot: what would let a trace or
    a recall down. Exits 3 when anything is found (0 when clean, 1 when the platform refused
    or could not be reached), so it can gate a script or a pipeline."""
    endpoint = ENDPOINTS[ReportName.DATA_QUALITY]
    if refresh:
        endpoint = replace(endpoint, path=f"{endpoint.path}/refresh", method="POST")
    content = run_against_platform(_fetch(target, endpoint, {"examples": examples}))
    found = DataQualityReport.model_validate_json(content)
    console = stdout()
    for part in doctor_panels(found):
        console.print(part)
    if not found.clean:
        raise typer.Exit(FINDINGS_EXIT)


async def _fetch(target: Connection, endpoint: Endpoint, params: dict[str, Any]) -> bytes:
    async with LottraceClient(target) as api:
        response = await api.request(
            endpoint.service, endpoint.method, endpoint.path, params=params
        )
    return response.content


def _write(content: bytes, out: Path | None) -> None:
    if out is None:
        typer.echo(content.decode("utf-8"), nl=False)
        return
    out.write_bytes(content)
    stdout().print(f"wrote {out} ({len(content)} bytes)")
