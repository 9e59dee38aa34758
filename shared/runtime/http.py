"""The HTTP side of every service: FastAPI app, error shape, authentication, health,
readiness, metrics.

Errors are always `{"error": code, "detail": text}`; bad input is a 4xx, never a 500.

Every route but the operations endpoints declares the role it needs
(`dependencies=[requires(Role.X)]`, see shared/runtime/auth.py); an app with a route that
declares none is refused at start-up. `/healthz`, `/readyz` and `/metrics` are open: on the
main port by default, or only on `OPS_HTTP_PORT` when that is set (a second uvicorn server in
the same process and event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date
from typing import Annotated, Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import Counter, Histogram
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars

from shared.errors import DomainError, ErrorKind
from shared.runtime import metrics
from shared.runtime.auth import API_KEY_HEADER, BEARER, Authenticator, RequireRole, required_role
from shared.runtime.database import Connection, Database, is_transient
from shared.runtime.logging import get_logger
from shared.runtime.service import ServiceRuntime

log = get_logger(__name__)


class ApiError(Exception):
    """An expected refusal: its status, a stable machine code, and a human detail."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


# The one mapping from a domain refusal to HTTP.
STATUS_OF_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
}

# When a client refused for now (503) may ask again.
UNAVAILABLE_RETRY_AFTER_SECONDS = "5"


class ErrorBody(BaseModel):
    error: str
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 404, 409, 413, 422, 503)
}

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "No API key, or an unknown one (`WWW-Authenticate: Bearer`).",
    },
    403: {"model": ErrorBody, "description": "The key lacks the role this route needs."},
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _text_matching(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        # Objects pass (the service's own callers); text must have the documented form, else
        # pydantic would read `0` or "20270331" as seconds since 1970.
        if isinstance(value, date):
            return value
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"expected {what}")
        return value

    return BeforeValidator(check)


Rfc3339Date = Annotated[date, _text_matching(_RFC3339_DATE, "a date as YYYY-MM-DD")]
"""A date in a request: `YYYY-MM-DD` text, as the OpenAPI document says (format `date`)."""

Rfc3339DateTime = Annotated[
    AwareDatetime,
    _text_matching(_RFC3339_DATE_TIME, "a date and time as YYYY-MM-DDThh:mm:ss with an offset"),
]
"""A moment in a request: RFC 3339 text with an offset (format `date-time`)."""


async def _refusal(request: Request) -> JSONResponse | None:
    """The 401 or 403 the route's role check gives this caller, or None when it passes."""
    route = request.scope.get("route")
    role = required_role(getattr(route, "dependencies", ()))
    if role is None:
        return None
    try:
        await RequireRole(role)(
            request, bearer=await BEARER(request), api_key=await API_KEY_HEADER(request)
        )
    except StarletteHTTPException as refused:
        code = _STATUS_CODES.get(refused.status_code, "error")
        return error_response(
            refused.status_code, code, str(refused.detail), **dict(refused.headers or {})
        )
    return None


