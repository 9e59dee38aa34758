"""Ctrl-C under `make run` drains before it stops: the services refuse new writes (503,
SIGUSR1 puts them in draining mode), their consumers catch up and their outboxes empty,
then everything stops. Bounded: after the deadline the platform stops anyway and says what
was left (it is still in the PostgreSQL outboxes, published on the next start)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts.topics import TOPICS
from shared.runtime.lag import OUTBOX_QUERY

DRAIN_SECONDS = 60.0


@dataclass(frozen=True)
class Backlog:
    """What is still in flight: unpublished outbox rows and unconsumed records, per service;
    `settled` when the topics' end offsets were the same before and after the reading (no
    record was published while it was read, so the counts describe one moment)."""

    outbox: Mapping[str, int]
    lag: Mapping[str, int]
    settled: bool = True

    @property
    def empty(self) -> bool:
        return self.settled and not any(self.outbox.values()) and not any(self.lag.values())

    def describe(self) -> str:
        outbox = sum(self.outbox.values())
        lag = sum(self.lag.values())
        behind = ", ".join(f"{name} {count}" for name, count in self.lag.items() if count)
        return (
            f"{outbox} outbox rows to publish, {lag} records to consume"
            + (f" ({behind})" if behind else "")
            + ("" if self.settled else ", records still being published")
        )


def input_topics(service: str) -> list[str]:
    """The topics a service's consumer group reads (its group id is the service name)."""
    return [topic.name for topic in TOPICS if service in topic.consumers]


async def outbox_rows(database_url: str) -> int:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        row = await connection.fetchrow(OUTBOX_QUERY)
        return int(row["backlog"]) if row is not None else 0
    finally:
        await connection.close()


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """End offsets minus the group's committed offsets over `topics` (a consumer of the group
    that never joins it: Tansu does not answer the admin client's offset fetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        lag = 0
        for tp in partitions:
            lag += max(0, ends[tp] - (await consumer.committed(tp) or 0))
        return lag
    finally:
        await consumer.stop()


async def topic_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of the contract's topics (those that exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic.name, p)
            for topic in TOPICS
            for p in sorted(consumer.partitions_for_topic(topic.name) or ())
        ]
        return await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()


async def backlog(bootstrap: str, database_urls: Mapping[str, str]) -> Backlog:
    """One reading of what is in flight, trusted only when the topics' end offsets did not move
    while it was taken: the lags first, then the outboxes (a consumer writes its outbox rows
    before it commits its offset, so a record it has consumed shows its rows), and a record
    published meanwhile moves an end offset."""
    before = await topic_ends(bootstrap)
    lag = {
        name: await group_lag(bootstrap, name, input_topics(name))
        for name in database_urls
        if input_topics(name)
    }
    outbox = {name: await outbox_rows(url) for name, url in database_urls.items()}
    after = await topic_ends(bootstrap)
    return Backlog(outbox=outbox, lag=lag, settled=before == after)


async def wait_drained(
    bootstrap: str,
    database_urls: Mapping[str, str],
    *,
    say: Callable[[str], None],
    timeout: float = DRAIN_SECONDS,
    interval: float = 0.5,
) -> Backlog | None:
    """Poll until nothing is in flight (returns None) or the deadline (returns what is left),
    saying the progress about once a second."""
    deadline = time.monotonic() + timeout
    last: Backlog | None = None
    said = 0.0
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(10):
                last = await backlog(bootstrap, database_urls)
        except Exception as error:  # a dead broker or database: try again until the deadline
            say(f"draining: cannot read the backlog yet ({type(error).__name__}: {error})")
        else:
            if last.empty:
                return None
            if time.monotonic() - said >= 1:
                say(f"draining: {last.describe()}")
                said = time.monotonic()
        await asyncio.sleep(interval)
    return last
