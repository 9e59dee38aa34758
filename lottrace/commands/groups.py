"""A topic whose commands sit under one name (`lottrace dlq list`, `lottrace recall issue`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def add_group(app: typer.Typer, name: str, help: str, **commands: Callable[..., Any]) -> None:
    """`app <name> <command>` for each command, in the order given; `app <name>` alone shows
    the group's help."""
    group = typer.Typer(help=help, no_args_is_help=True)
    for command_name, command in commands.items():
        group.command(command_name)(command)
    app.add_typer(group, name=name)