def error_response(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _describe(errors: Sequence[Any]) -> str:
    parts = []
    for problem in errors[:5]:
        location = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {problem.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)


class BodySizeLimit:
    """Refuses request bodies over a limit with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(413, "too_large", f"request body over {self.max_bytes} bytes")(
                    scope, receive, send
                )
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await error_response(413, "too_large", f"request body over {self.max_bytes} bytes")(
                scope, receive, send
            )


class _TooLarge(Exception):
    pass


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DRAIN_RETRY_AFTER_SECONDS = 10


class Draining:
    """While the platform stops (`start_draining`, SIGUSR1 under `make run`), writes answer
    503 with Retry-After and reads go on: consumers and the outbox relay keep running so what
    was accepted is delivered before the process stops."""

    active = False

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if Draining.active and scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            refusal = error_response(
                503,
                "stopping",
                "the platform is stopping and takes no new writes; retry once it is back",
                **{"Retry-After": str(DRAIN_RETRY_AFTER_SECONDS)},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def start_draining() -> None:
    """Refuse writes from now on, in every app of this process."""
    if not Draining.active:
        Draining.active = True
        log.info("draining: writes are refused from now on")


UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Path parameters worth having on an error's log line: they name the entity.
_LOGGED_PATH_PARAMS = ("lot_id", "order_id", "recall_id")


class RequestMetrics:
    """Counts requests and times them by route template (`/lots/{lot_id}`, never the raw path,
    which would make one time series per lot), method and status.

    Pure ASGI: the router stores the matched route in the scope, which is read once the app
    has answered. The metric children are cached per label set, so a request costs two
    dictionary lookups and two locked updates.

    A request that ends in an exception reaches the app's outermost error handler, outside
    every middleware, which answers 500 (503 for a transient dependency failure) and logs it.
    For that log line, the route and the entity ids of the path are bound to structlog's
    context and left bound: each request has its own task, hence its own context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._templates: dict[Any, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception as error:
            # What the error handler answers (see create_http_app), unless the response began.
            status = status or (503 if is_transient(error) else 500)
            _bind_request_context(scope, self._route(scope))
            raise
        except asyncio.CancelledError:
            status = status or 499  # the client went away, or the server is stopping
            raise
        finally:
            method = scope["method"]
            if method not in _METHODS:
                method = "OTHER"  # any token is a method to some servers: keep the labels few
            key = (method, self._route(scope), status or 500)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    metrics.HTTP_REQUESTS.labels(key[0], key[1], str(key[2])),
                    metrics.HTTP_REQUEST_SECONDS.labels(key[0], key[1]),
                )
            requests, seconds = children
            requests.inc()
            seconds.observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            path: str = getattr(route, "path_format", None) or route.path
            return path
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        # Starlette's own routes (the API documents) leave only their endpoint in the scope.
        template = self._templates.get(endpoint)
        if template is None:
            app = scope.get("app")
            found = (
                getattr(candidate, "path_format", None) or getattr(candidate, "path", None)
                for candidate in getattr(app, "routes", ())
                if getattr(candidate, "endpoint", None) is endpoint
            )
            template = self._templates[endpoint] = next(found, None) or UNMATCHED_ROUTE
        return template


def _bind_request_context(scope: Scope, route: str) -> None:
    params = scope.get("path_params") or {}
    bind_contextvars(
        http_method=scope["method"],
        route=route,
        **{name: str(params[name]) for name in _LOGGED_PATH_PARAMS if name in params},
    )


def create_http_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    version: str = "1.0.0",
) -> FastAPI:
    settings = runtime.settings
    # Malformed keys stop the service here, at start-up, naming the entry (AuthConfigError).
    authenticator = Authenticator.from_settings(settings)
    operations = _operations_router(runtime, authenticator)
    ops_app: FastAPI | None = None
    if settings.ops_http_port is not None:
        ops_app = FastAPI(
            title=f"{title} (operations)", openapi_url=None, docs_url=None, redoc_url=None
        )
        ops_app.include_router(operations)
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=_lifespan(runtime, authenticator, ops_app),
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(Draining)
    # Added last, so outermost of the user middleware: it also counts the 413s of the limit.
    app.add_middleware(RequestMetrics)
    for error_type, handler in _ERROR_HANDLERS:
        app.add_exception_handler(error_type, handler)
    if ops_app is None:
        app.include_router(operations)
    for router in routers:
        _declare_roles(router)
        app.include_router(router, responses=AUTH_RESPONSES)
    return app


