"""The service databases as a whole: `lottrace check` audits them against each other,
`lottrace backup` and `lottrace restore` dump and reload every one of them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lottrace.client import kafka_settings
from lottrace.commands.options import (
    DEFAULT_BOOTSTRAP,
    FROM_DATABASE_OPTIONS,
    BootstrapOption,
    DatabaseUrls,
    with_database_options,
)
from lottrace.commands.output import fail, stdout, write_json


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(backup)
    app.command()(restore)


@with_database_options
def check(
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Wait up to this long for the outboxes to empty and the consumer lag to reach 0"
            " before comparing.",
        ),
    ] = 0,
    stuck_after: Annotated[
        float,
        typer.Option(min=0, metavar="SECONDS", help="An outbox row older than this is stuck."),
    ] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    databases: DatabaseUrls = FROM_DATABASE_OPTIONS,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Audit the services' projections against each other (docs/operations.md#consistency-check).

    Lots in receiving, inventory and recall; shipments in fulfillment, inventory and recall;
    per lot, received = on hand + consumed + shipped - adjusted; unpublished outbox rows and
    consumer lag. Exit status: 0 consistent, 1 differences, 3 differences while work was in
    flight (run again with --wait), 4 a database or the brokers could not be read.
    """
    from lottrace.check.audit import CheckOptions, run_check
    from lottrace.check.reads import SourceUnreadable
    from lottrace.check.report import print_report, report_document, waiting_line

    options = CheckOptions(
        database_urls=databases,
        kafka=kafka_settings(bootstrap),
        wait_seconds=wait,
        stuck_after_seconds=stuck_after,
    )
    with Console(stderr=True).status("reading…") as status:
        try:
            report = asyncio.run(
                run_check(options, on_wait=lambda busy: status.update(waiting_line(busy)))
            )
        except SourceUnreadable as error:
            fail(str(error), code=4)
    if as_json:
        write_json(report_document(report))
    else:
        print_report(report, stdout())
    raise typer.Exit(report.exit_code)


PgBinOption = Annotated[
    Path | None,
    typer.Option(
        "--pg-bin",
        show_default=False,
        file_okay=False,
        help="Folder of pg_dump and pg_restore (default: the embedded PostgreSQL's, as under"
        " `make run`); as new as the server's.",
    ),
]


@with_database_options
def backup(
    archive: Annotated[Path, typer.Argument(help="The archive to write (a tar).")],
    pg_bin: PgBinOption = None,
    databases: DatabaseUrls = FROM_DATABASE_OPTIONS,
) -> None:
    """Dump every service database into one archive, with a manifest (docs/operations.md)."""
    from lottrace.backup import BackupError, PgTools
    from lottrace.backup import backup as make_backup

    try:
        manifest = asyncio.run(make_backup(databases, archive, PgTools.choose(pg_bin)))
    except BackupError as error:
        fail(str(error))
    sizes = ", ".join(f"{d.service} {d.size:,} bytes" for d in manifest.databases)
    stdout().print(f"{escape(str(archive))}: {sizes}")


@with_database_options
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive `lottrace backup` wrote.")],
    force: Annotated[
        bool, typer.Option(help="Replace databases that hold data (what they hold is lost).")
    ] = False,
    pg_bin: PgBinOption = None,
    databases: DatabaseUrls = FROM_DATABASE_OPTIONS,
) -> None:
    """Restore every service database from an archive; stop the services first.

    The manifest and each dump's checksum are checked before any database is touched.
    Databases holding rows are refused unless --force. Consumer positions: see
    docs/operations.md#restoring-after-a-database-loss. Exit status: 1 refused or failed,
    2 not a (readable) lottrace backup.
    """
    from lottrace.backup import ArchiveInvalid, BackupError, PgTools
    from lottrace.backup import restore as run_restore

    try:
        manifest = asyncio.run(run_restore(archive, databases, PgTools.choose(pg_bin), force=force))
    except ArchiveInvalid as error:
        fail(str(error), code=2)
    except BackupError as error:
        fail(str(error))
    stdout().print(
        f"restored {', '.join(d.service for d in manifest.databases)} as of"
        f" {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC (lottrace {manifest.lottrace_version})."
        " Next: start the services; see docs/operations.md for consumer positions."
    )
