"""The `lottrace` commands, a module per topic; each module registers its own commands.

The order of registration is the order `lottrace --help` lists the commands in."""

from __future__ import annotations

import typer

from lottrace.commands import (
    databases,
    demo,
    dlq,
    imports,
    keys,
    lots,
    platform,
    recall,
    replay,
    reports,
    scan,
    trace,
)

app = typer.Typer(help="lottrace: lot tracking, FEFO allocation and recalls.", no_args_is_help=True)
for topic in (platform, keys, trace, scan, replay, demo, databases, recall, lots, imports, dlq):
    topic.register(app)
reports.register(app)
