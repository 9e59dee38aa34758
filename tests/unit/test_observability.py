"""Observability without a broker or a database: HTTP request metrics and the log context of
failed requests, consumer lag and outbox sampling against fakes, tracing on and off, and the
dashboard, alert rules and scrape configurations in deploy/observability/ checked against the
metrics the code defines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import structlog
import yaml
from aiokafka import TopicPartition
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from lottrace.infra import wait_until
from shared.runtime.auth import Role, requires
from shared.runtime.http import UNMATCHED_ROUTE, RequestMetrics, create_http_app
from shared.runtime.lag import MetricsSampler, consumer_lag
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import ServiceSettings
from shared.runtime.tracing import instrument_broker, setup_tracing, traces_endpoint

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"
ALERT_TESTS = OBSERVABILITY / "alerts-test.yaml"
PODMONITOR = OBSERVABILITY / "podmonitor.yaml"
SCRAPE_CONFIG = OBSERVABILITY / "prometheus-scrape.yaml"
DOC = REPO / "docs" / "observability.md"
# On PATH, or where `make tools` puts it. Under CI=true a missing promtool fails, never skips.
PROMTOOL = shutil.which("promtool") or shutil.which(
    "promtool", path=str(REPO / ".venv" / "tools" / "bin")
)
NEEDS_PROMTOOL = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true", reason="promtool is not installed"
)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def settings(**overrides: Any) -> ServiceSettings:
    return ServiceSettings(
        database_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"),
        auth_mode="disabled",
        **overrides,
    )


# ====================================================================== HTTP request metrics


class Flaky(OSError):
    """A dependency failure: the service answers 503 (shared/runtime/database.is_transient)."""


def probe_app() -> FastAPI:
    router = APIRouter(dependencies=[requires(Role.VIEWER)])

    @router.get("/lots/{lot_id}")
    async def lot(lot_id: UUID) -> dict[str, str]:
        return {"lot_id": str(lot_id)}

    @router.post("/orders/{order_id}/boom")
    async def boom(order_id: str) -> None:
        raise RuntimeError(f"{order_id} went wrong")

    @router.get("/recalls/{recall_id}/flaky")
    async def flaky(recall_id: str) -> None:
        raise Flaky("connection reset")

    runtime = ServiceRuntime(name="probe", settings=settings(), migrations=Path("."))
    return create_http_app(runtime, title="probe", description="probe", routers=[router])


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return probe_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: nothing connects. App exceptions come back as the 500 the server sends.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        yield client
    # A failed request leaves its context bound (for the error handler's log line); uvicorn
    # gives each request a task of its own, this in-process transport does not.
    structlog.contextvars.clear_contextvars()


def requests_seen(method: str, route: str, status: int) -> float:
    return sample("lottrace_http_requests_total", method=method, route=route, status=str(status))


def timed(method: str, route: str) -> float:
    return sample("lottrace_http_request_seconds_count", method=method, route=route)


async def test_requests_are_counted_and_timed_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
) -> None:
    before = requests_seen("GET", "/lots/{lot_id}", 200), timed("GET", "/lots/{lot_id}")
    lots = [uuid4() for _ in range(3)]

    for lot in lots:
        assert (await client.get(f"/lots/{lot}")).status_code == 200

    after = requests_seen("GET", "/lots/{lot_id}", 200), timed("GET", "/lots/{lot_id}")
    assert after[0] - before[0] == 3
    assert after[1] - before[1] == 3
    exposition = (await client.get("/metrics")).text
    assert not any(str(lot) in exposition for lot in lots)


async def test_each_status_gets_its_own_series_on_the_same_route(
    client: httpx.AsyncClient,
) -> None:
    before = requests_seen("GET", "/lots/{lot_id}", 422)

    assert (await client.get("/lots/not-a-uuid")).status_code == 422
    assert requests_seen("GET", "/lots/{lot_id}", 422) - before == 1


async def test_an_unknown_path_is_counted_as_unmatched(client: httpx.AsyncClient) -> None:
    before = requests_seen("GET", UNMATCHED_ROUTE, 404)

    assert (await client.get(f"/no/such/{uuid4()}")).status_code == 404
    assert (await client.get("/lots")).status_code == 404

    assert requests_seen("GET", UNMATCHED_ROUTE, 404) - before == 2


async def test_a_wrong_method_keeps_the_route_and_an_unknown_method_is_other(
    client: httpx.AsyncClient,
) -> None:
    wrong, unknown = (
        requests_seen("DELETE", "/healthz", 405),
        requests_seen("OTHER", "/healthz", 405),
    )

    assert (await client.delete("/healthz")).status_code == 405
    assert (await client.request("PURGE", "/healthz")).status_code == 405

    assert requests_seen("DELETE", "/healthz", 405) - wrong == 1
    assert requests_seen("OTHER", "/healthz", 405) - unknown == 1


async def test_the_api_documents_keep_their_own_route(client: httpx.AsyncClient) -> None:
    before = requests_seen("GET", "/openapi.json", 200)

    assert (await client.get("/openapi.json")).status_code == 200
    assert requests_seen("GET", "/openapi.json", 200) - before == 1


async def test_a_body_over_the_limit_is_counted_before_routing(
    client: httpx.AsyncClient,
) -> None:
    before = requests_seen("POST", UNMATCHED_ROUTE, 413)

    response = await client.post("/orders/SO-1/boom", content=b"x" * 2_000_000)

    assert response.status_code == 413
    assert requests_seen("POST", UNMATCHED_ROUTE, 413) - before == 1


def captured_request_logs() -> AbstractContextManager[list[MutableMapping[str, Any]]]:
    """The log lines written meanwhile, with the request's bound context merged in."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


