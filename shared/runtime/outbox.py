"""The outbox relay: publishes committed outbox rows in id order, then deletes them.

One relay per database is active at a time (a session advisory lock elects it), so rows
keep their order per key across replicas; the others wait to take over. The relay sleeps on
LISTEN/NOTIFY (every unit of work that writes to the outbox notifies at commit) with a slow
safety poll, so it neither spins nor lags. A crash between publish and delete re-publishes
the tail: consumers de-duplicate by CloudEvents id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.runtime import metrics
from shared.runtime.database import OUTBOX_CHANNEL, headers_from_json
from shared.runtime.logging import get_logger

log = get_logger(__name__)

_RELAY_LOCK_KEY = 0x6F757462  # "outb"


class OutboxRelay:
    def __init__(
        self,
        url: str,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 2_000,
        idle_poll_seconds: float = 5.0,
        inbox_retention_days: float = 30.0,
    ) -> None:
        self._url = url
        self._producer = producer
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._inbox_retention_days = inbox_retention_days
        self._wakeup = asyncio.Event()
        self.is_leader = False
        self.last_error: str | None = None
        self.published = 0

    def wake(self, *_: Any) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled, reconnecting after any failure."""
        delay = 0.5
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.is_leader = False
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("outbox relay interrupted", error=self.last_error, in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.5

    async def _run_once(self) -> None:
        connection = await asyncpg.connect(self._url, timeout=10)
        try:
            # A standby relay asks for the lock now and then; PostgreSQL cannot notify it.
            while not await connection.fetchval(  # noqa: ASYNC110
                "SELECT pg_try_advisory_lock($1)", _RELAY_LOCK_KEY
            ):
                await asyncio.sleep(self._idle_poll_seconds)
            self.is_leader = True
            log.info("outbox relay active")
            await connection.add_listener(OUTBOX_CHANNEL, self.wake)
            polls = 0
            sent: list[int] = []
            while True:
                self._wakeup.clear()
                rows, sent = await self._publish_batch(connection, sent)
                if rows:
                    continue  # the next round deletes these, and takes what came meanwhile
                polls += 1
                if polls % 60 == 1:
                    await self._purge(connection)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._idle_poll_seconds)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _publish_batch(
        self, connection: asyncpg.Connection, previously_sent: list[int]
    ) -> tuple[int, list[int]]:
        """Delete what the last round published, fetch the next rows, publish them.

        Returns how many rows this round fetched and the ids it published, which the next
        round deletes in the same statement as its fetch: one round trip a round.
        """
        rows = await connection.fetch(
            """
            WITH published AS (
                DELETE FROM outbox WHERE id = ANY($1::bigint[])
            )
            SELECT id, topic, key, value, headers FROM outbox
            WHERE id <> ALL($1::bigint[])
            ORDER BY id LIMIT $2
            """,
            previously_sent,
            self._batch_size,
        )
        if previously_sent:
            self.published += len(previously_sent)
        if not rows:
            return 0, []
        futures = []
        for row in rows:
            futures.append(
                await self._producer.send(
                    row["topic"],
                    value=row["value"],
                    key=row["key"],
                    headers=headers_from_json(row["headers"]),
                )
            )
        results = await asyncio.gather(*futures, return_exceptions=True)
        # Keep the prefix that was acknowledged: order per key survives a partial failure.
        sent: list[int] = []
        failure: BaseException | None = None
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failure = result
                break
            sent.append(row["id"])
            metrics.OUTBOX_PUBLISHED.labels(row["topic"]).inc()
        if failure is not None:
            if sent:
                await connection.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent)
            raise failure
        return len(rows), sent

    async def _purge(self, connection: asyncpg.Connection) -> None:
        """Forget old inbox entries; the inbox outlives the topics' retention."""
        await connection.execute(
            "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1)",
            self._inbox_retention_days * 86_400,
        )
