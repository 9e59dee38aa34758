"""What every command does with its result and its failure: print to stdout, write JSON, or say
one line on stderr and exit with the documented status (1 the platform refused or could not be
reached, 2 bad input)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape

from lottrace.client import ServiceError, ServiceUnreachable

T = TypeVar("T")


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f")]


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, *, hint: str | None = None, code: int = 1) -> NoReturn:
    """One line on stderr (and a hint), then exit: 1 the platform said no, 2 bad input."""
    errors = stderr()
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        errors.print(f"hint: {escape(hint)}", soft_wrap=True)
    raise typer.Exit(code)


def run_against_platform(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; what the platform refuses becomes one line and exit status 1."""
    try:
        return asyncio.run(work)
    except ServiceError as error:
        fail(str(error), hint=error.hint)
    except ServiceUnreachable as error:
        fail(str(error))
    except KafkaError as error:
        fail(
            f"Kafka: {error}",
            hint="the brokers come from --bootstrap / KAFKA_BOOTSTRAP_SERVERS, TLS and SASL"
            " from the KAFKA_* variables",
        )
    except TimeoutError as error:
        fail(str(error))


def write_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))
