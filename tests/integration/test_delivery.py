"""Delivery semantics of the shared runtime, against a real broker and a real PostgreSQL:
inbox de-duplication, dead letters, offsets after the database commit, the outbox relay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from lottrace.infra import TansuBroker, wait_until
from shared.contracts.envelope import Incoming
from shared.contracts.events import OrderCancelled, OrderPlaced
from shared.runtime.consumer import BatchConsumer
from shared.runtime.database import UnitOfWork
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings
from tests.kafka_helpers import (
    binary_headers,
    committed_offsets,
    end_offsets,
    headers_of,
    produce,
    publish,
    read_settled,
    read_topic,
)

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"
Handler = Callable[[UnitOfWork, list[Incoming[OrderPlaced]]], Awaitable[None]]


def order(order_id: str, quantity: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer={"customer_id": "C1"},
        lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": quantity}],
    )


async def record_and_acknowledge(unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
    """The probe projection: a row per event, and an outgoing event through the outbox."""
    for incoming in events:
        if incoming.data.order_id.startswith("BOOM"):
            raise ValueError(f"cannot apply {incoming.data.order_id}")
    await unit.connection.executemany(
        "INSERT INTO applied (event_id, order_id, quantity) VALUES ($1, $2, $3)",
        [(e.id, e.data.order_id, e.data.lines[0].quantity) for e in events],
    )
    for incoming in events:
        unit.emit(OrderCancelled(order_id=incoming.data.order_id, reason="probe"))


class Probe:
    def __init__(self, database_url: str, broker: TansuBroker, handler: Handler) -> None:
        self.database_url = database_url
        self.broker = broker
        self.group = f"probe-{uuid.uuid4().hex[:8]}"
        settings = ServiceSettings(
            database_url=database_url,
            consumer_batch_timeout_ms=20,
            kafka=KafkaSettings(
                bootstrap_servers=broker.bootstrap_servers,
                enable_idempotence=False,
                session_timeout_ms=6000,
            ),
        )
        self.consumer = BatchConsumer(group_id=self.group, handlers=[(OrderPlaced, handler)])
        self.runtime = ServiceRuntime(
            name="probe", settings=settings, migrations=PROBE_MIGRATIONS, consumer=self.consumer
        )

    async def start(self) -> None:
        await self.runtime.start()
        await asyncio.wait_for(self.runtime.started.wait(), 60)

    async def applied(self) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.database_url)
        try:
            return await connection.fetch(
                "SELECT event_id, order_id FROM applied ORDER BY applied_at"
            )
        finally:
            await connection.close()

    async def dead_letters(self) -> list[ConsumerRecord[Any, Any]]:
        """Every dead letter of order-placed, once the probe's outbox has published them all
        (call it after `caught_up`: the dead-letter rows commit before the offsets)."""
        return await read_settled(
            self.broker.bootstrap_servers, "order-placed.dlq", self.database_url
        )

    async def caught_up(self, topic: str = "order-placed") -> bool:
        ends = {
            tp: offset
            for tp, offset in (await end_offsets(self.broker.bootstrap_servers, topic)).items()
            if offset
        }
        committed = await committed_offsets(self.broker.bootstrap_servers, self.group, topic)
        return all(committed.get(tp, 0) >= offset for tp, offset in ends.items())


@pytest_asyncio.fixture
async def probe(database_url: str, broker: TansuBroker) -> AsyncIterator[Probe]:
    probe = Probe(database_url, broker, record_and_acknowledge)
    await probe.start()
    try:
        yield probe
    finally:
        await probe.runtime.stop()


async def test_a_redelivered_event_changes_nothing_the_second_time(probe: Probe) -> None:
    event_id = str(uuid.uuid4())
    # The same event sent three times (an upstream retry), plus another one.
    await publish(
        probe.broker.bootstrap_servers,
        order("SO-1"),
        order("SO-1"),
        order("SO-1"),
        ids=[event_id] * 3,
    )
    await publish(probe.broker.bootstrap_servers, order("SO-2"))
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    rows = await probe.applied()
    assert sorted(row["order_id"] for row in rows) == ["SO-1", "SO-2"]


async def test_a_poison_message_goes_to_the_dlq_and_the_partition_moves_on(probe: Probe) -> None:
    bootstrap = probe.broker.bootstrap_servers
    [poison] = await produce(bootstrap, [("order-placed", b"SO-9", b"{not json", [])])
    await publish(bootstrap, order("SO-9"))  # same key: same partition, after the poison
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    assert [row["order_id"] for row in await probe.applied()] == ["SO-9"]
    [dead] = await probe.dead_letters()
    headers = headers_of(dead)
    assert dead.value == b"{not json"
    assert dead.key == b"SO-9"
    assert headers["error_type"] == "malformed_json"
    assert headers["source_topic"] == "order-placed"
    assert headers["consumer_group"] == probe.group
    assert int(headers["source_partition"]) == poison.partition
    assert int(headers["source_offset"]) == poison.offset


async def test_an_event_type_the_topic_does_not_carry_is_dead_lettered(probe: Probe) -> None:
    bootstrap = probe.broker.bootstrap_servers
    wrong = OrderCancelled(order_id="SO-3")
    message = (await publish(bootstrap, wrong))[0]
    await produce(bootstrap, [("order-placed", message.key, message.value, message.headers)])
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    [dead] = await probe.dead_letters()
    assert headers_of(dead)["error_type"] == "unknown_event_type"
    assert "lottrace.order-cancelled.v1" in headers_of(dead)["error_message"]


async def test_a_contract_violation_is_dead_lettered_naming_the_field(probe: Probe) -> None:
    bootstrap = probe.broker.bootstrap_servers
    message = (await publish(bootstrap, order("SO-4")))[0]
    broken = message.value.replace(b'"quantity":"1"', b'"quantity":"-3"')
    await produce(bootstrap, [("order-placed", message.key, broken, message.headers)])
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    [dead] = await probe.dead_letters()
    headers = headers_of(dead)
    assert headers["error_type"] == "contract_violation"
    assert "quantity" in headers["error_message"]


async def test_an_event_the_handler_cannot_apply_is_dead_lettered_and_the_rest_of_its_batch_applies(
    probe: Probe,
) -> None:
    bootstrap = probe.broker.bootstrap_servers
    await publish(bootstrap, order("SO-5"), order("BOOM-1"), order("SO-6"))
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    assert sorted(row["order_id"] for row in await probe.applied()) == ["SO-5", "SO-6"]
    [dead] = await probe.dead_letters()
    assert headers_of(dead)["error_type"] == "processing_failed"
    assert "BOOM-1" in headers_of(dead)["error_message"]


async def test_binary_mode_cloudevents_are_accepted(probe: Probe) -> None:
    bootstrap = probe.broker.bootstrap_servers
    data = order("SO-7").model_dump_json().encode()
    headers = binary_headers(
        "lottrace.order-placed.v1",
        event_id="binary-1",
        source="/oms/legacy",
        more=(("content-type", b"application/json"),),
    )
    await produce(bootstrap, [("order-placed", b"SO-7", data, headers)])
    await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
    assert [(row["event_id"], row["order_id"]) for row in await probe.applied()] == [
        ("binary-1", "SO-7")
    ]


async def test_offsets_are_committed_only_after_the_database_commit(
    database_url: str, broker: TansuBroker
) -> None:
    failures_left = 3
    attempted = asyncio.Event()

    async def flaky(unit: UnitOfWork, events: list[Incoming[OrderPlaced]]) -> None:
        nonlocal failures_left
        attempted.set()
        if failures_left:
            failures_left -= 1
            raise ConnectionResetError("database connection lost")  # transient: retried
        await record_and_acknowledge(unit, events)

    probe = Probe(database_url, broker, flaky)
    await probe.start()
    try:
        await publish(broker.bootstrap_servers, order("SO-8"))
        await asyncio.wait_for(attempted.wait(), 30)
        # While the batch keeps failing, its offset is not committed.
        committed = await committed_offsets(broker.bootstrap_servers, probe.group, "order-placed")
        assert all(offset == 0 for offset in committed.values())
        await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
        assert failures_left == 0
        assert [row["order_id"] for row in await probe.applied()] == ["SO-8"]
        assert await probe.dead_letters() == []
    finally:
        await probe.runtime.stop()


async def test_the_outbox_publishes_what_committed_before_a_crash_and_nothing_that_rolled_back(
    database_url: str, broker: TansuBroker
) -> None:
    probe = Probe(database_url, broker, record_and_acknowledge)
    # Only the database: the process "crashed" after committing and before publishing.
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS), ("probe", PROBE_MIGRATIONS)])
    await probe.runtime.database.open()
    async with probe.runtime.database.transaction() as unit:
        unit.emit(OrderCancelled(order_id="SO-committed"))

    async def failing_change() -> None:
        async with probe.runtime.database.transaction() as unit:
            unit.emit(OrderCancelled(order_id="SO-rolled-back"))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    await probe.runtime.database.close()
    assert (
        await read_topic(broker.bootstrap_servers, "order-cancelled", at_least=0, timeout=1) == []
    )

    await probe.start()  # the restarted service's relay finds the committed row
    try:
        records = await read_settled(broker.bootstrap_servers, "order-cancelled", database_url)
        assert [r.key for r in records] == [b"SO-committed"]
    finally:
        await probe.runtime.stop()


async def test_the_relay_keeps_the_order_of_events_of_one_key(probe: Probe) -> None:
    for batch in range(5):
        async with probe.runtime.database.transaction() as unit:
            for n in range(40):
                unit.emit(OrderCancelled(order_id="SO-ordered", reason=f"{batch * 40 + n}"))
    records = await read_settled(
        probe.broker.bootstrap_servers, "order-cancelled", probe.database_url
    )
    reasons = [int(r.value.split(b'"reason":"')[1].split(b'"')[0]) for r in records]
    assert reasons == list(range(200))


async def test_only_one_relay_publishes_at_a_time_and_another_takes_over(
    database_url: str, broker: TansuBroker
) -> None:
    first = Probe(database_url, broker, record_and_acknowledge)
    second = Probe(database_url, broker, record_and_acknowledge)
    await first.start()
    await second.start()
    try:
        await wait_until(
            lambda: _true(bool(first.runtime.relay and first.runtime.relay.is_leader)),
            timeout=10,
            what="first relay active",
        )
        assert second.runtime.relay is not None
        assert not second.runtime.relay.is_leader
        await first.runtime.stop()
        await wait_until(
            lambda: _true(bool(second.runtime.relay and second.runtime.relay.is_leader)),
            timeout=30,
            what="second relay takes over",
        )
        async with second.runtime.database.transaction() as unit:
            unit.emit(OrderCancelled(order_id="SO-after-failover"))
        records = await read_settled(broker.bootstrap_servers, "order-cancelled", database_url)
        assert [r.key for r in records] == [b"SO-after-failover"]
    finally:
        await second.runtime.stop()


async def test_migrations_run_once_when_replicas_start_together(database_url: str) -> None:
    components = [("runtime", RUNTIME_MIGRATIONS), ("probe", PROBE_MIGRATIONS)]
    results = await asyncio.gather(*(migrate(database_url, components) for _ in range(4)))
    applied = sorted(name for result in results for name in result)
    assert applied == [
        "probe/0001_probe",
        "runtime/0001_inbox_outbox",
        "runtime/0002_outbox_delete_when_published",
        "runtime/0003_outbox_retain_published",
        "runtime/0004_outbox_high_water",
        "runtime/0005_outbox_pending",
    ]


async def test_a_service_whose_database_is_down_waits_and_reports_not_ready(
    broker: TansuBroker,
) -> None:
    probe = Probe("postgresql://postgres@127.0.0.1:9/nowhere", broker, record_and_acknowledge)
    await probe.runtime.start()
    try:
        report: dict[str, Any] = {}

        async def reports_database_problem() -> bool:
            report.update(await probe.runtime.readiness())
            return "database" in str(report["checks"].get("starting", ""))

        await wait_until(reports_database_problem, timeout=10, what="readiness names the database")
        assert report["ready"] is False
        assert report["checks"]["database"] == "unreachable"
    finally:
        await probe.runtime.stop()


async def test_a_service_whose_broker_is_down_waits_and_reports_not_ready(
    database_url: str,
) -> None:
    nowhere = TansuBroker(port=9)  # nothing listens there
    probe = Probe(database_url, nowhere, record_and_acknowledge)
    await probe.runtime.start()
    try:

        async def reports_broker_problem() -> bool:
            report = await probe.runtime.readiness()
            return report["ready"] is False and "producer" in str(
                report["checks"].get("starting", "")
            )

        await wait_until(reports_broker_problem, timeout=15, what="readiness names the broker")
    finally:
        await probe.runtime.stop()


async def _true(value: bool) -> bool:
    return value


def _quantity(value: Any) -> Decimal:
    return Decimal(str(value))


async def group_members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([group])
        [described_group] = description.groups
        return len(described_group[-1])
    finally:
        await admin.close()


async def test_a_consumer_that_rejoined_a_restarted_broker_before_its_topics_consumes_them(
    database_url: str,
) -> None:
    """The embedded broker comes back from a crash empty, and its topics are made again only
    after the services have reconnected and rejoined their groups (with nothing to consume):
    they must notice the topics within seconds, not at Kafka's 5-minute metadata refresh."""
    tansu = TansuBroker()
    await tansu.start()
    await tansu.create_topics(partitions=2)
    probe = Probe(database_url, tansu, record_and_acknowledge)
    await probe.start()
    try:
        await publish(tansu.bootstrap_servers, order("SO-BEFORE"))
        await wait_until(probe.caught_up, timeout=30, what="consumer caught up")
        tansu.stop()
        await tansu.start()  # same port, no topics

        async def rejoined() -> bool:
            return await group_members(tansu.bootstrap_servers, probe.group) == 1

        await wait_until(rejoined, timeout=30, what="the consumer rejoined the new broker")
        await tansu.create_topics(partitions=2)
        await publish(tansu.bootstrap_servers, order("SO-AFTER"))

        async def applied() -> bool:
            return "SO-AFTER" in [row["order_id"] for row in await probe.applied()]

        await wait_until(applied, timeout=20, what="the order sent after the restart applied")
    finally:
        await probe.runtime.stop()
        tansu.stop()
