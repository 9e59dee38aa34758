"""The options commands share: where the services, their databases and the brokers are, and
the API key. Each defaults to what `make run` uses and can come from the environment."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import typer

from lottrace.client import (
    API_KEY_VARIABLE,
    DEFAULT_URLS,
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


def _expanding(
    name: str, options: Sequence[inspect.Parameter], resolve: Callable[..., object]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator: the command's parameter `name` becomes `options`, in its place (the help
    lists them there); the command gets what `resolve` makes of their values."""

    def expand(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name == name:
                parameters += options
            else:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def with_options(**given: Any) -> None:
            values = {option.name: given.pop(option.name) for option in options}
            command(**{name: resolve(**values)}, **given)

        with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options

    return expand


def _option(name: str, annotation: object, default: object) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def with_connection_options(
    *services: Service,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The command's `target` parameter becomes the options --<service>-url of these services
    and --api-key, in its place; the command gets the Connection they make."""
    urls = [
        _option(f"{service}_url", Annotated[str, _url_option(service)], DEFAULT_URLS[service])
        for service in services
    ]

    def target(api_key: str | None, **given: str) -> Connection:
        return connection(api_key, **{s: given[f"{s}_url"] for s in services})

    return _expanding("target", [*urls, _option("api_key", ApiKeyOption, None)], target)


# The default of a command's `target` parameter: `with_connection_options` replaces it.
FROM_CONNECTION_OPTIONS = Connection()


def _database_urls(postgres: str | None, **given: str | None) -> dict[str, str]:
    return database_urls(postgres, **{s: given[f"{s}_database_url"] for s in SERVICES})


_DATABASE_OPTIONS = [_option("postgres", PostgresOption, None)] + [
    _option(f"{service}_database_url", Annotated[str | None, _database_option(service)], None)
    for service in SERVICES
]


def with_database_options(command: Callable[..., None]) -> Callable[..., None]:
    """The command's `databases` parameter becomes the options --postgres and
    --<service>-database-url, in its place; the command gets the URLs they resolve to."""
    return _expanding("databases", _DATABASE_OPTIONS, _database_urls)(command)


def database_urls(postgres: str | None, **given: str | None) -> dict[str, str]:
    from lottrace.check.reads import service_database_urls
    from shared.runtime.settings import InvalidSettings

    try:
        return service_database_urls(given, server=postgres)
    except InvalidSettings as refusal:
        fail(f"invalid service settings\n{refusal}", code=2)
