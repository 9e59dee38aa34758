"""What the counters cannot say, sampled every METRICS_SAMPLE_SECONDS: how far behind a
service is on both sides.

- Input: consumer lag per topic, the end offset minus the group's committed offset, over the
  partitions this replica is assigned (`lottrace_consumer_lag`). Each partition belongs to one
  member of the group, so summing the replicas' gauges gives the group's lag, counted once.
  It comes from the subscriber's running aiokafka consumer: no extra connection.
- Output: the outbox backlog and the age of its oldest unpublished row
  (`lottrace_outbox_backlog`, `lottrace_outbox_oldest_unsent_seconds`), sampled here only:
  on every replica, so they stay current when the relay that holds the lock is stuck, which
  is when they matter.

A sample never stops the service or the consumer: every call is bounded in time, and a
failure is logged (once, until it recovers) and counted in `lottrace_metrics_sample_errors_total`,
leaving the gauges at their last value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka import TopicPartition

from shared.runtime import metrics
from shared.runtime.logging import get_logger

if TYPE_CHECKING:
    from shared.runtime.database import Database
    from shared.runtime.service import ServiceRuntime

log = get_logger(__name__)

# Bounds one sample's round trips: a slow broker or database delays the next sample, never
# anything else.
SAMPLE_TIMEOUT_SECONDS = 5.0

# The backlog: outbox rows not yet published, the ids in `outbox_pending` (published rows stay
# a while for re-publishing; rows the broker refused move to outbox_rejected). The age is that
# of the next row to publish, the lowest pending id, one index entry, then its outbox row by
# id. (It can be younger than the oldest unsent row by the length of a transaction: ids are
# taken at insert, created_at at the transaction's start.) Not a join: planned as a merge join
# with statistics taken before a backlog, it walked every published row to reach the first
# pending one, a second of the database's time for a recall's notices
# (tests/integration/test_outbox_backlog_gauge.py).
OUTBOX_QUERY = """
    SELECT
        (SELECT count(*) FROM outbox_pending) AS backlog,
        coalesce(
            (SELECT extract(epoch FROM now() - o.created_at) FROM outbox o
             WHERE o.id = (SELECT min(id) FROM outbox_pending)),
            0
        ) AS oldest
"""


class OffsetsSource(Protocol):
    """The part of aiokafka's AIOKafkaConsumer that lag is computed from."""

    def assignment(self) -> set[TopicPartition]: ...

    async def committed(self, partition: TopicPartition) -> int | None: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


async def consumer_lag(consumer: OffsetsSource, topics: Iterable[str]) -> dict[str, int]:
    """Lag per topic over the consumer's assigned partitions; 0 for a topic it holds none of.

    A partition the group never committed counts from its first offset, as the consumer
    starts there (`auto_offset_reset="earliest"`, shared/runtime/consumer.py), and as KEDA
    counts it (`offsetResetPolicy: earliest`).
    """
    lag = dict.fromkeys(topics, 0)
    assigned = sorted(consumer.assignment())
    if not assigned:
        return lag
    ends = await consumer.end_offsets(assigned)
    committed = await asyncio.gather(*(consumer.committed(tp) for tp in assigned))
    never = [tp for tp, offset in zip(assigned, committed, strict=True) if offset is None]
    starts = await consumer.beginning_offsets(never) if never else {}
    for tp, offset in zip(assigned, committed, strict=True):
        start = offset if offset is not None else starts.get(tp, 0)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, start) - start)
    return lag


async def outbox_backlog(database: Database) -> tuple[int, float]:
    """Unpublished outbox rows, and the age in seconds of the oldest (0 when none)."""
    row = await database.fetchrow(OUTBOX_QUERY)
    if row is None:
        return 0, 0.0
    return int(row["backlog"]), max(0.0, float(row["oldest"]))


class MetricsSampler:
    """Refreshes the lag and backlog gauges of one service, until cancelled."""

    def __init__(
        self,
        *,
        database: Database,
        consumer: Callable[[], OffsetsSource | None] | None,
        topics: Sequence[str],
        interval: float,
        timeout: float = SAMPLE_TIMEOUT_SECONDS,
    ) -> None:
        self._database = database
        self._consumer = consumer
        self._topics = list(topics)
        self._interval = interval
        self._timeout = timeout
        self._failing: set[str] = set()

    @classmethod
    def of(cls, runtime: ServiceRuntime) -> MetricsSampler:
        consumer: Callable[[], OffsetsSource | None] | None = None
        broker = runtime.broker
        if runtime.consumer is not None and broker is not None:

            def consumer() -> OffsetsSource | None:
                # FastStream makes the aiokafka consumer when the subscriber starts, and may
                # make a new one after a failure: look it up on every sample.
                subscribers = broker.subscribers
                found: OffsetsSource | None = (
                    getattr(subscribers[0], "consumer", None) if subscribers else None
                )
                return found

        return cls(
            database=runtime.database,
            consumer=consumer,
            topics=runtime.consumer.topics if runtime.consumer is not None else (),
            interval=runtime.settings.metrics_sample_seconds,
        )

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)

    async def sample(self) -> None:
        if self._consumer is not None:
            await self._attempt("consumer_lag", self._sample_lag)
        await self._attempt("outbox", self._sample_outbox)

    async def _sample_lag(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer()
        if consumer is None:
            return  # not started yet, or restarting: keep the last values
        for topic, records in (await consumer_lag(consumer, self._topics)).items():
            metrics.CONSUMER_LAG.labels(topic).set(records)

    async def _sample_outbox(self) -> None:
        backlog, oldest = await outbox_backlog(self._database)
        metrics.OUTBOX_BACKLOG.set(backlog)
        metrics.OUTBOX_OLDEST_SECONDS.set(oldest)

    async def _attempt(self, sampler: str, sample: Callable[[], Awaitable[Any]]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await sample()
        except Exception as error:
            metrics.SAMPLE_ERRORS.labels(sampler).inc()
            if sampler not in self._failing:
                self._failing.add(sampler)
                log.warning(
                    "metrics sample failed; retrying every interval",
                    sampler=sampler,
                    error=f"{type(error).__name__}: {error}"[:300],
                    interval_seconds=self._interval,
                )
        else:
            if sampler in self._failing:
                self._failing.discard(sampler)
                log.info("metrics sample recovered", sampler=sampler)
