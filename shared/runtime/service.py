"""A service's life: connect, migrate, relay, consume; wait and retry while a dependency is
down (reporting not-ready) instead of exiting in a crash loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.runtime import metrics
from shared.runtime.broker_log import LogProbe
from shared.runtime.consumer import BatchConsumer
from shared.runtime.database import Database
from shared.runtime.kafka import client_options, make_broker, make_producer
from shared.runtime.lag import MetricsSampler
from shared.runtime.logging import get_logger
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.outbox import OutboxRelay
from shared.runtime.settings import ServiceSettings
from shared.runtime.tracing import setup_tracing

log = get_logger(__name__)

# How long a stop waits for its tasks (the relay, the metrics sampler, background jobs) to
# end once cancelled.
STOP_TASKS_SECONDS = 5.0


class ServiceRuntime:
    """Everything a service needs besides its own rules: database, outbox relay, consumer."""

    def __init__(
        self,
        *,
        name: str,
        settings: ServiceSettings,
        migrations: Path,
        consumer: BatchConsumer | None = None,
        background: list[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.source = settings.event_source or f"/lottrace/{name}"
        self._migrations = migrations
        self._url = settings.database_url.get_secret_value()
        self.database = Database(
            self._url,
            source=self.source,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            max_message_bytes=settings.kafka.max_message_bytes,
            exports=settings.exports,
        )
        self.consumer = consumer
        self.broker = make_broker(settings.kafka, service=name) if consumer else None
        # --- observability: tracing (off unless OTEL_ENABLED), lag and backlog sampling ---
        self.tracer_provider = setup_tracing(settings, service=name, broker=self.broker)
        self._sampler: asyncio.Task[None] | None = None
        # --- end observability ---
        if consumer is not None and self.broker is not None:
            consumer.subscribe(self.broker, self.database, settings)
        # aiokafka clients belong to a running event loop: made at start-up.
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self._background = background or []
        self._tasks: list[asyncio.Task[None]] = []
        self.started = asyncio.Event()
        self.startup_problem: str | None = "starting"

    async def start(self) -> None:
        """Begin start-up in the background; HTTP serves health and readiness meanwhile."""
        self._tasks.append(asyncio.create_task(self._start_up(), name=f"{self.name}-startup"))

    async def _start_up(self) -> None:
        await self._until_done("database", self._open_database)
        await self._until_done("producer", self._start_producer)
        assert self.producer is not None
        settings = self.settings
        self.relay = OutboxRelay(
            self._url,
            self.producer,
            batch_size=settings.outbox_batch_size,
            inbox_retention_days=settings.inbox_retention_days,
            retention_seconds=settings.outbox_retention_seconds,
            probe=LogProbe(client_options(settings.kafka)),
            check_seconds=settings.outbox_broker_check_seconds,
            max_message_bytes=settings.kafka.max_message_bytes,
        )
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-relay"))
        if self.broker is not None:
            await self._until_done("broker", self._start_broker)
        for job in self._background:
            self._tasks.append(asyncio.create_task(job(self), name=f"{self.name}-job"))
        # --- observability: sample consumer lag and outbox backlog until stop ---
        self._sampler = asyncio.create_task(
            MetricsSampler.of(self).run(), name=f"{self.name}-metrics-sampler"
        )
        self._tasks.append(self._sampler)  # cancelled with the rest if stop began meanwhile
        # --- end observability ---
        freeze_startup_heap()
        self.startup_problem = None
        self.started.set()
        log.info("service started")

    async def _open_database(self) -> None:
        if self.settings.migrate_on_start:
            await migrate(
                self._url, [("runtime", RUNTIME_MIGRATIONS), (self.name, self._migrations)]
            )
        if not self.database.is_open:
            await self.database.open()

    async def _start_producer(self) -> None:
        producer = make_producer(self.settings.kafka, service=self.name)
        try:
            await producer.start()
        except Exception:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self.producer = producer

    async def _start_broker(self) -> None:
        assert self.broker is not None
        try:
            await self.broker.start()
        except Exception:
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise

    async def _until_done(self, what: str, step: Callable[[], Awaitable[Any]]) -> None:
        delay = 0.5
        while True:
            try:
                await step()
                return
            except Exception as error:
                self.startup_problem = f"{what}: {type(error).__name__}: {error}"
                log.warning("waiting for dependency", dependency=what, error=str(error)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        """Each step bounded: one that does not end in time is left behind with a warning, so
        the producer and the pool still close (a CI run saw a stop wait five minutes, its
        relay still running)."""
        # --- observability: the sampler reads the consumer, so it stops first ---
        if self._sampler is not None:
            await cancelled("metrics sampler", [self._sampler], within=STOP_TASKS_SECONDS)
        # --- end observability ---
        if self.consumer is not None:
            self.consumer.stop()
            await bounded("offset commit", self.consumer.flush(), within=5)
        if self.broker is not None and self.started.is_set():
            await bounded("consumer", self.broker.stop(), within=15)
        tasks = [task for task in self._tasks if task is not self._sampler]
        await cancelled("tasks", tasks, within=STOP_TASKS_SECONDS)
        if self.producer is not None:
            await bounded("producer", self.producer.stop(), within=10)
        await bounded("database pool", self.database.close(), within=15)
        log.info("service stopped")

    async def readiness(self) -> dict[str, Any]:
        database_ok = await self.database.ping()
        broker_ok = self.started.is_set() and await self._ping_broker()
        checks: dict[str, Any] = {
            "database": "ok" if database_ok else "unreachable",
            "broker": "ok" if broker_ok else "unreachable",
        }
        if self.startup_problem:
            checks["starting"] = self.startup_problem
        if self.consumer is not None and self.consumer.last_error:
            checks["consumer"] = self.consumer.last_error
        ready = database_ok and broker_ok and self.started.is_set()
        metrics.READY.set(1 if ready else 0)
        return {"ready": ready, "checks": checks}

    async def _ping_broker(self) -> bool:
        """A metadata round trip through the producer's connection."""
        if self.producer is None:
            return False
        try:
            async with asyncio.timeout(2.0):
                await self.producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True


