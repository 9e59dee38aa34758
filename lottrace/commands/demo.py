"""`lottrace demo`: the orange-juice story told against a running platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lottrace.client import SERVICES, Connection, kafka_settings
from lottrace.commands.options import (
    DEFAULT_BOOTSTRAP,
    FROM_CONNECTION_OPTIONS,
    BootstrapOption,
    with_connection_options,
)
from lottrace.commands.output import run_against_platform, stdout


def register(app: typer.Typer) -> None:
    app.command()(demo)


@with_connection_options(*SERVICES)
def demo(
    output_dir: Annotated[
        Path, typer.Option(help="Where the genealogy picture and the customers CSV go.")
    ] = Path("demo-output"),
    wait_seconds: Annotated[
        float, typer.Option(min=1, help="How long each step waits for the services to catch up.")
    ] = 60,
    target: Connection = FROM_CONNECTION_OPTIONS,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Tell the orange-juice story on a running platform (`make run`).

    Lots received (one by a GS1 scan, one pressed from a farm's oranges), orders from upstream,
    shipments, a customer complaint, the trace, the recall, the affected-customer list; the
    lot's genealogy and the customers CSV are written to the output folder. Each run makes new
    ids, so it can run again on the same platform.
    """
    from lottrace.demo import DemoSettings, run_demo

    settings = DemoSettings(
        connection=target,
        kafka=kafka_settings(bootstrap),
        output_dir=output_dir,
        wait_seconds=wait_seconds,
    )
    run_against_platform(run_demo(settings, stdout()))
