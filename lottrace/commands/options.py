"""The options commands share: where the services, their databases and the brokers are, and
the API key. Each defaults to what `make run` uses and can come from the environment."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from lottrace.client import (
    API_KEY_VARIABLE,
    Connection,
    Service,
    ServiceUrls,
    dev_platform_key,
    url_variable,
)
from lottrace.commands.output import fail

CONNECTION_PANEL = "Connection"
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_VARIABLE,
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help="API key, sent as `Authorization: Bearer`. Prefer the environment variable: a"
        " command line shows in `ps` and in the shell history.",
    ),
]


def _url_option(service: Service) -> Any:
    return typer.Option(
        f"--{service}-url",
        envvar=url_variable(service),
        rich_help_panel=CONNECTION_PANEL,
        help=f"Base URL of the {service} service.",
    )


ReceivingUrlOption = Annotated[str, _url_option("receiving")]
InventoryUrlOption = Annotated[str, _url_option("inventory")]
FulfillmentUrlOption = Annotated[str, _url_option("fulfillment")]
RecallUrlOption = Annotated[str, _url_option("recall")]
BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        rich_help_panel=CONNECTION_PANEL,
        help="Kafka brokers, comma-separated. TLS and SASL come from the KAFKA_* variables the"
        " services read.",
    ),
]
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def connection(api_key: str | None, **urls: str | None) -> Connection:
    return Connection(urls=ServiceUrls().but(**urls), api_key=api_key or dev_platform_key())


def _database_option(service: Service) -> Any:
    return typer.Option(
        f"--{service}-database-url",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help=f"PostgreSQL URL of {service} (default: --postgres, else what {service} reads:"
        f" {service.upper()}_DATABASE_URL, DATABASE_URL, or lottrace_{service} on"
        " 127.0.0.1:5432 as under `make run`).",
    )


PostgresOption = Annotated[
    str | None,
    typer.Option(
        "--postgres",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help="A PostgreSQL server URL holding the databases lottrace_<service>.",
    ),
]
ReceivingDatabaseOption = Annotated[str | None, _database_option("receiving")]
InventoryDatabaseOption = Annotated[str | None, _database_option("inventory")]
FulfillmentDatabaseOption = Annotated[str | None, _database_option("fulfillment")]
RecallDatabaseOption = Annotated[str | None, _database_option("recall")]


def database_urls(postgres: str | None, **given: str | None) -> dict[str, str]:
    from lottrace.check.reads import service_database_urls

    try:
        return service_database_urls(given, server=postgres)
    except ValidationError as error:
        fail(f"service settings: {error}", code=2)
