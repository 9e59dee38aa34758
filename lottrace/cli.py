"""The `lottrace` command line."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="lottrace: lot tracking, FEFO allocation and recalls.", no_args_is_help=True)


@app.command()
def dev(
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker.")] = 9092,
    postgres_port: Annotated[int, typer.Option(help="Port of the embedded PostgreSQL.")] = 5432,
    log_dir: Annotated[
        Path | None, typer.Option(help="Where service logs go (default: a new temporary folder).")
    ] = None,
    auto_ship: Annotated[
        bool, typer.Option(help="Fulfillment ships every allocation at once.")
    ] = False,
) -> None:
    """Start the whole platform on the embedded broker and PostgreSQL (what `make run` does)."""
    from lottrace.devstack import Platform, run_until_interrupted

    logs = log_dir or Path(tempfile.mkdtemp(prefix="lottrace-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    platform = Platform(
        kafka_port=kafka_port,
        postgres_port=postgres_port,
        log_dir=logs,
        service_env={"fulfillment": {"FULFILLMENT_AUTO_SHIP": "true"}} if auto_ship else {},
    )
    asyncio.run(run_until_interrupted(platform))


@app.command()
def contracts(
    out: Annotated[
        Path, typer.Option(help="Folder for the AsyncAPI and JSON Schema documents.")
    ] = Path("docs/contracts"),
) -> None:
    """Write the AsyncAPI document and the JSON Schemas of every event."""
    from shared.contracts.docs import write_documents

    for path in write_documents(out):
        typer.echo(path)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
