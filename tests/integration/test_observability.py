"""Observability against a real broker and PostgreSQL: a running inventory exposes HTTP request
metrics, consumer lag per topic and the outbox gauges on /metrics after it consumed events;
lag is computed right from a real group's committed offsets; consumed batches become spans."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import Settings, create_app
from shared.contracts.events import GoodsReceived
from shared.runtime import metrics
from shared.runtime.lag import consumer_lag
from shared.runtime.tracing import instrument_broker
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish

INVENTORY_TOPICS = {
    "goods-received",
    "goods-returned",
    "lot-registrations",
    "order-placed",
    "order-cancelled",
    "order-shipped",
    "recall-issued",
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def goods_received(quantity: int = 5) -> GoodsReceived:
    lot = uuid.uuid4()
    return GoodsReceived(
        receipt_id=f"R-{uuid.uuid4().hex[:8]}",
        lot_id=lot,
        lot_code=f"OJ-{str(lot)[:6]}",
        sku="OJ-1L",
        quantity=quantity,
        received_at=datetime.now(UTC),
    )


def inventory_app(database_url: str, broker: TansuBroker) -> FastAPI:
    return create_app(quick_settings(Settings, database_url, broker, metrics_sample_seconds=0.2))


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample_errors(sampler: str) -> float:
    return (
        REGISTRY.get_sample_value("lottrace_metrics_sample_errors_total", {"sampler": sampler}) or 0
    )


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def until_scraped(
    client: httpx.AsyncClient, accept: Callable[[Samples], bool], what: str
) -> Samples:
    found: Samples = {}

    async def check() -> bool:
        found.clear()
        found.update(await scrape(client))
        return accept(found)

    await wait_until(check, timeout=30, what=what)
    return found


async def until_stocked(client: httpx.AsyncClient, events: list[GoodsReceived]) -> None:
    async def stocked() -> bool:
        for event in events:
            if (await client.get(f"/lots/{event.lot_id}")).status_code != 200:
                return False
        return True

    await wait_until(stocked, timeout=30, what="lots consumed")


async def test_a_consuming_service_exposes_http_metrics_lag_and_outbox_gauges(
    database_url: str, broker: TansuBroker
) -> None:
    # The registry is the process's: earlier apps of this test run counted into it too, so the
    # counters are compared with what they were, and the gauges start where no sample puts them.
    metrics.CONSUMER_LAG.clear()
    metrics.OUTBOX_BACKLOG.set(-1)
    metrics.OUTBOX_OLDEST_SECONDS.set(-1)
    failed = {sampler: sample_errors(sampler) for sampler in ("consumer_lag", "outbox")}
    processed = {"topic": "goods-received", "outcome": "processed"}
    consumed_before = counted("lottrace_events_consumed_total", **processed)
    route = {"method": "GET", "route": "/lots/{lot_id}"}
    events = [goods_received() for _ in range(3)]

    async with running(inventory_app(database_url, broker)) as client:
        await publish(broker.bootstrap_servers, *events)
        await until_stocked(client, events)
        requests_before = counted("lottrace_http_requests_total", **route, status="200")
        timed_before = counted("lottrace_http_request_seconds_count", **route)
        for event in events:
            assert (await client.get(f"/lots/{event.lot_id}")).status_code == 200

        def caught_up(samples: Samples) -> bool:
            lag = {
                dict(labels)["topic"]: sample
                for (name, labels), sample in samples.items()
                if name == "lottrace_consumer_lag"
            }
            return (
                set(lag) == INVENTORY_TOPICS
                and not any(lag.values())
                and value(samples, "lottrace_outbox_backlog") == 0
                and value(samples, "lottrace_outbox_oldest_unsent_seconds") == 0
            )

        samples = await until_scraped(
            client, caught_up, "lag and the outbox sampled at zero on every topic"
        )

    assert value(samples, "lottrace_http_requests_total", **route, status="200") == (
        requests_before + 3
    )
    assert value(samples, "lottrace_http_request_seconds_count", **route) == timed_before + 3
    assert not any(
        str(event.lot_id) in dict(labels).get("route", "")
        for event in events
        for (_, labels) in samples
    )
    consumed = value(samples, "lottrace_events_consumed_total", **processed) or 0
    assert consumed - consumed_before == 3  # each event counted once
    assert {sampler: sample_errors(sampler) for sampler in failed} == failed


async def test_lag_is_what_the_group_has_not_committed_on_a_real_broker(
    broker: TansuBroker,
) -> None:
    events = [goods_received() for _ in range(6)]
    # One record batch each: Tansu's end offset is the last batch's first offset + 1, which
    # counts a batch of several records as one (real Kafka counts records).
    for event in events:
        await publish(broker.bootstrap_servers, event)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=f"lag-probe-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic("goods-received")
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic("goods-received")
        assigned = [TopicPartition("goods-received", p) for p in sorted(partitions)]
        consumer.assign(assigned)

        # Never committed: everything from the first offset.
        assert await consumer_lag(consumer, ["goods-received", "order-placed"]) == {
            "goods-received": len(events),
            "order-placed": 0,
        }

        ends = await consumer.end_offsets(assigned)
        fullest = max(assigned, key=lambda tp: ends[tp])
        await consumer.commit({fullest: ends[fullest]})

        lag = await consumer_lag(consumer, ["goods-received"])
        assert lag == {"goods-received": len(events) - ends[fullest]}
    finally:
        await consumer.stop()


async def test_each_consumed_batch_becomes_a_consumer_span(
    database_url: str, broker: TansuBroker
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = inventory_app(database_url, broker)
    # What OTEL_ENABLED sets up, with an in-memory exporter and without a global provider.
    instrument_broker(app.state.runtime.broker, provider)
    events = [goods_received() for _ in range(4)]

    async with running(app) as client:
        await publish(broker.bootstrap_servers, *events)
        await until_stocked(client, events)

    batches: list[Any] = [
        span for span in exporter.get_finished_spans() if span.name == "goods-received process"
    ]
    assert batches
    assert all(span.kind is SpanKind.CONSUMER for span in batches)
    assert all(span.status.is_ok for span in batches)
    counted = sum(int((span.attributes or {})["messaging.batch.message_count"]) for span in batches)
    assert counted == len(events)
