"""`lottrace dev` starts the whole platform locally; `lottrace contracts` writes the documents
of the events it exchanges."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from lottrace.commands.output import fail, stderr


def register(app: typer.Typer) -> None:
    app.command()(dev)
    app.command()(contracts)


def dev(
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker.")] = 9092,
    postgres_port: Annotated[int, typer.Option(help="Port of the embedded PostgreSQL.")] = 5432,
    log_dir: Annotated[
        Path | None, typer.Option(help="Where service logs go (default: logs/ in the data folder).")
    ] = None,
    auto_ship: Annotated[
        bool, typer.Option(help="Fulfillment ships every allocation at once.")
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            help="The data folder (default: $LOTTRACE_HOME, or .lottrace/ in the checkout)."
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option(help="Delete the data folder's data first (asks; see --yes).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before --reset.")] = False,
) -> None:
    """Start the whole platform on the embedded broker and PostgreSQL (what `make run` does).

    The data stays in the data folder between runs; Ctrl-C drains, then stops."""
    from lottrace.devstack import Platform, run_until_interrupted
    from lottrace.home import HomeError, default_home, describe

    folder = (home or default_home()).absolute()
    try:
        if reset:
            _reset_home(folder, yes=yes)
        platform = Platform(
            kafka_port=kafka_port,
            postgres_port=postgres_port,
            log_dir=log_dir,
            home=folder,
            service_env={"fulfillment": {"FULFILLMENT_AUTO_SHIP": "true"}} if auto_ship else {},
        )
    except HomeError as error:
        fail(f"lottrace cannot start: {error}")
    except OSError as error:
        fail(f"lottrace cannot start: {describe(error)} ({error.filename or folder})")
    raise typer.Exit(asyncio.run(run_until_interrupted(platform)))


def _reset_home(folder: Path, *, yes: bool) -> None:
    """Delete a data folder's data, after asking, and only when no platform runs on it."""
    from lottrace.home import DataHome, HomeLock

    if not folder.exists():
        return
    if not yes and not typer.confirm(
        f"Delete every lot, order, shipment and recall in {folder}?", default=False
    ):
        fail("nothing deleted", code=2)
    lock = HomeLock(folder)
    lock.acquire()  # refuses while a platform runs on it
    try:
        DataHome(folder).reset()
    finally:
        lock.release()
    stderr().print(f"deleted the data in {folder}")


def contracts(
    out: Annotated[
        Path, typer.Option(help="Folder for the AsyncAPI and JSON Schema documents.")
    ] = Path("docs/contracts"),
) -> None:
    """Write the AsyncAPI document and the JSON Schemas of every event."""
    from shared.contracts.docs import write_documents

    for path in write_documents(out):
        typer.echo(path)
