"""Every read of `lottrace check`: the projections' SQL, the outboxes (through the runtime's
`outbox_backlog`, so "unpublished" means what the relay and the gauges mean), and the consumer
groups' lag. Nothing is written: the Kafka consumers here join no group and commit nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from lottrace.check.compare import (
    Activity,
    GroupLag,
    LotRecord,
    OutboxState,
    Projections,
    ShipmentLine,
    StockRecord,
)
from shared.contracts.topics import TOPICS
from shared.runtime.database import Database, Record
from shared.runtime.kafka import client_options
from shared.runtime.lag import consumer_lag, outbox_backlog
from shared.runtime.settings import KafkaSettings, load_settings

SERVICES = ("receiving", "inventory", "fulfillment", "recall")

RECEIVING_LOTS = """
    SELECT lot_id, sku, lot_code, received_quantity AS received, consumed_quantity AS consumed,
           true AS receipt_seen
    FROM lots
"""
# Inventory knows a lot from its receipt once received_at is set (a shipment or a recall can
# name it first); its quantities are kept per location.
INVENTORY_LOTS = """
    SELECT l.lot_id, l.sku, l.lot_code, l.received_at IS NOT NULL AS receipt_seen,
           coalesce(sum(s.received), 0) AS received, coalesce(sum(s.consumed), 0) AS consumed,
           coalesce(sum(s.on_hand), 0) AS on_hand, coalesce(sum(s.adjusted), 0) AS adjusted,
           coalesce(sum(s.returned), 0) AS returned,
           coalesce(sum(s.vendor_returned), 0) AS vendor_returned
    FROM lots l LEFT JOIN stock s USING (lot_id)
    GROUP BY l.lot_id
"""
RECALL_LOTS = """
    SELECT lot_id, sku, lot_code, received_quantity AS received, 0 AS consumed,
           received AS receipt_seen
    FROM lots
"""
SHIPMENT_LINES = """
    SELECT shipment_id, lot_id, sum(quantity) AS quantity FROM shipment_lines GROUP BY 1, 2
"""
# Inventory records each shipment it applied in the lot's history, the shipment id as detail.
INVENTORY_SHIPMENTS = """
    SELECT detail AS shipment_id, lot_id, sum(quantity) AS quantity
    FROM lot_history WHERE change = 'shipped' GROUP BY 1, 2
"""


class SourceUnreadable(Exception):
    """A database or the brokers could not be read; the message names which and why."""


def consumed_topics() -> dict[str, list[str]]:
    """Each service's consumer group (named after the service) and the topics it reads."""
    groups: dict[str, list[str]] = {}
    for topic in TOPICS:
        for consumer in topic.consumers:
            if consumer in SERVICES:
                groups.setdefault(consumer, []).append(topic.name)
    return groups


def service_database_urls(
    overrides: Mapping[str, str | None], *, server: str | None = None
) -> dict[str, str]:
    """Each service's database: the URL given for it; else `lottrace_<service>` on `server`;
    else what the service itself reads (`<SERVICE>_DATABASE_URL`, `DATABASE_URL`, or the
    `make run` default, lottrace_<service> on 127.0.0.1:5432)."""
    import importlib

    urls = {}
    for service in SERVICES:
        given = overrides.get(service)
        if given:
            urls[service] = given
        elif server:
            urls[service] = urlunsplit(urlsplit(server)._replace(path=f"/lottrace_{service}"))
        else:
            settings = load_settings(importlib.import_module(f"services.{service}.app").Settings)
            urls[service] = settings.database_url.get_secret_value()
    return urls


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


@asynccontextmanager
async def open_databases(urls: Mapping[str, str]) -> AsyncIterator[dict[str, Database]]:
    """A small pool per service database; a database that cannot be reached is named."""
    async with AsyncExitStack() as stack:
        databases: dict[str, Database] = {}
        for service, url in urls.items():
            database = Database(url, source="/lottrace/check", min_size=1, max_size=2)
            try:
                await database.open()
            except (OSError, asyncpg.PostgresError) as error:
                raise SourceUnreadable(
                    f"{service} database at {without_password(url)}: {error}"
                ) from error
            stack.push_async_callback(database.close)
            databases[service] = database
        yield databases


