"""`lottrace lots`: lots in stock."""

from __future__ import annotations

from typing import Annotated

import typer

from lottrace.client import Connection, LottraceClient
from lottrace.commands.groups import add_group
from lottrace.commands.options import FROM_CONNECTION_OPTIONS, with_connection_options
from lottrace.commands.output import (
    FormatOption,
    OutputFormat,
    run_against_platform,
    stdout,
    write_json,
)
from lottrace.render import stock_table
from services.inventory.schemas import LotView as StockLot


def register(app: typer.Typer) -> None:
    add_group(app, "lots", "Lots in stock.", expiring=lots_expiring)


@with_connection_options("inventory")
def lots_expiring(
    within_days: Annotated[
        int, typer.Option(min=0, max=3650, help="Lots with stock expiring within this many days.")
    ] = 30,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Lots with stock on hand that expire soon, soonest first (expired ones included)."""

    async def expiring() -> list[StockLot]:
        async with LottraceClient(target) as api:
            return await api.expiring(within_days=within_days)

    lots = run_against_platform(expiring())
    if output is OutputFormat.JSON:
        write_json([lot.model_dump(mode="json") for lot in lots])
        return
    stdout().print(stock_table(lots, title=f"Lots expiring within {within_days} days"))
