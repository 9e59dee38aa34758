"""`lottrace recall`: issue a recall and follow it to the last customer."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID, uuid4

import typer
from pydantic import ValidationError
from rich.markup import escape

from lottrace.client import Connection, LottraceClient
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
from lottrace.render import (
    effectiveness_lots_table,
    effectiveness_panel,
    outstanding_table,
    recall_customers_table,
    recall_lots_table,
    recall_panel,
)
from services.recall.schemas import (
    AffectedCustomer,
    Effectiveness,
    RecallRequest,
    RecallView,
    ResponseRecorded,
    ResponseRequest,
)
from shared.contracts.events import RecallScope, ReportedUnits


def register(app: typer.Typer) -> None:
    add_group(
        app,
        "recall",
        "Issue a recall and follow it to the last customer.",
        issue=recall_issue,
        status=recall_status,
        customers=recall_customers,
        respond=recall_respond,
        effectiveness=recall_effectiveness,
    )


class Classification(StrEnum):
    I = "I"  # noqa: E741 (the FDA's name for the class)
    II = "II"
    III = "III"


@with_connection_options("recall")
def recall_issue(
    reason: Annotated[
        str, typer.Option(help="What was found, and by whom: it goes into every notice.")
    ],
    lot_code: Annotated[
        list[str] | None,
        typer.Option("--lot-code", help="A lot code in scope; repeat for several."),
    ] = None,
    lot_id: Annotated[
        list[UUID] | None, typer.Option("--lot-id", help="A lot id in scope; repeat for several.")
    ] = None,
    sku: Annotated[
        str | None,
        typer.Option(help="With lot codes: their SKU. Alone: every lot of the SKU."),
    ] = None,
    supplier: Annotated[
        str | None, typer.Option(help="Every lot from this supplier (its supplier_id).")
    ] = None,
    received_from: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only lots first received on or after this day."),
    ] = None,
    received_to: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only lots first received on or before this day."),
    ] = None,
    classification: Annotated[
        Classification,
        typer.Option(
            help="I: may cause serious harm; II: may cause temporary harm; III: unlikely to harm."
        ),
    ] = Classification.II,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before issuing (on a terminal).")
    ] = False,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Issue a recall of lots by code, id, SKU or supplier.

    The scope follows genealogy: lots made from a recalled lot are recalled too. Every affected
    customer gets a notice on `recall-issued`; inventory and fulfillment block the lots.
    """
    request = recall_request(
        reason=reason,
        classification=classification.value,
        lot_codes=lot_code or [],
        lot_ids=lot_id or [],
        sku=sku,
        supplier_id=supplier,
        received_from=received_from.date() if received_from else None,
        received_to=received_to.date() if received_to else None,
    )
    if not yes and sys.stdin.isatty():
        confirm_recall(request)
    run_against_platform(issue_recall(target, request, output))


def confirm_recall(request: RecallRequest) -> None:
    """Ask at a terminal before every affected customer is notified; no aborts (exit 1)."""
    scope = json.dumps(request.scope.model_dump(mode="json", exclude_none=True))
    typer.confirm(
        f"Issue a class {request.classification} recall of {scope}? Every affected customer"
        " is notified",
        abort=True,
    )


async def issue_recall(target: Connection, request: RecallRequest, output: OutputFormat) -> None:
    async with LottraceClient(target) as api:
        accepted = await api.issue_recall(request)
    if output is OutputFormat.JSON:
        write_json(accepted.model_dump(mode="json"))
        return
    stdout().print(
        f"recall [bold]{accepted.recall_id}[/] issued: {accepted.affected_lots} lots,"
        f" {accepted.affected_customer_count} customers, {accepted.shipped_quantity} shipped."
        f"\nfollow it: lottrace recall status {accepted.recall_id} --wait"
    )