async def _fetch(databases: Mapping[str, Database], service: str, query: str) -> list[Record]:
    try:
        return await databases[service].fetch(query)
    except (OSError, asyncpg.PostgresError) as error:
        raise SourceUnreadable(f"{service} database: {error}") from error


def _lots(rows: Iterable[Record]) -> tuple[LotRecord, ...]:
    return tuple(
        LotRecord(
            lot_id=row["lot_id"],
            sku=row["sku"],
            lot_code=row["lot_code"],
            received=Decimal(row["received"]),
            consumed=Decimal(row["consumed"]),
            receipt_seen=row["receipt_seen"],
        )
        for row in rows
    )


def _shipments(rows: Iterable[Record]) -> tuple[ShipmentLine, ...]:
    return tuple(
        ShipmentLine(row["shipment_id"], row["lot_id"], Decimal(row["quantity"])) for row in rows
    )


async def read_projections(databases: Mapping[str, Database]) -> Projections:
    inventory_lots = await _fetch(databases, "inventory", INVENTORY_LOTS)
    return Projections(
        receiving_lots=_lots(await _fetch(databases, "receiving", RECEIVING_LOTS)),
        inventory_lots=_lots(inventory_lots),
        recall_lots=_lots(await _fetch(databases, "recall", RECALL_LOTS)),
        stock=tuple(
            StockRecord(
                row["lot_id"],
                Decimal(row["on_hand"]),
                Decimal(row["adjusted"]),
                Decimal(row["returned"]),
                Decimal(row["vendor_returned"]),
            )
            for row in inventory_lots
        ),
        fulfillment_shipments=_shipments(await _fetch(databases, "fulfillment", SHIPMENT_LINES)),
        inventory_shipments=_shipments(await _fetch(databases, "inventory", INVENTORY_SHIPMENTS)),
        recall_shipments=_shipments(await _fetch(databases, "recall", SHIPMENT_LINES)),
    )


async def read_outboxes(databases: Mapping[str, Database]) -> tuple[OutboxState, ...]:
    states = []
    for service, database in databases.items():
        try:
            unpublished, oldest = await outbox_backlog(database)
        except (OSError, asyncpg.PostgresError) as error:
            raise SourceUnreadable(f"{service} outbox: {error}") from error
        states.append(OutboxState(service, unpublished, oldest))
    return tuple(states)


@dataclass
class GroupOffsets:
    """One consumer per service group, assigned every partition of the group's topics (it
    joins no group and never commits: enable_auto_commit is off and nothing calls commit)."""

    kafka: KafkaSettings
    consumers: dict[str, AIOKafkaConsumer]

    @classmethod
    @asynccontextmanager
    async def opened(cls, kafka: KafkaSettings) -> AsyncIterator[GroupOffsets]:
        reader = cls(kafka, {})
        try:
            for group, topics in consumed_topics().items():
                reader.consumers[group] = await reader._assigned(group, topics)
            yield reader
        except KafkaError as error:
            raise SourceUnreadable(f"Kafka at {kafka.bootstrap_servers}: {error}") from error
        finally:
            for consumer in reader.consumers.values():
                await consumer.stop()

    async def _assigned(self, group: str, topics: list[str]) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            group_id=group, enable_auto_commit=False, **client_options(self.kafka)
        )
        await consumer.start()
        self.consumers[group] = consumer  # stopped by opened() whatever happens next
        existing = await consumer.topics()
        consumer.assign(
            [
                TopicPartition(topic, partition)
                for topic in topics
                if topic in existing
                for partition in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        )
        return consumer

    async def read(self) -> tuple[tuple[GroupLag, ...], int]:
        """Lag per group and topic, and the sum of the end offsets of every consumed topic."""
        try:
            lags: list[GroupLag] = []
            ends: dict[TopicPartition, int] = {}
            for group, consumer in self.consumers.items():
                topics = consumed_topics()[group]
                lag = await consumer_lag(consumer, topics)
                lags += [GroupLag(group, topic, lag[topic]) for topic in topics]
                ends.update(await consumer.end_offsets(sorted(consumer.assignment())))
            return tuple(lags), sum(ends.values())
        except KafkaError as error:
            raise SourceUnreadable(f"Kafka: {error}") from error


async def read_activity(databases: Mapping[str, Database], offsets: GroupOffsets) -> Activity:
    lags, published = await offsets.read()
    return Activity(outboxes=await read_outboxes(databases), lags=lags, published=published)
