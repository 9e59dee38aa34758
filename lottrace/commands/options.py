"""The options commands share: where the services, their databases and the brokers are, and
the API key. Each defaults to what `make run` uses and can come from the environment."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from lottrace.client import (
    API_KEY_VARIABLE,
    SERVICES,
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
DatabaseUrls = Mapping[str, str]
# The default of a command's `databases` parameter: `with_database_options` replaces it.
FROM_DATABASE_OPTIONS: DatabaseUrls = MappingProxyType({})


def _database_parameters() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter("postgres", keyword, default=None, annotation=PostgresOption)] + [
        inspect.Parameter(
            f"{service}_database_url",
            keyword,
            default=None,
            annotation=Annotated[str | None, _database_option(service)],
        )
        for service in SERVICES
    ]


def with_database_options(command: Callable[..., None]) -> Callable[..., None]:
    """The command's `databases` parameter becomes the options --postgres and
    --<service>-database-url, in its place; the command gets the URLs they resolve to."""
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "databases":
            parameters += _database_parameters()
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def with_urls(**options: Any) -> None:
        postgres = options.pop("postgres")
        given = {s: options.pop(f"{s}_database_url") for s in SERVICES}
        command(databases=database_urls(postgres, **given), **options)

    with_urls.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_urls.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_urls


def database_urls(postgres: str | None, **given: str | None) -> dict[str, str]:
    from lottrace.check.reads import service_database_urls

    try:
        return service_database_urls(given, server=postgres)
    except ValidationError as error:
        fail(f"service settings: {error}", code=2)