def recall_request(
    *,
    reason: str,
    classification: str,
    lot_codes: Sequence[str],
    lot_ids: Sequence[UUID],
    sku: str | None,
    supplier_id: str | None,
    received_from: date | None,
    received_to: date | None,
) -> RecallRequest:
    """The request `recall issue` sends; bad input exits with status 2, naming the problem."""
    if not (lot_codes or lot_ids or sku or supplier_id):
        fail("a recall needs a scope: give --lot-code, --lot-id, --sku or --supplier", code=2)
    if not reason.strip():
        fail("--reason is empty: say what was found; it goes into every notice", code=2)
    try:
        return RecallRequest(
            reason=reason,
            classification=classification,
            scope=RecallScope(
                lot_ids=list(lot_ids) or None,
                lot_codes=list(lot_codes) or None,
                sku=sku,
                supplier_id=supplier_id,
                received_from=received_from,
                received_to=received_to,
            ),
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'scope'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        fail(f"invalid recall: {problems}", code=2)


@with_connection_options("recall")
def recall_status(
    recall_id: Annotated[str, typer.Argument(help="The recall id `recall issue` printed.")],
    wait: Annotated[
        bool, typer.Option(help="Wait until every affected customer has been notified.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="How long --wait waits, in seconds.")] = 120,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """A recall's status, its affected lots, and how far its customer notices are."""
    recall = run_against_platform(_recall_status(target, recall_id, wait=wait, timeout=timeout))
    if output is OutputFormat.JSON:
        write_json(recall.model_dump(mode="json", exclude={"customers"}))
        return
    console = stdout()
    console.print(recall_panel(recall))
    console.print(recall_lots_table(recall))


@with_connection_options("recall")
def recall_customers(
    recall_id: Annotated[str, typer.Argument(help="The recall id.")],
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            allow_dash=True,
            help="Write every affected customer and shipment as CSV to this file ('-': stdout)"
            " instead of the table.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="At most this many customers in the table.")
    ] = 1000,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Who received the recalled lots, with what they received: the list to call down.

    Lots made from a recalled lot count too, and so do shipments that became known after the
    recall was issued (late).
    """
    if csv_file is not None:
        run_against_platform(_export_customers(target, recall_id, csv_file))
        return

    recall, found = run_against_platform(_first_customers(target, recall_id, limit))
    if output is OutputFormat.JSON:
        write_json([customer.model_dump(mode="json") for customer in found])
        return
    table = recall_customers_table(found, title=f"Customers affected by recall {recall_id}")
    table.caption = (
        f"{recall.affected_customer_count} affected at issue, {len(found)} shown"
        + (" (late shipments included)" if recall.late_notices else "")
        + ("; --limit to see more, --csv for all" if len(found) >= limit else "")
    )
    stdout().print(table)


async def _recall_status(
    target: Connection, recall_id: str, *, wait: bool, timeout: float
) -> RecallView:
    """The recall; with `wait`, once every affected customer is notified (or TimeoutError)."""
    async with LottraceClient(target) as api:
        recall = await api.recall(recall_id, customers_limit=0)
        deadline = asyncio.get_running_loop().time() + timeout
        while wait and not recall.notices_complete:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"recall {recall_id}: {recall.notified_customers} of"
                    f" {recall.affected_customer_count} customers notified after {timeout:.0f}s"
                )
            await asyncio.sleep(0.5)
            recall = await api.recall(recall_id, customers_limit=0)
        return recall


async def _first_customers(
    target: Connection, recall_id: str, limit: int
) -> tuple[RecallView, list[AffectedCustomer]]:
    """The recall and up to `limit` of its customers, a page (at most 10,000) at a time."""
    async with LottraceClient(target) as api:
        found: list[AffectedCustomer] = []
        while True:
            wanted = min(limit - len(found), 10_000)
            recall = await api.recall(
                recall_id, customers_limit=wanted, customers_offset=len(found)
            )
            found += recall.customers
            if len(recall.customers) < wanted or len(found) >= limit:
                return recall, found


async def _export_customers(target: Connection, recall_id: str, destination: Path) -> None:
    async with LottraceClient(target) as api:
        if str(destination) == "-":
            typer.echo(await api.recall_customers_csv(recall_id), nl=False)
            return
        rows = await api.write_recall_customers_csv(recall_id, destination)
    stderr().print(f"{rows} rows written to {escape(str(destination))}")


# ------------------------------------------------------------------ the recall loop


class ResponseKind(StrEnum):
    delivered = "delivered"
    bounced = "bounced"
    acknowledged = "acknowledged"
    units_reported = "units-reported"


UnitsOption = Annotated[
    list[str] | None,
    typer.Option(help="LOT_CODE=QUANTITY; repeat for several lots."),
]


@with_connection_options("recall")
def recall_respond(
    recall_id: Annotated[str, typer.Argument(help="The recall id.")],
    customer: Annotated[str, typer.Option(help="The customer id of who answered.")],
    kind: Annotated[ResponseKind, typer.Option(help="What the customer said.")],
    response_id: Annotated[
        str | None,
        typer.Option(help="Unique per response; give the same one to retry safely."),
    ] = None,
    destroyed: UnitsOption = None,
    returned: UnitsOption = None,
    on_hand: UnitsOption = None,
    note: Annotated[str | None, typer.Option(help="What the customer said, in words.")] = None,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """Record a customer's answer to a recall, as a call centre hears it.

    Units reported (`--destroyed`, `--returned`, `--on-hand`) imply `--kind units-reported`.
    """
    units = reported_units(destroyed=destroyed, returned=returned, on_hand=on_hand)
    try:
        body = ResponseRequest(
            response_id=response_id or f"cli-{uuid4()}",
            customer_id=customer,
            kind="units-reported" if units else kind.value,
            channel="phone",
            units=units,
            note=note,
        )
    except ValidationError as error:
        fail(f"invalid response: {error.errors(include_url=False)[0]['msg']}", code=2)
    recorded = run_against_platform(_respond(target, recall_id, body))
    if output is OutputFormat.JSON:
        write_json(recorded.model_dump(mode="json"))
        return
    said = "recorded" if recorded.recorded else "already recorded; nothing changed"
    stdout().print(f"response [bold]{escape(recorded.response_id)}[/] {said}.")


def reported_units(
    *,
    destroyed: Sequence[str] | None,
    returned: Sequence[str] | None,
    on_hand: Sequence[str] | None,
) -> list[ReportedUnits]:
    """LOT_CODE=QUANTITY options as reported units, one per lot; bad input exits with 2."""
    lots: dict[str, dict[str, str]] = {}
    for figure, values in (("destroyed", destroyed), ("returned", returned), ("on_hand", on_hand)):
        for value in values or ():
            lot_code, equals, quantity = value.rpartition("=")
            if not equals or not lot_code:
                fail(f"--{figure.replace('_', '-')} {value}: expected LOT_CODE=QUANTITY", code=2)
            lots.setdefault(lot_code, {})[figure] = quantity
    try:
        return [
            ReportedUnits.model_validate({"lot_code": code, **figures})
            for code, figures in lots.items()
        ]
    except ValidationError as error:
        fail(f"invalid units: {error.errors(include_url=False)[0]['msg']}", code=2)


async def _respond(target: Connection, recall_id: str, body: ResponseRequest) -> ResponseRecorded:
    async with LottraceClient(target) as api:
        response = await api.request("recall", "POST", f"/recalls/{recall_id}/responses", body=body)
    return ResponseRecorded.model_validate_json(response.content, extra="ignore")


class CheckFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


@with_connection_options("recall")
def recall_effectiveness(
    recall_id: Annotated[str, typer.Argument(help="The recall id.")],
    export: Annotated[
        Path | None,
        typer.Option(help="Write the check to this file (.csv: a row per customer; .xlsx)."),
    ] = None,
    output: FormatOption = OutputFormat.TABLE,
    target: Connection = FROM_CONNECTION_OPTIONS,
) -> None:
    """How effective a recall is: customers reached and answering, units back or destroyed,
    the FDA check level with the consignees to verify, and who is outstanding."""
    if export is not None:
        kind = (
            CheckFormat(export.suffix.lstrip(".")) if export.suffix in (".csv", ".xlsx") else None
        )
        if kind is None:
            fail(f"--export {export}: name a .csv or .xlsx file", code=2)
        content = run_against_platform(_export_check(target, recall_id, kind))
        export.write_bytes(content)
        stderr().print(f"{len(content)} bytes written to {escape(str(export))}")
        return
    check = run_against_platform(_effectiveness(target, recall_id))
    if output is OutputFormat.JSON:
        write_json(check.model_dump(mode="json"))
        return
    console = stdout()
    console.print(effectiveness_panel(check))
    console.print(effectiveness_lots_table(check))
    console.print(outstanding_table(check))


async def _effectiveness(target: Connection, recall_id: str) -> Effectiveness:
    async with LottraceClient(target) as api:
        response = await api.request("recall", "GET", f"/recalls/{recall_id}/effectiveness")
    return Effectiveness.model_validate_json(response.content, extra="ignore")


async def _export_check(target: Connection, recall_id: str, kind: CheckFormat) -> bytes:
    async with LottraceClient(target) as api:
        response = await api.request(
            "recall",
            "GET",
            f"/recalls/{recall_id}/effectiveness",
            params={"format": kind.value},
        )
    return response.content
