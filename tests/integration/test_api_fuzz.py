"""Property-based tests of every operation of the four HTTP APIs (schemathesis), against the
real services: each app runs as in the other integration tests (`running()`: real
Kafka-protocol broker, real PostgreSQL, authentication required) and is served over real
HTTP by uvicorn, in a thread of its own, while schemathesis sends it generated requests,
valid and invalid, with the admin key.

For every response: never a 5xx; the status code, content type, headers and body are the
ones the OpenAPI document declares; every 4xx is `{"error": code, "detail": text}`. Without
a key, every protected operation answers 401 (with `WWW-Authenticate: Bearer`) and the
operations endpoints stay open.

The platform is seeded (products, lots with genealogy, orders allocated and shipped, a
recall) and generated requests often name those ids, so reads and commands reach past 404.
The documents tested are built from the same routers; one test checks each service serves
exactly that document. The requests fuzzing once found answered wrongly are replayed as
plain examples at the end (`FOUND`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeAlias
from unittest.mock import ANY

import httpx
import jsonschema_rs
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.core import NotSet
from schemathesis.core.failures import AcceptedNegativeData, Failure
from schemathesis.core.parameters import ParameterLocation

from lottrace.infra import TansuBroker, free_port, wait_until
from services.fulfillment import app as fulfillment_app
from services.inventory import app as inventory_app
from services.recall import app as recall_app
from services.receiving import app as receiving_app
from shared.contracts.events import OrderPlaced
from shared.runtime.settings import ServiceSettings
from tests.conftest import PostgresServer
from tests.integration.service_apps import ADMIN_API_KEYS, ADMIN_KEY, quick_settings, running
from tests.kafka_helpers import publish

# schemathesis's negative strategies use `random`; this Hypothesis warns about it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

# Generated requests per operation with the admin key (the fuzzing phase; the examples and
# coverage phases add a few dozen of their own): the file takes ~40 s on 2 cores.
# LOTTRACE_FUZZ_EXAMPLES=600 searches harder (~3 min).
MAX_EXAMPLES = int(os.environ.get("LOTTRACE_FUZZ_EXAMPLES", "50"))
ANONYMOUS_EXAMPLES = 5  # per operation and kind of missing credentials
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
TODAY = date.today()
GS = "\x1d"
# ]C1 GS1-128: (01) GTIN, (17) expiry, (10) lot ended by FNC1, (37) count.
SCANNED_CASE = "]C1" + "0109501101530003" + "17270331" + "10FUZZ-GS1" + GS + "3712"

Case: TypeAlias = "schemathesis.Case[Any]"
Factory = Callable[[Any], FastAPI]
SERVICES: dict[str, tuple[type[ServiceSettings], Factory]] = {
    "receiving": (receiving_app.Settings, receiving_app.create_app),
    "inventory": (inventory_app.Settings, inventory_app.create_app),
    "fulfillment": (fulfillment_app.Settings, fulfillment_app.create_app),
    "recall": (recall_app.Settings, recall_app.create_app),
}


def document(service: str) -> dict[str, Any]:
    """The service's OpenAPI document: building an app connects to nothing."""
    settings_type, create_app = SERVICES[service]
    settings = settings_type(
        database_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"), api_keys=ADMIN_API_KEYS
    )
    return create_app(settings).openapi()


NEGATIVE_REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "415", "422"]
CHECKS_OFF = (
    # Valid input can be refused by the state of things (no such lot, recalled, not enough).
    "positive_data_acceptance",
    # Stateful and authorization checks: `test_without_a_key_*` covers authentication.
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
)


def config(*, authenticated: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"} if authenticated else {},
            "generation": {
                "max-examples": MAX_EXAMPLES if authenticated else ANONYMOUS_EXAMPLES,
                "mode": "all" if authenticated else "positive",
                # Keys are sent as configured above (or not at all), never generated.
                "with-security-parameters": False,
                "database": "none",
            },
            "phases": {
                "coverage": {"enabled": authenticated},
                "stateful": {"enabled": False},
            },
            "checks": {
                **{name: {"enabled": False} for name in CHECKS_OFF},
                # A body over the limit is refused too (413), before it is read.
                "negative_data_rejection": {"expected-statuses": [*NEGATIVE_REFUSALS, "413"]},
            },
            "continue-on-failure": True,
        }
    )


DOCUMENTS = {name: document(name) for name in SERVICES}
FUZZ = {
    name: schemathesis.openapi.from_dict(doc, config=config(authenticated=True))
    for name, doc in DOCUMENTS.items()
}
ANONYMOUS = {
    name: schemathesis.openapi.from_dict(doc, config=config(authenticated=False))
    for name, doc in DOCUMENTS.items()
}


