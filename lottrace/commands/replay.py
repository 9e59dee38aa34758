"""`lottrace replay`: rebuild a service's projection from its topics into a fresh schema."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.status import Status
from rich.table import Table

from lottrace.client import kafka_settings
from lottrace.commands.options import CONNECTION_PANEL, DEFAULT_BOOTSTRAP, BootstrapOption
from lottrace.commands.output import fail, run_against_platform, stdout

if TYPE_CHECKING:  # imported when a replay runs: it brings asyncpg and the services
    from shared.runtime.replay import Replay, ReplayReport


def register(app: typer.Typer) -> None:
    app.command()(replay)


class ServiceName(StrEnum):
    RECEIVING = "receiving"
    INVENTORY = "inventory"
    FULFILLMENT = "fulfillment"
    RECALL = "recall"


def replay(
    service: Annotated[
        ServiceName, typer.Argument(help="The service whose projection to rebuild.")
    ],
    switch: Annotated[
        bool,
        typer.Option(
            "--switch",
            help="Finish the rebuild and make it the service's projection. The service must be"
            " stopped (scaled to 0); start it again afterwards.",
        ),
    ] = False,
    restart: Annotated[
        bool, typer.Option(help="Drop an unfinished rebuild and start again from offset 0.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            show_default=False,
            rich_help_panel=CONNECTION_PANEL,
            help="The service's PostgreSQL (default: what the service reads, e.g."
            " RECALL_DATABASE_URL or DATABASE_URL).",
        ),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Rebuild a service's projection from its topics, from offset 0, into a fresh schema.

    Without --switch the rebuild runs beside the live service (which keeps serving) up to what
    it has applied, and can be run again to catch up. Then stop the service and run with
    --switch: the rest of what it applied is rebuilt, the tables the service owns (recalls) and
    its unpublished events are carried over, and the schemas are swapped in one transaction.
    Started again, the service goes on from its consumer group's offsets. The old schema is
    kept as lottrace_replaced_<time> (drop it, or rename it back to roll back).
    """
    console = stdout()
    status = console.status(f"rebuilding {service.value}…")
    replay_run = _replay_of(service, database_url, bootstrap, status)
    with status:
        report = _run(replay_run, switch=switch, restart=restart)
    console.print(
        f"{service.value}: {report.applied:,} records applied in {report.seconds:.1f} s"
        f" into schema {report.schema}"
    )
    if not report.switched:
        console.print(
            f"next: stop {service.value}, then `lottrace replay {service.value} --switch`"
        )
        return
    console.print(_rows_table(report))
    console.print(
        f"switched: {service.value} reads the rebuilt projection once started again. The old"
        f" one is schema"
        f" {report.replaced_schema}: drop it once satisfied"
        f" (DROP SCHEMA {report.replaced_schema} CASCADE). Start {service.value} again."
    )


def _replay_of(
    service: ServiceName, database_url: str | None, bootstrap: str, status: Status
) -> Replay:
    """The service's replay, its progress shown on `status`; a refusal exits with status 1."""
    import importlib

    from shared.runtime.replay import Replay, ReplayRefused
    from shared.runtime.settings import InvalidSettings, load_settings

    app_module = importlib.import_module(f"services.{service.value}.app")
    try:
        settings = load_settings(app_module.Settings)
    except InvalidSettings as refusal:
        fail(f"invalid {service.value} settings\n{refusal}", code=2)
    plan = app_module.replay_plan(settings)
    url = database_url or settings.database_url.get_secret_value()

    def progress(phase: str, applied: int, left: int) -> None:
        status.update(f"{phase}: {applied:,} records applied, {left:,} to go")

    try:
        return Replay(plan, url, kafka_settings(bootstrap), on_progress=progress)
    except ReplayRefused as refused:
        fail(f"cannot replay {service.value}: {refused}")


def _run(replay_run: Replay, *, switch: bool, restart: bool) -> ReplayReport:
    import asyncpg

    from shared.runtime.replay import ReplayRefused

    try:
        return run_against_platform(
            replay_run.switch() if switch else replay_run.build(restart=restart)
        )
    except ReplayRefused as refused:
        fail(str(refused))
    except (OSError, asyncpg.PostgresError) as error:
        fail(f"PostgreSQL: {error}", hint="the URL comes from --database-url")


def _rows_table(report: ReplayReport) -> Table:
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("before", justify="right")
    table.add_column("rebuilt", justify="right")
    for name, (before, rebuilt) in report.table_rows.items():
        table.add_row(name, f"{before:,}", f"{rebuilt:,}")
    return table