async def test_an_unexpected_error_counts_as_500_and_its_log_line_names_route_and_ids(
    client: httpx.AsyncClient,
) -> None:
    before = requests_seen("POST", "/orders/{order_id}/boom", 500)

    with captured_request_logs() as logs:
        response = await client.post("/orders/SO-42/boom", json={"secret": "body"})

    assert response.status_code == 500
    assert requests_seen("POST", "/orders/{order_id}/boom", 500) - before == 1
    [failed] = [line for line in logs if line["event"] == "request failed"]
    assert failed["route"] == "/orders/{order_id}/boom"
    assert failed["order_id"] == "SO-42"
    assert failed["http_method"] == "POST"
    assert "secret" not in json.dumps(failed, default=str)


async def test_a_dependency_failure_counts_as_the_503_the_client_gets(
    client: httpx.AsyncClient,
) -> None:
    before = requests_seen("GET", "/recalls/{recall_id}/flaky", 503)

    with captured_request_logs() as logs:
        response = await client.get("/recalls/RC-7/flaky")

    assert response.status_code == 503
    assert requests_seen("GET", "/recalls/{recall_id}/flaky", 503) - before == 1
    [failed] = [line for line in logs if line["event"] == "request failed on a dependency"]
    assert (failed["route"], failed["recall_id"]) == ("/recalls/{recall_id}/flaky", "RC-7")


async def test_a_successful_request_binds_nothing_to_the_log_context(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get(f"/lots/{uuid4()}")).status_code == 200

    assert not {"route", "lot_id"} & structlog.contextvars.get_contextvars().keys()


async def test_the_middleware_passes_lifespan_and_websocket_scopes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(_: Message) -> None:
        return None

    middleware = RequestMetrics(inner)
    await middleware({"type": "lifespan"}, receive, send)
    await middleware({"type": "websocket", "path": "/"}, receive, send)

    assert seen == ["lifespan", "websocket"]


# ====================================================================== consumer lag