# ---------------------------------------------------------------------- known entities


# Ids of seeded entities, by the name parameters and fields carry them under (the fixture
# fills it in before the first test).
KNOWN: dict[str, list[Any]] = {}


def _named(draw: st.DrawFn, value: Any) -> Any:
    """`value` with, here and there, a field or parameter replaced by a seeded one's value."""
    if isinstance(value, list):
        return [_named(draw, item) for item in value]
    if not isinstance(value, dict):
        return value
    named = {}
    for key, item in value.items():
        known = KNOWN.get(key)
        if known and draw(st.booleans()):
            named[key] = draw(st.sampled_from(known))
        else:
            named[key] = _named(draw, item)
    return named


LOCATIONS = {
    "path_parameters": ParameterLocation.PATH,
    "query": ParameterLocation.QUERY,
    "body": ParameterLocation.BODY,
}


def flatmap_case(context: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Case]:
    """Generated requests often name seeded entities, so they reach past 404 (an invalid part
    of a request stays as generated: the negative checks hold it to being refused)."""

    @st.composite
    def with_known(draw: st.DrawFn) -> Case:
        for name, location in LOCATIONS.items():
            value = getattr(case, name)
            if case.meta is not None and case.meta.is_negative_at(location):
                continue
            if isinstance(value, dict):
                named = _named(draw, value)
                if named != value:
                    setattr(case, name, named)
        return case

    return with_known()


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_stripped(item) for item in value]
    if isinstance(value, dict):
        return {key: _stripped(item) for key, item in value.items()}
    return value


def _conforms(schema: dict[str, Any], value: Any, document: dict[str, Any]) -> bool:
    rooted = {**schema, "components": document.get("components", {})}
    return bool(jsonschema_rs.validator_for(rooted, validate_formats=True).is_valid(value))


def valid_once_stripped(case: Case) -> bool:
    """Whether the request conforms to the document once whitespace around its texts is gone:
    the services' text types strip it before checking lengths (shared/contracts/types.py)."""
    document = case.operation.schema.raw_schema
    operation = document["paths"][case.path][case.method.lower()]
    containers = {"path": case.path_parameters or {}, "query": case.query or {}}
    declared: dict[str, set[str]] = {"path": set(), "query": set()}
    for parameter in operation.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        if where not in containers:
            continue
        declared[where].add(name)
        if name in containers[where]:
            value = _stripped(containers[where][name])
            if not _conforms(parameter["schema"], value, document):
                return False
        elif parameter.get("required"):
            return False
    if any(set(containers[where]) - declared[where] for where in containers):
        return False
    body = operation.get("requestBody")
    if body is None or isinstance(case.body, NotSet):
        return True
    schema = body["content"].get(case.media_type or "application/json", {}).get("schema")
    return schema is not None and _conforms(schema, _stripped(case.body), document)


def filter_failure(
    context: schemathesis.HookContext,
    failure: Failure,
    case: Case,
    response: schemathesis.Response,
) -> bool:
    """Keeps every failure but "invalid input accepted" for input that is valid once stripped
    of surrounding whitespace (`" OJ-1L "` is the SKU `OJ-1L`, within its 64 characters)."""
    return not (isinstance(failure, AcceptedNegativeData) and valid_once_stripped(case))


for schema in FUZZ.values():
    schema.hook(flatmap_case)
    schema.hook(filter_failure)


# ---------------------------------------------------------------------- checks


def error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A 4xx is JSON `{"error": code, "detail": text}`, a 401 also says how to authenticate."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), f"4xx as {content_type!r}"
        body = response.json()
        assert isinstance(body, dict), body
        assert set(body) == {"error", "detail"}, body
        assert isinstance(body["error"], str), body
        assert body["error"], body
        assert isinstance(body["detail"], str), body
    if response.status_code == 401:
        assert response.headers.get("www-authenticate") == ["Bearer"], response.headers
    return None


