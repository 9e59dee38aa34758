"""`lottrace hash-key`: the API_KEYS entry of a key, so that only its hash is ever stored."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from shared.runtime.auth import DEFAULT_ITERATIONS, MIN_ITERATIONS, Role


def register(app: typer.Typer) -> None:
    app.command("hash-key")(hash_key)


def hash_key(
    name: Annotated[
        str, typer.Option(help="Whose key: recorded as the actor of every change made with it.")
    ],
    role: Annotated[
        list[Role], typer.Option("--role", help="A role of the key; repeat for several.")
    ],
    generate: Annotated[
        bool,
        typer.Option(help="Make a new random key (printed once, on stderr) instead of reading."),
    ] = False,
    iterations: Annotated[
        int, typer.Option(min=MIN_ITERATIONS, help="PBKDF2-HMAC-SHA256 iterations.")
    ] = DEFAULT_ITERATIONS,
) -> None:
    """Print the API_KEYS entry {name, roles, hash} of a key: only the hash is ever stored.

    The key is read from stdin (one line; prompted for, hidden, on a terminal), never from the
    command line, where shell history and `ps` would keep it. With --generate a new key is
    made. The entry goes to stdout as one JSON line: add it to the list in API_KEYS or in the
    API_KEYS_FILE (YAML or JSON).
    """
    from shared.runtime.auth import generate_key, hash_key, parse_entries

    if generate:
        key = generate_key()
    elif sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True, confirmation_prompt=True)
    else:
        key = sys.stdin.readline().rstrip("\r\n")
    roles = sorted({item.value for item in role})
    try:
        entry = {"name": name, "roles": roles, "hash": hash_key(key, iterations=iterations)}
        parse_entries([entry], source="the new key")
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if generate:
        typer.echo(f"API key: {key}", err=True)
        typer.echo(
            f"Shown once: give it to {name}; send it as `Authorization: Bearer <key>`.", err=True
        )
    typer.echo(json.dumps(entry))