class FakeConsumer:
    """The four AIOKafkaConsumer methods lag is computed from."""

    def __init__(
        self,
        *,
        ends: dict[tuple[str, int], int],
        committed: dict[tuple[str, int], int | None],
        beginnings: dict[tuple[str, int], int] | None = None,
        fail: BaseException | None = None,
        hang: bool = False,
    ) -> None:
        self.ends = {TopicPartition(*key): value for key, value in ends.items()}
        self.commits = {TopicPartition(*key): value for key, value in committed.items()}
        self.beginnings = {TopicPartition(*key): value for key, value in (beginnings or {}).items()}
        self.fail = fail
        self.hang = hang
        self.calls = 0

    def assignment(self) -> set[Any]:
        return set(self.commits)

    async def _network(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail

    async def committed(self, partition: Any) -> int | None:
        await self._network()
        return self.commits[partition]

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        await self._network()
        return {tp: self.ends[tp] for tp in partitions}

    async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        await self._network()
        return {tp: self.beginnings.get(tp, 0) for tp in partitions}


class FakeDatabase:
    def __init__(self, backlog: int = 0, oldest: float = 0.0) -> None:
        self.row: dict[str, Any] = {"backlog": backlog, "oldest": oldest}
        self.fail: BaseException | None = None
        self.reads = 0

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return self.row


def sampler(
    consumer: FakeConsumer | None,
    database: FakeDatabase,
    topics: list[str],
    *,
    timeout: float = 1.0,
) -> MetricsSampler:
    return MetricsSampler(
        database=database,  # type: ignore[arg-type]
        consumer=(lambda: consumer) if consumer is not None else None,
        topics=topics,
        interval=0.01,
        timeout=timeout,
    )


async def test_lag_is_end_minus_committed_summed_per_topic_over_assigned_partitions() -> None:
    consumer = FakeConsumer(
        ends={("order-placed", 0): 120, ("order-placed", 1): 40, ("goods-received", 2): 9},
        committed={("order-placed", 0): 100, ("order-placed", 1): 40, ("goods-received", 2): 4},
    )

    lag = await consumer_lag(consumer, ["order-placed", "goods-received", "recall-issued"])

    assert lag == {"order-placed": 20, "goods-received": 5, "recall-issued": 0}


async def test_a_partition_never_committed_counts_from_its_first_offset() -> None:
    consumer = FakeConsumer(
        ends={("order-placed", 0): 50, ("order-placed", 1): 30},
        committed={("order-placed", 0): None, ("order-placed", 1): 30},
        beginnings={("order-placed", 0): 10},
    )

    assert await consumer_lag(consumer, ["order-placed"]) == {"order-placed": 40}


async def test_a_consumer_without_partitions_yet_has_no_lag_and_makes_no_calls() -> None:
    consumer = FakeConsumer(ends={}, committed={})

    assert await consumer_lag(consumer, ["order-placed"]) == {"order-placed": 0}
    assert consumer.calls == 0


async def test_a_committed_offset_past_the_end_never_gives_negative_lag() -> None:
    consumer = FakeConsumer(ends={("order-placed", 0): 5}, committed={("order-placed", 0): 7})

    assert await consumer_lag(consumer, ["order-placed"]) == {"order-placed": 0}


async def test_a_sample_sets_the_lag_gauge_per_topic_and_the_outbox_gauges() -> None:
    consumer = FakeConsumer(ends={("order-shipped", 0): 12}, committed={("order-shipped", 0): 2})
    database = FakeDatabase(backlog=7, oldest=12.5)

    await sampler(consumer, database, ["order-shipped", "order-cancelled"]).sample()

    assert sample("lottrace_consumer_lag", topic="order-shipped") == 10
    assert sample("lottrace_consumer_lag", topic="order-cancelled") == 0
    assert sample("lottrace_outbox_backlog") == 7
    assert sample("lottrace_outbox_oldest_unsent_seconds") == 12.5


async def test_a_revoked_topic_drops_to_zero_instead_of_keeping_a_stale_lag() -> None:
    consumer = FakeConsumer(ends={("lot-shipped", 0): 9}, committed={("lot-shipped", 0): 0})
    topics = ["lot-shipped"]
    await sampler(consumer, FakeDatabase(), topics).sample()
    assert sample("lottrace_consumer_lag", topic="lot-shipped") == 9

    consumer.commits.clear()  # a rebalance gave the partition to another replica
    await sampler(consumer, FakeDatabase(), topics).sample()

    assert sample("lottrace_consumer_lag", topic="lot-shipped") == 0


async def test_a_failed_sample_is_counted_logged_once_and_keeps_the_last_value() -> None:
    consumer = FakeConsumer(ends={("lot-allocated", 0): 3}, committed={("lot-allocated", 0): 0})
    database = FakeDatabase(backlog=1)
    runner = sampler(consumer, database, ["lot-allocated"])
    await runner.sample()
    errors = sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag")

    consumer.fail = ConnectionError("broker gone")
    with structlog.testing.capture_logs() as logs:
        await runner.sample()
        await runner.sample()
        consumer.fail = None
        await runner.sample()

    assert sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag") - errors == 2
    assert sample("lottrace_consumer_lag", topic="lot-allocated") == 3
    assert [line["event"] for line in logs] == [
        "metrics sample failed; retrying every interval",
        "metrics sample recovered",
    ]
    assert "broker gone" in logs[0]["error"]


async def test_a_hanging_broker_call_is_cut_off_at_the_timeout() -> None:
    consumer = FakeConsumer(
        ends={("lot-allocated", 0): 3}, committed={("lot-allocated", 0): 0}, hang=True
    )
    database = FakeDatabase(backlog=4)
    errors = sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag")

    async with asyncio.timeout(2):
        await sampler(consumer, database, ["lot-allocated"], timeout=0.05).sample()

    assert sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag") - errors == 1
    # The outbox is still sampled after the lag timed out.
    assert sample("lottrace_outbox_backlog") == 4


async def test_the_outbox_is_sampled_even_when_the_database_fails_now_and_then() -> None:
    database = FakeDatabase(backlog=2)
    runner = sampler(None, database, [])
    errors = sample("lottrace_metrics_sample_errors_total", sampler="outbox")

    database.fail = OSError("connection refused")
    await runner.sample()
    database.fail = None
    database.row = {"backlog": 5, "oldest": 3.0}
    await runner.sample()

    assert sample("lottrace_metrics_sample_errors_total", sampler="outbox") - errors == 1
    assert sample("lottrace_outbox_backlog") == 5


async def test_the_sampler_runs_until_cancelled_and_skips_lag_while_no_consumer_runs() -> None:
    database = FakeDatabase(backlog=11)
    runner = MetricsSampler(
        database=database,  # type: ignore[arg-type]
        consumer=lambda: None,  # the subscriber has not made its consumer yet
        topics=["order-placed"],
        interval=0.01,
    )
    errors = sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag")

    task = asyncio.create_task(runner.run())

    async def sampled_thrice() -> bool:
        return database.reads >= 3

    await wait_until(sampled_thrice, timeout=5, what="three rounds of sampling")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert sample("lottrace_outbox_backlog") == 11
    assert sample("lottrace_metrics_sample_errors_total", sampler="consumer_lag") == errors


def test_a_service_without_a_consumer_samples_only_its_outbox() -> None:
    runtime = ServiceRuntime(name="receiving", settings=settings(), migrations=Path("."))

    runner = MetricsSampler.of(runtime)

    assert runner._consumer is None


def test_a_consuming_service_samples_its_subscribers_consumer_and_topics() -> None:
    from services.inventory.app import Settings, create_app

    app = create_app(Settings(metrics_sample_seconds=2.5))
    runtime: ServiceRuntime = app.state.runtime
    assert runtime.broker is not None
    assert runtime.consumer is not None

    runner = MetricsSampler.of(runtime)

    assert runner._topics == runtime.consumer.topics
    assert runner._interval == 2.5
    assert runner._consumer is not None
    assert runner._consumer() is None  # the subscriber has not started: no consumer yet


# ====================================================================== tracing


def run_python(code: str, **env: str) -> dict[str, Any]:
    """Runs `code` in a fresh interpreter (tracing installs process-wide state) and returns
    the JSON it prints last."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_tracing_off_loads_nothing_of_the_sdk_and_instruments_nothing() -> None:
    result = run_python(
        """
        import json, sys
        from services.inventory.app import Settings as InventorySettings, create_app as inventory
        from services.receiving.app import Settings as ReceivingSettings, create_app as receiving

        apps = [inventory(InventorySettings()), receiving(ReceivingSettings())]
        loaded = sorted(
            name for name in sys.modules
            if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
                                "faststream.opentelemetry", "faststream.kafka.opentelemetry"))
        )
        providers = [app.state.runtime.tracer_provider for app in apps]
        middlewares = list(apps[0].state.runtime.broker.config.broker_middlewares)
        print(json.dumps({"loaded": loaded, "providers": [p is None for p in providers],
                          "middlewares": [type(m).__name__ for m in middlewares]}))
        """,
        OTEL_ENABLED="false",
    )

    assert result == {"loaded": [], "providers": [True, True], "middlewares": []}


def test_the_traces_endpoint_is_the_otlp_base_url_plus_the_traces_path() -> None:
    assert traces_endpoint(settings()) is None
    assert (
        traces_endpoint(settings(otel_exporter_otlp_endpoint="http://collector:4318/"))
        == "http://collector:4318/v1/traces"
    )


def test_setup_is_a_no_op_when_tracing_is_off() -> None:
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(consumer_only=True)

    assert setup_tracing(settings(), service="inventory", broker=broker) is None
    assert not broker.config.broker_middlewares


async def test_a_consumed_batch_becomes_a_consumer_span_with_its_size() -> None:
    from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
    from faststream.middlewares import AckPolicy
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = KafkaBroker(consumer_only=True)
    instrument_broker(broker, provider)
    batches: list[int] = []

    async def raw(_: Any) -> None:
        return None

    # The consumer's subscriber options (shared/runtime/consumer.py BatchConsumer.subscribe).
    @broker.subscriber(
        "goods-received", group_id="inventory", batch=True, ack_policy=AckPolicy.MANUAL, decoder=raw
    )
    async def consume(body: Any, message: KafkaMessage) -> None:
        batches.append(len(message.raw_message))

    async with TestKafkaBroker(broker, connect_only=False) as test_broker:
        await test_broker.publish_batch(b"one", b"two", b"three", topic="goods-received")

    assert batches == [3]
    [process] = [
        span for span in exporter.get_finished_spans() if span.name == "goods-received process"
    ]
    assert process.kind is SpanKind.CONSUMER
    assert process.attributes is not None
    assert process.attributes["messaging.batch.message_count"] == 3
    assert process.attributes["messaging.system"] == "kafka"


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_tracing_on_exports_http_spans_over_otlp_and_instruments_the_broker(
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    url, received = collector
    result = run_python(
        """
        import asyncio, json
        import httpx
        from opentelemetry import trace
        from services.inventory.app import Settings, create_app

        app = create_app(Settings(auth_mode="disabled"))
        runtime = app.state.runtime

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                await client.get("/healthz")

        asyncio.run(main())
        provider = trace.get_tracer_provider()
        print(json.dumps({
            "global": provider is runtime.tracer_provider,
            "flushed": provider.force_flush(10_000),
            "middlewares": [type(m).__name__ for m in runtime.broker.config.broker_middlewares],
        }))
        """,
        OTEL_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_SERVICE_NAME="lottrace-inventory-test",
    )

    assert result == {
        "global": True,
        "flushed": True,
        "middlewares": ["KafkaTelemetryMiddleware"],
    }
    assert received
    assert {path for path, _ in received} == {"/v1/traces"}
    names, services = set(), set()
    for _, body in received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            services |= {
                attribute.value.string_value
                for attribute in resource_spans.resource.attributes
                if attribute.key == "service.name"
            }
            for scope_spans in resource_spans.scope_spans:
                names |= {span.name for span in scope_spans.spans}
    assert services == {"lottrace-inventory-test"}
    assert "GET /healthz" in names


def test_events_written_while_tracing_carry_the_trace_so_their_consumer_continues_it() -> None:
    result = run_python(
        """
        import asyncio, json
        from opentelemetry import trace
        from shared.contracts.envelope import OutgoingMessage
        from shared.runtime.database import UnitOfWork, headers_from_json
        from services.inventory.app import Settings
        from shared.runtime.tracing import process_tracer_provider

        class Connection:
            async def execute(self, query, *args):
                self.headers = [dict(headers_from_json(h)) for h in args[3]]

        async def flush(messages):
            connection = Connection()
            unit = UnitOfWork(connection, source="/test")
            for message in messages:
                unit.emit_message(message)
            await unit.flush_outbox()
            return connection.headers

        plain = OutgoingMessage("goods-received", b"k", b"{}", [("ce_id", b"1")])
        dead = OutgoingMessage("x.dlq", b"k", b"{}", [("traceparent", b"00-original-01")])
        untraced = asyncio.run(flush([plain]))
        provider = process_tracer_provider(Settings(otel_enabled=True), service="t")
        with provider.get_tracer("t").start_as_current_span("batch") as span:
            traced = asyncio.run(flush([plain, dead]))
            trace_id = format(span.get_span_context().trace_id, "032x")
        print(json.dumps({
            "untraced": [sorted(h) for h in untraced],
            "traceparent": traced[0]["traceparent"].decode(),
            "dead_letter": traced[1]["traceparent"].decode(),
            "trace_id": trace_id,
        }))
        """,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )

    assert result["untraced"] == [["ce_id"]]
    assert result["traceparent"].split("-")[1] == result["trace_id"]
    assert result["dead_letter"] == "00-original-01"


# ====================================================================== dashboard and alerts

# PromQL words that are not metric names, as far as the dashboard and the rules use them.
PROMQL_WORDS = frozenset(
    {
        "sum", "max", "min", "avg", "count", "by", "without", "and", "or", "unless",
        "rate", "irate", "increase", "deriv", "delta", "histogram_quantile", "offset",
        "bool", "on", "ignoring", "group_left", "group_right", "abs", "clamp_min",
        "max_over_time", "min_over_time", "avg_over_time", "absent", "humanizeDuration",
    }
)  # fmt: skip


def defined_series() -> set[str]:
    """Every series name the registry can expose, whether or not it has samples yet."""
    import shared.runtime.http  # noqa: F401  (the HTTP and authentication metrics)

    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum")}
        elif family.type == "summary":
            names |= {family.name, f"{family.name}_count", f"{family.name}_sum"}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names of a PromQL expression (label matchers, label lists, ranges, strings
    and Grafana variables removed); anything left that is not PromQL is taken as a name."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers and durations (`offset 10m`)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {word for word in words if word not in PROMQL_WORDS}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def graph_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def panel_exprs() -> list[str]:
    return [target["expr"] for panel in graph_panels() for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"}
        rules.extend(group["rules"])
    return rules


def test_the_metric_name_parser_finds_names_and_only_names() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(lottrace_x_bucket{route!~"a|b"}'
        "[$__rate_interval]))) / on (service) group_left max(lottrace_y offset 10m) > 0.05"
    )

    assert metric_names(expr) == {"lottrace_x_bucket", "lottrace_y"}


def test_the_dashboard_is_a_grafana_dashboard_on_a_templated_prometheus() -> None:
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}

    assert board["schemaVersion"] == 39
    assert board["uid"]
    assert board["title"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["service"]["query"]["query"] == "label_values(lottrace_ready, service)"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in graph_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["title"]
        assert panel["description"]
        assert panel["targets"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert grid["h"] > 0
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'service=~"$service"' in target["expr"], target["expr"]


def test_every_dashboard_query_names_only_metrics_the_code_defines() -> None:
    defined = defined_series()

    for expr in panel_exprs():
        assert metric_names(expr) <= defined, (expr, metric_names(expr) - defined)


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(expr) for expr in panel_exprs()))

    assert {
        "lottrace_events_consumed_total",
        "lottrace_outbox_published_total",
        "lottrace_handler_seconds_bucket",
        "lottrace_consumer_batch_size_bucket",
        "lottrace_consumer_lag",
        "lottrace_outbox_backlog",
        "lottrace_outbox_oldest_unsent_seconds",
        "lottrace_dead_lettered_total",
        "lottrace_http_requests_total",
        "lottrace_http_request_seconds_bucket",
        "lottrace_ready",
        "process_resident_memory_bytes",
    } <= used


@NEEDS_PROMTOOL
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool checks the syntax of rule expressions: each query becomes a recording rule.
    rules = [
        {
            "record": f"dashboard:query_{index}",
            "expr": expr.replace("$__rate_interval", "1m").replace("$service", ".*"),
        }
        for index, expr in enumerate(panel_exprs())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    assert PROMTOOL, "promtool is not installed: make tools installs it"
    checked = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alert_rules_are_complete_and_name_only_defined_metrics() -> None:
    defined = defined_series()
    rules = alert_rules()

    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
        assert re.fullmatch(r"\d+[smh]", str(rule["for"]))
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        assert re.fullmatch(r"docs/operations\.md#[a-z0-9-]+", annotations["runbook_url"])
        assert metric_names(rule["expr"]) <= defined, (rule["alert"], rule["expr"])
    watched = {name: metric_names(rule["expr"]) for name, rule in ((r["alert"], r) for r in rules)}
    assert "lottrace_consumer_lag" in watched["LottraceConsumerLagHigh"]
    assert "lottrace_outbox_oldest_unsent_seconds" in watched["LottraceOutboxStuck"]
    assert "lottrace_dead_lettered_total" in watched["LottraceDeadLetters"]
    assert "lottrace_ready" in watched["LottraceServiceNotReady"]
    assert "lottrace_http_requests_total" in watched["LottraceHttp5xxRatio"]
    assert (
        "lottrace_recall_notices_undeliverable_total"
        in watched["LottraceRecallNoticeUndeliverable"]
    )


@NEEDS_PROMTOOL
def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    assert PROMTOOL, "promtool is not installed: make tools installs it"
    for command in (["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        checked = subprocess.run(
            [str(PROMTOOL), *command],
            cwd=OBSERVABILITY,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_scrape_configs_give_the_service_label_the_dashboard_and_rules_use() -> None:
    monitor = yaml.safe_load(PODMONITOR.read_text(encoding="utf-8"))
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    pod_label = "__meta_kubernetes_pod_label_app_kubernetes_io_name"

    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert {"sourceLabels": [pod_label], "targetLabel": "service"} in endpoint["relabelings"]
    [job] = scrape["scrape_configs"]
    assert {"source_labels": [pod_label], "target_label": "service"} in job["relabel_configs"]
    selector = monitor["spec"]["selector"]["matchLabels"]

    deployments = [
        document
        for path in sorted((REPO / "deploy" / "k8s" / "base").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document and document.get("kind") == "Deployment"
    ]
    assert len(deployments) == 4
    for deployment in deployments:
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert labels["app.kubernetes.io/name"] == deployment["metadata"]["name"]
        ports = {port["name"] for port in template["spec"]["containers"][0]["ports"]}
        assert "http" in ports
        assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_every_runbook_link_points_at_a_section_of_the_operations_runbook() -> None:
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-"))

    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/operations.md"
        assert anchor in anchors, (rule["alert"], anchor)


def test_the_documentation_describes_every_metric_and_alert() -> None:
    text = DOC.read_text(encoding="utf-8")
    import shared.runtime.http  # noqa: F401

    ours = {family.name for family in REGISTRY.collect() if family.name.startswith("lottrace_")}
    documented = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in REGISTRY.collect()
        if family.name in ours
    }
    for name in documented:
        assert f"`{name}`" in text, name
    for rule in alert_rules():
        assert rule["alert"] in text, rule["alert"]
    assert "METRICS_SAMPLE_SECONDS" in text
    assert "OTEL_ENABLED" in text
