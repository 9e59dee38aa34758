"""`lottrace drill`: run a recall drill of a lot, timed stage by stage, or list past drills."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import TypeAdapter

from lottrace.client import Connection, LottraceClient
from lottrace.commands.options import FROM_CONNECTION_OPTIONS, with_connection_options
from lottrace.commands.output import (
    FormatOption,
    OutputFormat,
    fail,
    run_against_platform,
    stdout,
    write_json,
)
from lottrace.commands.recall import Classification
from lottrace.render import drills_table
from services.recall.schemas import DrillView, RecallRequest
from shared.contracts.events import RecallScope

_DRILLS: TypeAdapter[list[DrillView]] = TypeAdapter(list[DrillView])


def register(app: typer.Typer) -> None:
    app.command("drill")(drill)


@with_connection_options("recall")
def drill(
    lot_code: Annotated[
        str | None, typer.Argument(help="The lot to drill a recall of (with --sku).")
    ] = None,
    sku: Annotated[str | None, typer.Option(help="The lot code's SKU.")] = None,
    classification: Annotated[
        Classification, typer.Option(help="The class the recall would have.")
    ] = Classification.I,
    reason: Annotated[str, typer.Option(help="Why the drill is run.")] = "recall drill",
    history: Annotated[
        bool, typer.Option("--history", help="List past drills instead, newest first.")
    ] = False,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Run everything a recall of the lot would (scope through genealogy, customers, FSMA 204
    sheet, EPCIS document, effectiveness baseline) and time each stage. Nothing is sent to
    customers, no stock changes; the drill is kept for `lottrace drill --history`."""
    if history:
        drills = run_against_platform(_history(target))
    elif lot_code is None or sku is None:
        fail("give LOT_CODE and --sku, or --history", code=2)
    else:
        scope = RecallScope(lot_codes=[lot_code], sku=sku)
        request = RecallRequest(
            reason=reason, classification=classification.value, scope=scope, drill=True
        )
        drills = run_against_platform(_drill(target, request))
    if output is OutputFormat.JSON:
        write_json([item.model_dump(mode="json") for item in drills])
        return
    stdout().print(drills_table(drills))


async def _drill(target: Connection, request: RecallRequest) -> list[DrillView]:
    """The drill just run, as the history keeps it."""
    async with LottraceClient(target) as api:
        accepted = await api.issue_recall(request)
        found = [d for d in await _drills(api) if d.drill_id == accepted.recall_id]
    return found or fail(f"drill {accepted.recall_id} ran but is not in the history")


async def _history(target: Connection) -> list[DrillView]:
    async with LottraceClient(target) as api:
        return await _drills(api)


async def _drills(api: LottraceClient) -> list[DrillView]:
    response = await api.request("recall", "GET", "/drills")
    return _DRILLS.validate_json(response.content)