def allow_on_405(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A 405 names exactly the methods the document has for the path."""
    if response.status_code == 405:
        allow = ", ".join(response.headers.get("allow", []))
        documented = case.operation.schema.raw_schema["paths"][case.path]
        assert {m.strip() for m in allow.split(",")} == {m.upper() for m in documented}, allow
    return None


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """No 5xx, not even a documented 503: the broker and the databases are up."""
    assert response.status_code < 500, f"{response.status_code}: {response.content[:500]!r}"
    return None


def refused_without_a_key(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Without a valid key, 401 on every route but the operations endpoints, which stay open."""
    if case.path in OPEN_PATHS:
        assert response.status_code != 401, response.content[:500]
    else:
        assert response.status_code == 401, f"{response.status_code}: {response.content[:500]!r}"
    return None


# ---------------------------------------------------------------------- the platform


class _Server(uvicorn.Server):
    """An app over real HTTP in the platform's event loop; its lifespan runs elsewhere."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # not the main thread: pytest keeps its signals


@dataclass
class Platform:
    urls: dict[str, str]  # per service, over real HTTP


class PlatformThread(threading.Thread):
    """Broker, databases and the four services, in an event loop of their own: the tests are
    synchronous (schemathesis), and the services must keep serving while a test waits."""

    def __init__(self, postgres: PostgresServer) -> None:
        super().__init__(name="api-fuzz-platform", daemon=True)
        self.postgres = postgres
        self.ready = threading.Event()
        self.platform: Platform | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self.error = error
        finally:
            self.ready.set()

    def stop(self) -> None:
        if self.is_alive() and self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=60)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = stopping = asyncio.Event()
        broker = TansuBroker()
        await broker.start()
        try:
            await broker.create_topics(partitions=3)
            # The services start side by side (each waits for its consumer group).
            started = {name: self._loop.create_future() for name in SERVICES}
            tasks = [
                asyncio.create_task(self._service(name, broker, started[name]), name=name)
                for name in SERVICES
            ]
            try:
                services = dict(zip(SERVICES, await asyncio.gather(*started.values()), strict=True))
                await seed({name: client for name, (client, _) in services.items()}, broker)
                self.platform = Platform(urls={name: url for name, (_, url) in services.items()})
                self.ready.set()
                await stopping.wait()
            finally:
                stopping.set()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            broker.stop()

    async def _service(
        self,
        name: str,
        broker: TansuBroker,
        started: asyncio.Future[tuple[httpx.AsyncClient, str]],
    ) -> None:
        """One service, as the other integration tests run it, and over HTTP, until stopped."""
        assert self._stopping is not None
        database: str | None = None
        try:
            database = await self.postgres.create_database()
            settings_type, create_app = SERVICES[name]
            settings = quick_settings(settings_type, self.postgres.url(database), broker)
            app = create_app(settings)
            async with running(app) as client, _serving(app) as url:
                started.set_result((client, url))
                await self._stopping.wait()
        except BaseException as error:
            if not started.done():
                started.set_exception(error)
            raise
        finally:
            if database is not None:
                await self.postgres.drop_database(database)


@contextlib.asynccontextmanager
async def _serving(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    async with asyncio.timeout(30):  # uvicorn's flag is not awaitable
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"uvicorn on port {port} stopped at start-up")
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def seed(clients: dict[str, httpx.AsyncClient], broker: TansuBroker) -> None:
    """A product, lots (one made from another, one scanned), orders allocated, backordered
    and shipped, a recall: the ids go to KNOWN, for generated requests to name."""
    KNOWN.clear()
    receiving, inventory = clients["receiving"], clients["inventory"]
    fulfillment, recall = clients["fulfillment"], clients["recall"]

    async def ok(response: Any) -> dict[str, Any]:
        reply: httpx.Response = await response
        assert reply.status_code < 300, reply.text
        body: dict[str, Any] = reply.json()
        return body

    product = {"description": "Orange juice 1 L", "gtins": ["09501101530003"]}
    await ok(receiving.put("/products/OJ-1L", json=product))
    oranges = await ok(
        receiving.post(
            "/receipts",
            json={"sku": "ORANGES", "quantity": "500", "uom": "KG",
                  "supplier": {"supplier_id": "FARM", "name": "Orange Farm"},
                  "purchase_order": "PO-1"},
        )
    )  # fmt: skip
    receipts = [oranges]
    for days, cost in ((30, "1.20"), (90, None)):
        body: dict[str, Any] = {
            "sku": "OJ-1L",
            "quantity": "100",
            "expiry_date": (TODAY + timedelta(days=days)).isoformat(),
            "supplier": {"supplier_id": "GROVE"},
            "inputs": [{"lot_id": oranges["lot_id"], "quantity": "50"}],
        }
        if cost:
            body["unit_cost"] = {"amount": cost, "currency": "EUR"}
        receipts.append(await ok(receiving.post("/receipts", json=body)))
    receipts.append(await ok(receiving.post("/receipts/scan", json={"barcode": SCANNED_CASE})))
    for receipt in receipts:
        for name in ("lot_id", "lot_code", "sku"):
            KNOWN.setdefault(name, []).append(receipt[name])
    KNOWN["lot_ids"] = [[receipt["lot_id"]] for receipt in receipts]
    KNOWN["lot_codes"] = [[receipt["lot_code"]] for receipt in receipts]
    KNOWN["scans"] = [[f"(10){receipt['lot_code']}"] for receipt in receipts]
    KNOWN["barcode"] = [SCANNED_CASE, "(01)09501101530003(17)270430(10)FUZZ-GS2(37)6"]

    async def stocked() -> bool:
        lots = (await inventory.get("/stock", params={"sku": "OJ-1L"})).json()
        return len(lots) >= 3

    await wait_until(stocked, timeout=30, what="inventory has the lots")
    # One after another (orders of different keys have no order on the wire): two are
    # allocated, the last waits for stock that never comes (a backorder).
    orders = [f"SO-{uuid.uuid4().hex[:6].upper()}" for _ in range(3)]
    KNOWN["order_id"] = orders
    for order_id, quantity in zip(orders, (30, 10, 5000), strict=True):
        await publish(
            broker.bootstrap_servers,
            OrderPlaced(
                order_id=order_id,
                customer={"customer_id": f"C-{order_id}", "name": "Customer",
                          "address": {"line1": "1 Main St", "city": "Springfield"}},
                lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": quantity}],
            ),
        )  # fmt: skip

        async def known(order_id: str = order_id) -> bool:
            order = await fulfillment.get(f"/orders/{order_id}")
            return order.status_code == 200 and order.json()["allocation_revision"] > 0

        await wait_until(known, timeout=30, what=f"fulfillment knows the allocation of {order_id}")
    shipped = orders[0]
    await ok(fulfillment.post("/shipments", json={"order_id": shipped}))

    async def traced() -> bool:
        reply = await recall.get(f"/trace/orders/{shipped}")
        return reply.status_code == 200

    await wait_until(traced, timeout=30, what="recall knows the shipment")
    issued = await ok(
        recall.post(
            "/recalls",
            json={"reason": "fuzz seed", "scope": {"lot_codes": [oranges["lot_code"]]}},
        )
    )
    KNOWN["recall_id"] = [issued["recall_id"]]


@pytest.fixture(scope="module")
def platform(postgres_server: PostgresServer) -> Iterator[Platform]:
    thread = PlatformThread(postgres_server)
    thread.start()
    try:
        thread.ready.wait(timeout=180)
        if thread.error is not None:
            raise thread.error
        assert thread.platform is not None, "the platform did not start in 180 s"
        yield thread.platform
    finally:
        thread.stop()
    if thread.error is not None:
        raise thread.error  # while stopping


# ---------------------------------------------------------------------- tests

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHECKS: list[schemathesis.CheckFunction] = [error_shape, allow_on_405, no_server_error]


# schemathesis parametrizes a test over the operations of one schema: each service has its
# own test, made by the same function (its decorators are untyped: the tests are Any).
def fuzzing_test(service: str) -> Any:
    """Every operation of `service`, with the admin key."""

    @FUZZ[service].parametrize()
    @FUZZ_SETTINGS
    def test(case: Case, platform: Platform) -> None:
        case.call_and_validate(
            base_url=platform.urls[service], additional_checks=CHECKS, timeout=30
        )

    return test


test_receiving = fuzzing_test("receiving")
test_inventory = fuzzing_test("inventory")
test_fulfillment = fuzzing_test("fulfillment")
test_recall = fuzzing_test("recall")


ANONYMOUS_SETTINGS = settings(
    max_examples=ANONYMOUS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# An unknown key is refused like a missing one, in either header.
CREDENTIALS = {
    "no-key": {},
    "unknown-bearer": {"Authorization": "Bearer not-a-key-of-this-platform-0000"},
    "unknown-x-api-key": {"X-API-Key": "not-a-key-of-this-platform-0000"},
    "not-bearer": {"Authorization": f"Basic {ADMIN_KEY}"},
}
WITHOUT_A_VALID_KEY = pytest.mark.parametrize(
    "credentials", list(CREDENTIALS.values()), ids=list(CREDENTIALS)
)


def keyless_test(service: str) -> Any:
    """Every operation of `service`, with each kind of missing or unknown key."""

    @ANONYMOUS[service].parametrize()
    @WITHOUT_A_VALID_KEY
    @ANONYMOUS_SETTINGS
    def test(case: Case, platform: Platform, credentials: dict[str, str]) -> None:
        case.call_and_validate(
            base_url=platform.urls[service],
            headers=credentials,
            additional_checks=[*CHECKS, refused_without_a_key],
            timeout=30,
        )

    return test


test_without_a_key_receiving = keyless_test("receiving")
test_without_a_key_inventory = keyless_test("inventory")
test_without_a_key_fulfillment = keyless_test("fulfillment")
test_without_a_key_recall = keyless_test("recall")


@pytest.mark.parametrize("service", list(SERVICES))
def test_each_service_serves_the_document_tested(platform: Platform, service: str) -> None:
    served = httpx.get(f"{platform.urls[service]}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENTS[service]


# ---------------------------------------------------------------------- what fuzzing found


class Found(NamedTuple):
    """A request that once got a wrong answer, and the right one (`{lot_id}`, `{order_id}`
    and `{recall_id}` in the path or a top-level field are seeded entities)."""

    service: str
    method: str
    path: str
    request: dict[str, Any]
    status: int
    error: str | None = None
    headers: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple default, never mutated


def receipt(**fields: Any) -> dict[str, Any]:
    return {"json": {"sku": "FOUND", "quantity": "1", **fields}}


FOUND = {
    # Text with NUL reached PostgreSQL, which cannot store it: 500.
    "nul-in-query": Found("receiving", "GET", "/lots", {"params": {"lot_code": "A\0B"}}, 422,
                          "invalid_value"),
    "nul-in-body": Found("receiving", "POST", "/receipts",
                         receipt(supplier={"supplier_id": "S", "name": "A\0B"}), 422,
                         "invalid_value"),
    # An offset past PostgreSQL's bigint: 500.
    "offset-past-bigint": Found("recall", "GET", "/recalls/{recall_id}",
                                {"params": {"customers_offset": 2**63}}, 422, "invalid_request"),
    "offset-at-bigint": Found("recall", "GET", "/recalls/{recall_id}",
                              {"params": {"customers_offset": 2**63 - 1}}, 200),
    # An empty Idempotency-Key was stored as "", and the next one clashed with it: 500.
    "empty-idempotency-key": Found("receiving", "POST", "/receipts",
                                   {**receipt(), "headers": {"Idempotency-Key": ""}}, 422,
                                   "invalid_request"),
    # Numbers (seconds since 1970) and compact dates were read as moments: 201, 202.
    "received-at-number": Found("receiving", "POST", "/receipts", receipt(received_at=0), 422,
                                "invalid_request"),
    "received-at-compact": Found("receiving", "POST", "/receipts",
                                 receipt(received_at="20270331"), 422, "invalid_request"),
    "expiry-number": Found("receiving", "POST", "/receipts", receipt(expiry_date=0), 422,
                           "invalid_request"),
    "scope-date-number": Found("recall", "POST", "/recalls",
                               {"json": {"reason": "r", "scope": {"sku": "S", "received_from": 0}}},
                               422, "invalid_request"),
    # A line number as text, a float or a boolean was read as an integer: 201.
    "line-number-as-text": Found("fulfillment", "POST", "/shipments",
                                 {"json": {"order_id": "{order_id}", "lines": [{"line_no": "1"}]}},
                                 422, "invalid_request"),
    # Blank report filters are accepted (the contract's URL template sends them) and now
    # documented.
    "blank-report-dates": Found("recall", "GET", "/reports/fsma204",
                                {"params": {"from": "", "to": " "}}, 200),
    # The genealogy was documented as text/plain, and so were its JSON errors.
    "genealogy": Found("recall", "GET", "/trace/lots/{lot_id}/genealogy.mmd", {}, 200, None,
                       {"content-type": "text/vnd.mermaid; charset=utf-8"}),
    "genealogy-error": Found("recall", "GET", "/trace/lots/0/genealogy.mmd", {}, 422,
                             "invalid_request", {"content-type": "application/json"}),
    # 405 named the methods of one route on the path only.
    "allow": Found("receiving", "OPTIONS", "/products/OJ-1L", {}, 405, "method_not_allowed",
                   {"allow": "GET, PUT"}),
}  # fmt: skip


@pytest.mark.parametrize("found", list(FOUND.values()), ids=list(FOUND))
def test_what_fuzzing_found_stays_fixed(platform: Platform, found: Found) -> None:
    known = {name: KNOWN[name][0] for name in ("lot_id", "order_id", "recall_id")}
    path = found.path.format(**known)
    request = dict(found.request)
    if "json" in request:
        request["json"] = {
            key: value.format(**known) if isinstance(value, str) else value
            for key, value in request["json"].items()
        }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", **request.pop("headers", {})}
    response = httpx.request(
        found.method, platform.urls[found.service] + path, headers=headers, timeout=10, **request
    )
    assert response.status_code == found.status, response.text
    if found.error is not None:
        assert response.json() == {"error": found.error, "detail": ANY}
    for name, value in found.headers.items():
        assert response.headers[name] == value
