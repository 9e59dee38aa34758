"""The outbox relay: publishes committed outbox rows in id order, keeps them a while, and
publishes them again when the broker loses its log.

One relay per database is active at a time (a session advisory lock elects it), so rows
keep their order per key across replicas; the others wait to take over. The relay sleeps on
LISTEN/NOTIFY (every unit of work that writes to the outbox notifies at commit) with a slow
safety poll, so it neither spins nor lags. A crash between publish and marking re-publishes
the tail: consumers de-duplicate by CloudEvents id.

What is still to publish is the narrow `outbox_pending` table of ids: the relay deletes an id
once the broker has its row, and the row itself stays, untouched, for OUTBOX_RETENTION_SECONDS
after it was written (and always until it is published), and is then purged.

The relay also keeps an anchor: where the broker put the last record it acknowledged, and
that record's CloudEvents id. At leadership, after any failure and every
OUTBOX_BROKER_CHECK_SECONDS, it reads that one record back. When the broker no longer has it
(the partition ends before it, or another event sits there: the embedded broker keeps its log
in memory only), every retained row is queued again and goes out in id order. A record that
the topic's retention deleted is not a loss: the anchor is simply dropped. While that check
cannot tell (the broker is back but not its topics yet), the relay publishes nothing, for a
while: new records would hide the loss. And it keeps the highest offset the broker
acknowledged per partition (`broker_log.HighWater`): an acknowledgement at or below it means
the log started again, which catches a broker that came back between two checks.

A row the broker refuses for good (too large) is moved to `outbox_rejected`, counted and
logged, and the relay goes on with the next rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.structs import RecordMetadata

from shared.contracts.envelope import OutgoingMessage
from shared.runtime import metrics
from shared.runtime.broker_log import Anchor, HighWater, LogProbe, LogState, event_id_of
from shared.runtime.database import OUTBOX_CHANNEL, headers_from_json, headers_of_rows
from shared.runtime.logging import get_logger
from shared.runtime.publish import BatchPublisher

log = get_logger(__name__)

# The session advisory lock that elects the one active relay of a database.
RELAY_LOCK_KEY = 0x6F757462  # "outb"
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
PURGE_BATCH = 10_000
# The relay's queue tables change faster than their statistics: autovacuum analyzes
# `outbox_pending` now and then, at whatever size it has then (226 rows, say), and the
# planner trusts that. Planned for 226 rows, the round statement's mark became a sequential
# scan testing each pending id against the 2,000 ids just published: 0.33 s at 10,000
# pending, 2.3 s at 54,000 (auto_explain during `python -m bench.notices_at_scale`), rounds
# slowing as the backlog grew, until a new ANALYZE flipped the plan: the notices' stall. Every
# relay statement has an index that bounds it (the keys, `inbox.received_at`), so its
# session never scans a table whole, whatever the statistics say. Its plans are made for each
# round's own ids (custom plans): the ids to leave out are then a hashed constant, where a plan
# made once for every round (PostgreSQL's generic plan, chosen after five runs) compared them
# one by one (tests/integration/test_outbox_relay_plans.py).
RELAY_SESSION_SETTINGS = {"enable_seqscan": "off", "plan_cache_mode": "force_custom_plan"}
REPUBLISH_SETTLE_SECONDS = 2.0


# One round: mark what the last round published (and where its last record went), fetch the
# next rows. See OutboxRelay._publish_batch.
ROUND_STATEMENT = """
WITH published AS (
    DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])
), anchored AS (
    INSERT INTO outbox_anchor (topic, partition, kafka_offset, event_id)
    SELECT $3::text, $4::integer, $5::bigint, $6::text WHERE $3::text IS NOT NULL
    ON CONFLICT (singleton) DO UPDATE SET
        topic = EXCLUDED.topic, partition = EXCLUDED.partition,
        kafka_offset = EXCLUDED.kafka_offset, event_id = EXCLUDED.event_id,
        recorded_at = now()
), high_water AS (
    INSERT INTO outbox_high_water (topic, partition, kafka_offset)
    SELECT * FROM unnest($7::text[], $8::integer[], $9::bigint[])
    ON CONFLICT (topic, partition) DO UPDATE SET
        kafka_offset = greatest(outbox_high_water.kafka_offset, EXCLUDED.kafka_offset)
), next AS (
    SELECT p.id FROM outbox_pending p WHERE p.id <> ALL($1::bigint[]) ORDER BY p.id LIMIT $2
)
SELECT o.id, o.topic, o.key, o.value, o.headers
FROM outbox o WHERE o.id = ANY(ARRAY(SELECT id FROM next))
ORDER BY o.id
"""


@dataclass(frozen=True)
class Round:
    """What one round published: the ids the next round marks, and the last record's place."""

    sent: list[int] = field(default_factory=list)
    anchor: Anchor | None = None
    acknowledged: list[RecordMetadata] = field(default_factory=list)