async def cancelled(step: str, tasks: Sequence[asyncio.Task[Any]], *, within: float) -> None:
    """Cancel the tasks and wait `within` seconds at most for them to end (see `settled`)."""
    for task in tasks:
        task.cancel()
    await settled(step, tasks, within=within)


async def bounded(step: str, work: Coroutine[Any, Any, Any], *, within: float) -> None:
    """Run one step of a stop, `within` seconds at most (see `settled`); its failure is
    not the stop's."""
    await settled(step, [asyncio.create_task(work, name=f"stop: {step}")], within=within)


async def settled(step: str, tasks: Sequence[asyncio.Task[Any]], *, within: float) -> None:
    """Wait `within` seconds at most for the tasks to end. One still running then (it caught
    its cancellation, or awaits something that ignores it) is cancelled and left behind with
    a warning naming it: in Python 3.11 `asyncio.wait_for` would wait for it after its
    timeout too, and a stop that waits for ever keeps the pod from ending until it is killed."""
    if not tasks:
        return
    done, running = await asyncio.wait(tasks, timeout=within)
    for task in done:
        _retrieved(task)
    for task in running:
        task.cancel()
        task.add_done_callback(_retrieved)
    if running:
        log.warning(
            "stop step did not end in time; left behind",
            step=step,
            tasks=sorted(task.get_name() for task in running),
            waited_seconds=within,
        )


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Mark a task's failure as seen: a step or task failing at stop is not news."""
    if not task.cancelled():
        task.exception()


@functools.cache
def freeze_startup_heap() -> None:
    """Once a process, when start-up is done: what it made (modules, models, schemas, routes:
    most of the heap, alive for good) leaves the garbage collector's reach.

    Otherwise every full collection scans all of it with the event loop stopped: under the
    bench's burst, 280-380 ms each, every ~50 batches, a quarter of inventory's CPU and a third
    of fulfillment's. The garbage start-up left is collected first, so none is kept for good.
    """
    gc.collect()
    gc.freeze()
