"""Measuring helpers: percentiles, consumer lag, peak memory of service processes, and a
throwaway recall database for the benches that time the recall service's SQL in process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TypeVar

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from lottrace.infra import EmbeddedPostgres
from services.recall.app import MIGRATIONS
from shared.runtime.database import Database
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate

RECALL_SOURCE = "/lottrace/recall"


T = TypeVar("T")


async def paced(
    items: Sequence[T], per_second: float, *, started: float | None = None
) -> AsyncIterator[tuple[int, T]]:
    """Each item with its index at its due time: item n at `started` + n / `per_second`
    (time.monotonic(); now if not given), never earlier; late ones at once."""
    start = time.monotonic() if started is None else started
    for n, item in enumerate(items):
        delay = start + n / per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n, item


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; `fraction` in [0, 1]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Records in `topics` the consumer group has not committed yet."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = _partitions(consumer, topics)
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp in partitions:
            committed = await consumer.committed(tp) or 0
            lag += max(0, ends[tp] - committed)
        return lag
    finally:
        await consumer.stop()


async def published(bootstrap: str, topics: Sequence[str]) -> int:
    """How many records `topics` hold in all (the sum of their end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(_partitions(consumer, topics))).values())
    finally:
        await consumer.stop()


async def wait_caught_up(
    bootstrap: str, group: str, topics: Sequence[str], *, timeout: float, interval: float = 0.5
) -> float:
    """Wait until the group has consumed everything in `topics`; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await group_lag(bootstrap, group, topics) == 0:
            return time.monotonic()
        await asyncio.sleep(interval)
    raise TimeoutError(f"{group} still lagging on {topics} after {timeout}s")


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident memory (VmHWM): its true peak,
    not a sample of it; None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


class MemorySampler:
    """Keeps the peak resident memory of processes by name: VmHWM from /proc (what the kernel
    saw at its highest), read every `interval` while the process lives, so the last reading
    before it stops is its peak; the sampled RSS where /proc has no VmHWM."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._task: asyncio.Task[None] | None = None

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.peak_mb.setdefault(name, 0.0)

    def sample(self) -> None:
        """Read every process's peak now (also call it just before stopping them)."""
        for name, pid in list(self.pids.items()):
            peak = peak_rss_mb(pid)
            if peak is None:
                with contextlib.suppress(psutil.Error):
                    peak = psutil.Process(pid).memory_info().rss / (1024 * 1024)
            if peak is not None:
                self.peak_mb[name] = max(self.peak_mb[name], peak)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def recall_database(name: str) -> AsyncIterator[Database]:
    """The recall service's schema in a new database `name` on an embedded PostgreSQL of its
    own, open until the block ends; the server and its data are removed after it."""
    server = EmbeddedPostgres(durable=False)
    await server.start()
    try:
        admin = await asyncpg.connect(server.url())
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = server.url(name)
        await migrate(url, [("runtime", RUNTIME_MIGRATIONS), ("recall", MIGRATIONS)])
        async with Database(url, source=RECALL_SOURCE, min_size=1, max_size=2) as database:
            yield database
    finally:
        server.remove()  # stops it and deletes its throwaway data folder