@dataclass(frozen=True)
class Rejection:
    id: int
    topic: str
    reason: str


class OutboxRelay:
    def __init__(
        self,
        url: str,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 2_000,
        idle_poll_seconds: float = 5.0,
        inbox_retention_days: float = 30.0,
        retention_seconds: float = 600.0,
        probe: LogProbe | None = None,
        check_seconds: float = 5.0,
        max_message_bytes: int = 1_000_000,
        purge_seconds: float = 10.0,
        unknown_grace_seconds: float = 15.0,
    ) -> None:
        self._url = url
        self._publisher = BatchPublisher(producer)
        self._batch_size = batch_size
        self._idle_poll_seconds = idle_poll_seconds
        self._inbox_retention_days = inbox_retention_days
        self._retention_seconds = retention_seconds
        self._probe = probe
        self._check_seconds = check_seconds
        self._max_message_bytes = max_message_bytes
        self._purge_seconds = purge_seconds
        self._unknown_grace_seconds = unknown_grace_seconds
        self._unknown_since: float | None = None
        self._resume_at = 0.0
        self._high_water = HighWater()
        self._next_purge = 0.0
        self._wakeup = asyncio.Event()
        self.is_leader = False
        self.last_error: str | None = None
        self.published = 0
        self.republished = 0
        self.rejected = 0
        self.checks = 0

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
        connection = await asyncpg.connect(
            self._url, timeout=10, server_settings=RELAY_SESSION_SETTINGS
        )
        try:
            # A standby relay asks for the lock now and then; PostgreSQL cannot notify it.
            while not await connection.fetchval(  # noqa: ASYNC110
                "SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY
            ):
                await asyncio.sleep(self._idle_poll_seconds)
            self.is_leader = True
            log.info("outbox relay active")
            self._high_water = await _load_high_water(connection)
            await connection.add_listener(OUTBOX_CHANNEL, self.wake)
            await self._relay(connection)
        finally:
            self.is_leader = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _relay(self, connection: asyncpg.Connection) -> None:
        """Check the broker first (it may have restarted while no relay was active), then
        publish round after round; a failure ends here and the caller starts over."""
        polls = 0
        last = Round()
        next_check = 0.0
        while True:
            self._wakeup.clear()
            if time.monotonic() >= next_check:
                state = await self._check_broker(connection)
                if state is LogState.LOST:
                    last = Round()  # on the lost log: queued again with the retained rows
                elif state is LogState.UNKNOWN and self._hold_while_unknown():
                    await asyncio.sleep(0.5)  # publish nothing onto a log that may be new
                    continue
                next_check = time.monotonic() + self._check_seconds
            if (settle := self._resume_at - time.monotonic()) > 0:
                await asyncio.sleep(settle)  # let a broker that came back empty settle first
            rows, last = await self._publish_batch(connection, last)
            await self._purge_published(connection)
            if rows:
                continue  # the next round marks these, and takes what came meanwhile
            polls += 1
            if polls % 60 == 1:
                await self._purge_inbox(connection)
            idle = min(self._idle_poll_seconds, self._check_seconds)  # idle, it checks too
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), idle)

    def _hold_while_unknown(self) -> bool:
        """Whether to wait for a conclusive check before publishing: yes for a while, so that
        a broker coming back empty is seen before new records would hide its loss; not for
        ever, so a broker that cannot tell does not stop the relay (the high-water marks still
        catch a restart at the first acknowledgement)."""
        now = time.monotonic()
        if self._unknown_since is None:
            self._unknown_since = now
        return now - self._unknown_since < self._unknown_grace_seconds

    async def _publish_batch(
        self, connection: asyncpg.Connection, previous: Round
    ) -> tuple[int, Round]:
        """Mark what the last round published, fetch the next rows, publish them.

        Returns how many rows this round fetched and what it published, which the next round
        marks in the same statement as its fetch: one round trip a round. The fetch still sees
        those rows unmarked (one snapshot): `id <> ALL(ids)` leaves them out, a hashed constant
        in the session's custom plans. The next ids are chosen from `outbox_pending` alone,
        before any row is read: planned for a queue smaller than it is, a join read every
        pending row, values and all, into a hash and sorted it on disk (46,000 rows: 0.35 s a
        round). The rows are then read by those ids alone (`= ANY`), no join: the outbox keeps
        published rows for a while, and a join planned for a queue the statistics thought empty
        scanned every row of the round's id range once for each id, seconds a round during a
        recall's notices (auto_explain during `python -m bench.notices_at_scale`; 4,000,000
        rows filtered for 2,000 in the test). `python -m bench.relay` times the relay alone.
        """
        anchor = previous.anchor
        started = time.monotonic()
        rows = await connection.fetch(
            ROUND_STATEMENT,
            previous.sent,
            self._batch_size,
            anchor.topic if anchor else None,
            anchor.partition if anchor else None,
            anchor.offset if anchor else None,
            anchor.event_id if anchor else None,
            *_high_water_columns(previous.acknowledged),
        )
        self.published += len(previous.sent)
        if not rows:
            return 0, Round()
        fetched = time.monotonic()
        published = await self._settle(connection, rows, await self._publish(rows))
        # At LOG_LEVEL=DEBUG, `python -m bench.notice_timeline` lays these out against the
        # notifier's chunks and the reader's fetches.
        log.debug(
            "outbox round",
            rows=len(rows),
            fetch_s=round(fetched - started, 4),
            publish_s=round(time.monotonic() - fetched, 4),
        )
        return len(rows), published

    async def _publish(self, rows: list[asyncpg.Record]) -> list[Any]:
        """Each row's metadata or failure, in row order. A row too large for the broker fails
        alone, before the others go out as per-partition record batches."""
        headers = headers_of_rows([row["headers"] for row in rows])
        messages = [
            OutgoingMessage(row["topic"], row["key"], row["value"], pairs)
            for row, pairs in zip(rows, headers, strict=True)
        ]
        fits = [message.size <= self._max_message_bytes for message in messages]
        fitting = [message for message, ok in zip(messages, fits, strict=True) if ok]
        sent = iter(await self._publisher.publish(fitting))
        return [
            next(sent) if ok else self._too_large(message)
            for message, ok in zip(messages, fits, strict=True)
        ]

    def _too_large(self, message: OutgoingMessage) -> MessageSizeTooLargeError:
        return MessageSizeTooLargeError(
            f"{message.size} bytes exceed KAFKA_MAX_MESSAGE_BYTES ({self._max_message_bytes})"
        )

    async def _settle(
        self, connection: asyncpg.Connection, rows: list[asyncpg.Record], results: list[Any]
    ) -> Round:
        """Keep the prefix the broker acknowledged (order per key survives a partial failure),
        set aside the rows refused for their size, raise the first other failure."""
        acknowledged: list[tuple[asyncpg.Record, RecordMetadata]] = []
        rejected: list[Rejection] = []
        failure: BaseException | None = None
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, _TOO_LARGE):
                rejected.append(Rejection(row["id"], row["topic"], f"{result}"))
            elif isinstance(result, BaseException):
                failure = failure or result
            elif failure is None:
                acknowledged.append((row, result))
        for topic, count in Counter(row["topic"] for row, _ in acknowledged).items():
            metrics.OUTBOX_PUBLISHED.labels(topic).inc(count)
        if rejected:
            await self._set_aside(connection, rejected)
        published = await self._published(connection, acknowledged)
        if failure is not None:
            if published.sent:
                await self._mark(connection, published)
            raise failure
        return published

    async def _published(
        self, connection: asyncpg.Connection, acknowledged: list[tuple[asyncpg.Record, Any]]
    ) -> Round:
        """What the round published, unless an acknowledgement shows the broker's log started
        again: then every retained row is queued again (these rows included) instead."""
        offsets = [metadata for _, metadata in acknowledged]
        restarted = self._high_water.regressed(offsets)
        if restarted is not None:
            self._high_water = HighWater()
            where = f"{restarted.topic}/{restarted.partition}@{restarted.offset}"
            await self._requeue(connection, evidence=f"acknowledged again at {where}")
            return Round()
        self._high_water.advance(offsets)
        sent = [row["id"] for row, _ in acknowledged]
        anchor = next(filter(None, (_anchor(*pair) for pair in reversed(acknowledged))), None)
        return Round(sent, anchor, offsets)

    async def _mark(self, connection: asyncpg.Connection, published: Round) -> None:
        """Mark published rows outside a round (before a failure ends the relay's turn)."""
        await connection.execute(
            "DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])", published.sent
        )
        self.published += len(published.sent)

    async def _set_aside(self, connection: asyncpg.Connection, rejected: list[Rejection]) -> None:
        await connection.execute(
            """
            WITH moved AS (
                DELETE FROM outbox o USING unnest($1::bigint[], $2::text[]) AS r(id, reason)
                WHERE o.id = r.id
                RETURNING o.id, o.topic, o.key, o.value, o.headers, o.created_at, r.reason
            ), unpending AS (
                DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])
            )
            INSERT INTO outbox_rejected (id, topic, key, value, headers, created_at, reason)
            SELECT * FROM moved ON CONFLICT (id) DO NOTHING
            """,
            [r.id for r in rejected],
            [r.reason for r in rejected],
        )
        for rejection in rejected:
            self.rejected += 1
            metrics.OUTBOX_REJECTED.labels(rejection.topic).inc()
            log.error(
                "outbox row set aside: the broker refuses it",
                outbox_id=rejection.id,
                topic=rejection.topic,
                reason=rejection.reason[:300],
            )

    async def _check_broker(self, connection: asyncpg.Connection) -> LogState | None:
        """Read back the anchor record; when the broker lost it, queue every retained row
        again. None when there is nothing to check."""
        row = await connection.fetchrow(
            "SELECT topic, partition, kafka_offset, event_id FROM outbox_anchor"
        )
        if row is None or self._probe is None:
            self._unknown_since = None
            return None
        anchor = Anchor(row["topic"], row["partition"], row["kafka_offset"], row["event_id"])
        started = time.monotonic()
        state = await self._probe.check(anchor)
        log.debug("outbox broker checked", state=state.value, check_s=time.monotonic() - started)
        self.checks += 1
        if state is LogState.UNKNOWN:
            log.warning("outbox broker check inconclusive; checking again", anchor=f"{anchor}")
            return state
        self._unknown_since = None
        if state is LogState.EXPIRED:
            await connection.execute("DELETE FROM outbox_anchor")
        elif state is LogState.LOST:
            self._high_water = HighWater()
            await self._requeue(connection, evidence=f"missing {anchor}")
        return state

    async def _requeue(self, connection: asyncpg.Connection, *, evidence: str) -> None:
        """Queue every retained row again, in one transaction with forgetting the anchor and
        the high-water marks of the lost log."""
        queued = await connection.fetchval(
            """
            WITH queued AS (
                INSERT INTO outbox_pending SELECT id FROM outbox
                ON CONFLICT (id) DO NOTHING RETURNING 1
            ), dropped AS (
                DELETE FROM outbox_anchor
            ), forgotten AS (
                DELETE FROM outbox_high_water
            )
            SELECT count(*) FROM queued
            """
        )
        self.republished += queued
        # The embedded broker, just back, refuses (and can mis-number) batches produced at
        # once to a partition it has only begun: the re-publish waits a moment.
        self._resume_at = time.monotonic() + REPUBLISH_SETTLE_SECONDS
        await self._publisher.relearn_partitions()
        metrics.OUTBOX_REPUBLISHED.inc(queued)
        log.warning("outbox re-published after broker loss", count=queued, evidence=evidence)

    async def _purge_published(self, connection: asyncpg.Connection) -> None:
        """Delete published rows written longer ago than the retention, oldest first, a batch at
        a time; again at once while a full batch came back (catching up).

        Only the oldest batch of rows is looked at: ids grow with time, and the relay publishes
        in id order, so older rows are not further on. Looking for old rows among every row
        read the whole retained outbox every ten seconds (130,000 rows: 0.34 s, in line with
        publishing, and growing with each recall's notices)."""
        if time.monotonic() < self._next_purge:
            return
        deleted = await connection.fetchval(
            """
            WITH oldest AS (
                SELECT id, created_at FROM outbox ORDER BY id LIMIT $2
            ), old AS (
                SELECT id FROM oldest o
                WHERE created_at < now() - make_interval(secs => $1)
                  AND NOT EXISTS (SELECT FROM outbox_pending p WHERE p.id = o.id)
            ), gone AS (
                DELETE FROM outbox o USING old WHERE o.id = old.id RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            self._retention_seconds,
            PURGE_BATCH,
        )
        behind = deleted >= PURGE_BATCH
        self._next_purge = time.monotonic() + (0.0 if behind else self._purge_seconds)

    async def _purge_inbox(self, connection: asyncpg.Connection) -> None:
        """Forget old inbox entries; the inbox outlives the topics' retention."""
        await connection.execute(
            "DELETE FROM inbox WHERE received_at < now() - make_interval(secs => $1)",
            self._inbox_retention_days * 86_400,
        )


def _anchor(row: asyncpg.Record, metadata: RecordMetadata) -> Anchor | None:
    event_id = event_id_of(headers_from_json(row["headers"]))
    if event_id is None:
        return None
    return Anchor(metadata.topic, metadata.partition, metadata.offset, event_id)


def _high_water_columns(
    acknowledged: list[RecordMetadata],
) -> tuple[list[str], list[int], list[int]]:
    marks = HighWater()
    marks.advance(acknowledged)
    return marks.columns()


async def _load_high_water(connection: asyncpg.Connection) -> HighWater:
    rows = await connection.fetch("SELECT topic, partition, kafka_offset FROM outbox_high_water")
    return HighWater({(row["topic"], row["partition"]): row["kafka_offset"] for row in rows})