def _lifespan(
    runtime: ServiceRuntime, authenticator: Authenticator, ops_app: FastAPI | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the runtime (and the operations port's server, when there is one) with the app."""
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _log_auth(authenticator)
        ops_server: _OpsServer | None = None
        if ops_app is not None:
            assert settings.ops_http_port is not None
            ops_server = await _OpsServer.start(ops_app, settings.http_host, settings.ops_http_port)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            if ops_server is not None:
                await ops_server.stop()

    return lifespan


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.error, error.detail)


async def _refused(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    retry = {"Retry-After": UNAVAILABLE_RETRY_AFTER_SECONDS}
    return error_response(
        STATUS_OF_KIND[error.kind],
        error.code,
        error.message,
        **(retry if error.kind is ErrorKind.UNAVAILABLE else {}),
    )


async def _invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # FastAPI parses a JSON body before the route's dependencies run: without
    # this, a caller with no key would hear that the body is malformed instead of 401.
    if (refused := await _refusal(request)) is not None:
        return refused
    errors = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in errors):
        return error_response(400, "malformed_json", "the body is not valid JSON")
    return error_response(422, "invalid_request", _describe(errors))


async def _http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _STATUS_CODES.get(error.status_code, "error")
    headers = dict(error.headers or {})
    if error.status_code == 405 and (allowed := _allowed_methods(request)):
        # Starlette names the methods of the first route on the path only.
        headers["Allow"] = ", ".join(allowed)
    return error_response(error.status_code, code, str(error.detail), **headers)


async def _bad_value(request: Request, error: Exception) -> JSONResponse:
    # A value the request carried that PostgreSQL cannot store or compare: text with NUL
    # characters, a number beyond its range. The client's mistake, not the service's.
    log.info("request refused by the database", path=request.url.path, error=str(error))
    return error_response(
        422,
        "invalid_value",
        "a value in the request cannot be stored (a NUL character, a number out of range)",
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    if is_transient(error):
        log.warning("request failed on a dependency", path=request.url.path, error=str(error))
        return error_response(
            503, "unavailable", "a dependency is unavailable; retry shortly", **{"Retry-After": "2"}
        )
    log.exception("request failed", path=request.url.path)
    return error_response(500, "internal_error", "unexpected error; see the service log")


# Every refusal, by the exception that carries it: the one mapping to HTTP answers.
_ERROR_HANDLERS: tuple[tuple[type[Exception], Callable[[Request, Exception], Any]], ...] = (
    (ApiError, _api_error),
    (DomainError, _refused),
    (RequestValidationError, _invalid),
    (StarletteHTTPException, _http),
    (asyncpg.exceptions.DataError, _bad_value),
    (Exception, _unexpected),
)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path (asked of the routes
    themselves: FastAPI nests included routers)."""
    allowed = []
    for method in sorted(_METHODS):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _operations_router(runtime: ServiceRuntime, authenticator: Authenticator) -> APIRouter:
    """Health, readiness and metrics: open (no key), for probes and scrapers."""
    operations = APIRouter(tags=["operations"])

    @operations.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @operations.get(
        "/readyz",
        summary="The database and the broker are reachable, and API keys are configured",
    )
    async def readyz() -> JSONResponse:
        report = await runtime.readiness()
        problem = authenticator.problem
        if problem is not None:
            # Serving nothing but 401s is not ready: a rollout without its keys stalls
            # instead of replacing working pods (the consumer keeps consuming meanwhile).
            report["checks"]["auth"] = problem
            report["ready"] = False
            metrics.READY.set(0)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @operations.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return operations


def _declare_roles(router: APIRouter) -> None:
    """Every route must declare its role (else the app is refused); the role goes into the
    OpenAPI document (`x-required-role` and a line of the description). Idempotent: a
    service's router is shared by every app made from it."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise RuntimeError(f"{route!r}: only plain API routes can declare a role")
        role = required_role([*router.dependencies, *route.dependencies])
        if role is None:
            methods = ",".join(sorted(route.methods or ()))
            raise RuntimeError(
                f"{methods} {route.path} declares no role: add"
                " `dependencies=[requires(Role.<ROLE>)]` (shared/runtime/auth.py)"
            )
        note = f"Needs the `{role.value}` role (or `admin`)."
        if note not in (route.description or ""):
            route.description = f"{route.description}\n\n{note}" if route.description else note
        route.openapi_extra = {**(route.openapi_extra or {}), "x-required-role": role.value}


def _log_auth(authenticator: Authenticator) -> None:
    if authenticator.mode == "disabled":
        log.warning(
            "AUTH_MODE=disabled: every route is open and callers name themselves (X-Actor);"
            " for demos only"
        )
    elif authenticator.problem is not None:
        log.warning(
            "no API keys are configured: every request except /healthz, /readyz and /metrics"
            " is refused with 401, and /readyz reports not ready. Set API_KEYS or"
            " API_KEYS_FILE (entries from `lottrace hash-key`), or AUTH_MODE=disabled for a demo"
        )
    else:
        log.info("authentication required", key_names=authenticator.names)


class _OpsServer(uvicorn.Server):
    """The operations endpoints on their own port, in this process and event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The main server owns SIGINT/SIGTERM; this one stops when the main app's lifespan ends.
        yield

    @classmethod
    async def start(cls, app: FastAPI, host: str, port: int) -> _OpsServer:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as error:
            raise RuntimeError(
                f"cannot serve the operations endpoints on {host}:{port} (OPS_HTTP_PORT): {error}"
            ) from error
        server = cls(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
            )
        )
        server.listener = listener
        server.task = asyncio.create_task(server.serve(sockets=[listener]), name="ops-http")
        # uvicorn's `started` is a plain flag, not an awaitable: look every 10 ms.
        while not server.started and not server.task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.task.done():
            listener.close()
            server.task.result()
            raise RuntimeError(f"the operations server on {host}:{port} stopped at start-up")
        log.info("operations endpoints listening", host=host, port=port)
        return server

    listener: socket.socket
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)
        self.listener.close()


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def database_of(request: Request) -> Database:
    runtime = runtime_of(request)
    if not runtime.database.is_open:
        raise ApiError(503, "unavailable", "the service is starting; retry shortly")
    return runtime.database


@asynccontextmanager
async def connection_of(request: Request) -> AsyncIterator[Connection]:
    """A pooled connection to the service's database, for reads outside a unit of work."""
    async with database_of(request).pool.acquire() as connection:
        yield connection


def with_examples(*examples: JsonValue) -> ConfigDict:
    """The config of an HTTP body that shows these examples in the API docs."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})
