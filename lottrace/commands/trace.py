"""`lottrace trace`: a lot back to its suppliers and forward to its customers."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from lottrace.client import (
    AmbiguousLotCode,
    Connection,
    LotNotFound,
    LottraceClient,
    ServiceError,
)
from lottrace.commands.options import FROM_CONNECTION_OPTIONS, with_connection_options
from lottrace.commands.output import fail, run_against_platform, stdout, write_json
from lottrace.render import backward_table, genealogy_tree, lot_panel, shipments_table


def register(app: typer.Typer) -> None:
    app.command()(trace)


class TraceFormat(StrEnum):
    TABLE = "table"
    MERMAID = "mermaid"
    JSON = "json"


@with_connection_options("receiving", "recall")
def trace(
    lot_code: Annotated[str, typer.Argument(help="The lot code, as printed on the label.")],
    sku: Annotated[
        str | None, typer.Option(help="The SKU, when products of several SKUs share the code.")
    ] = None,
    output: Annotated[
        TraceFormat,
        typer.Option(
            "--format",
            "-f",
            help="table: both directions and the genealogy as a tree; mermaid: the genealogy"
            " flowchart (the lot highlighted); json: lot, backward and forward traces.",
        ),
    ] = TraceFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Follow a lot back to its suppliers and forward to its customers.

    Backward: the lot's receipts, its input lots (to the roots), their suppliers and purchase
    orders. Forward: every lot made from it, at any depth, and every shipment of any of them.
    """
    run_against_platform(_trace(target, lot_code, sku, output))


async def _trace(target: Connection, lot_code: str, sku: str | None, output: TraceFormat) -> None:
    async with LottraceClient(target) as api:
        try:
            lot = await api.lot_by_code(lot_code, sku=sku)
        except AmbiguousLotCode as error:
            fail(str(error), hint=f"add --sku, one of: {', '.join(error.skus)}", code=2)
        except LotNotFound as error:
            fail(str(error))
        try:
            if output is TraceFormat.MERMAID:
                typer.echo(await api.genealogy(lot.lot_id), nl=False)
                return
            backward, forward = await asyncio.gather(
                api.trace_backward(lot.lot_id), api.trace_forward(lot.lot_id)
            )
        except ServiceError as error:
            if error.service == "recall" and error.status == 404:
                fail(
                    f"recall does not know lot {lot.lot_code} ({lot.lot_id}) yet",
                    hint="it learns lots from goods-received: see recall's consumer lag"
                    " (docs/operations.md#consumer-lag)",
                )
            raise
    if output is TraceFormat.JSON:
        write_json(
            {
                "lot": lot.model_dump(mode="json"),
                "backward": backward.model_dump(mode="json"),
                "forward": forward.model_dump(mode="json"),
            }
        )
        return
    console = stdout()
    console.print(lot_panel(lot))
    console.print(genealogy_tree(backward, forward))
    console.print(backward_table(backward))
    console.print(shipments_table(forward))
