"""Rebuild a service's projection from its topics, from offset 0, into a fresh schema; then
switch the service to it.

Two steps, so the long one runs while the service keeps serving:

1. **Build** (service running). Migrate an empty schema (`lottrace_replay`) and apply every
   record of the service's input topics with the service's own handlers, up to what the live
   projection has applied. The events the handlers emit meanwhile are discarded: the live
   service emitted them already. Progress is stored in the schema, so a build interrupted
   resumes where it stopped.
2. **Switch** (service stopped: no other session on its database). Apply what the live
   projection applied since (events still discarded); copy the tables the service owns
   (written by its HTTP commands, not derived from topics) and the outbox rows not yet
   published; then swap the schemas in one transaction. The old schema stays as
   `lottrace_replaced_<time>` until someone drops it (or renames it back to roll back).

When the service starts again its consumer group resumes from its committed offsets: what the
rebuild applied is in the new inbox and is skipped, what nobody applied yet is applied as
usual, with its effects. So the rebuild never needs the topics' end, only the live position.

"What the live projection applied" per partition is the highest offset in its inbox, or the
consumer group's committed offset if higher (the inbox forgets after INBOX_RETENTION_DAYS).
Records the handlers refuse go to the replay's outbox like any effect: discarded up to that
point, because the live consumer dead-lettered them already.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.runtime.consumer import BatchConsumer, Record
from shared.runtime.database import Connection, Database, is_transient, quote_identifier
from shared.runtime.kafka import client_options
from shared.runtime.logging import get_logger
from shared.runtime.migrations import MIGRATIONS_LOCK, RUNTIME_MIGRATIONS, migrate
from shared.runtime.settings import KafkaSettings

log = get_logger(__name__)

REPLAY_SCHEMA = "lottrace_replay"
REPLACED_PREFIX = "lottrace_replaced_"
APPLICATION_NAME = "lottrace-replay"

Positions = dict[TopicPartition, int]


class ReplayRefused(RuntimeError):
    """The replay cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class ReplayPlan:
    """What a service's projection is made of.

    `owned_tables` are written by the service's commands, not derived from topics: the switch
    copies them from the live schema, in this order. `after_copy` runs (in the new schema)
    once they are copied; `switch_blocker` (in the live schema) names a reason not to switch
    now. A service whose state the topics cannot rebuild says why in `unsupported`.
    """

    service: str
    migrations: Path
    consumer: Callable[[], BatchConsumer] | None = None
    owned_tables: tuple[str, ...] = ()
    after_copy: Callable[[Connection], Awaitable[None]] | None = None
    switch_blocker: Callable[[Connection], Awaitable[str | None]] | None = None
    unsupported: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.source:
            object.__setattr__(self, "source", f"/lottrace/{self.service}")


@dataclass
class ReplayReport:
    service: str
    schema: str
    applied: int = 0
    seconds: float = 0.0
    switched: bool = False
    replaced_schema: str | None = None
    # Rows per table, live schema then rebuilt one, as the switch found them.
    table_rows: dict[str, tuple[int, int]] = field(default_factory=dict)


Progress = Callable[[str, int, int], None]  # (phase, records applied, records still to apply)


class Replay:
    def __init__(
        self,
        plan: ReplayPlan,
        database_url: str,
        kafka: KafkaSettings,
        *,
        batch_size: int = 2_000,
        on_progress: Progress | None = None,
    ) -> None:
        if plan.unsupported or plan.consumer is None:
            raise ReplayRefused(
                plan.unsupported or f"{plan.service} consumes no topic: nothing to rebuild"
            )
        self.plan = plan
        self.consumer = plan.consumer()
        self._url = database_url
        self._kafka = kafka
        self._batch_size = batch_size
        self._on_progress = on_progress or (lambda phase, done, left: None)

    # ------------------------------------------------------------------ the two steps

    async def build(self, *, restart: bool = False) -> ReplayReport:
        """Rebuild up to what the live projection has applied; the service keeps running."""
        started = time.monotonic()
        report = ReplayReport(self.plan.service, REPLAY_SCHEMA)
        async with self._session(restart=restart) as session:
            # The live service moves on meanwhile: chase it until a round finds little to do.
            while True:
                applied = await session.advance(await session.live_applied(), phase="build")
                report.applied += applied
                if applied < self._batch_size:
                    break
        report.seconds = time.monotonic() - started
        log.info("replay built", service=self.plan.service, applied=report.applied)
        return report

    async def switch(self) -> ReplayReport:
        """Finish the rebuild and make it the service's projection; the service is stopped."""
        started = time.monotonic()
        report = ReplayReport(self.plan.service, REPLAY_SCHEMA)
        async with self._session(restart=False) as session:
            # A replica starting meanwhile waits for this lock in its migration step, and then
            # finds the rebuilt schema in place.
            await session.admin.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
            await self._refuse_while_in_use(session.admin, session.live_name)
            report.applied += await session.advance(await session.live_applied(), phase="catch-up")
            await session.take_over_owned_state()
            report.table_rows = await session.table_rows()
            report.replaced_schema = await session.swap()
        report.switched = True
        report.seconds = time.monotonic() - started
        log.info(
            "replay switched",
            service=self.plan.service,
            replaced_schema=report.replaced_schema,
            applied=report.applied,
        )
        return report

    # ------------------------------------------------------------------ plumbing

    async def _refuse_while_in_use(self, connection: Connection, live_schema: str) -> None:
        others = await connection.fetch(
            """
            SELECT coalesce(nullif(application_name, ''), client_addr::text, 'local') AS who,
                   count(*) AS sessions
            FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend' AND application_name NOT LIKE $1
            GROUP BY 1 ORDER BY 1
            """,
            APPLICATION_NAME + "%",
        )
        if others:
            who = ", ".join(f"{row['who']} ({row['sessions']})" for row in others)
            raise ReplayRefused(
                f"stop {self.plan.service} before switching (scale it to 0): other sessions"
                f" are connected to its database: {who}"
            )
        if self.plan.switch_blocker is not None:
            async with connection.transaction():
                await connection.execute(
                    f"SET LOCAL search_path TO {quote_identifier(live_schema)}"
                )
                reason = await self.plan.switch_blocker(connection)
            if reason:
                raise ReplayRefused(f"not switching now: {reason}")

    @contextlib.asynccontextmanager
    async def _session(self, *, restart: bool) -> AsyncIterator[_Session]:
        admin = await asyncpg.connect(
            self._url, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            live = await self._prepare_schema(admin, restart=restart)
            database = Database(
                self._url,
                source=self.plan.source,
                min_size=1,
                max_size=2,
                schema=REPLAY_SCHEMA,
                application_name=f"{APPLICATION_NAME}-{self.plan.service}",
            )
            await database.open()
            reader = self._reader()
            await reader.start()
            try:
                session = _Session(self, admin, live, database, reader)
                await session.start()
                yield session
            finally:
                await reader.stop()
                await database.close()
        finally:
            await admin.close()

    async def _prepare_schema(self, admin: asyncpg.Connection, *, restart: bool) -> str:
        """The replay schema migrated, with its positions and steps; returns the live schema."""
        live = await admin.fetchval("SELECT current_schema()")
        if live is None or live == REPLAY_SCHEMA:
            raise ReplayRefused("the database has no live schema on its search_path")
        if restart:
            await admin.execute(f"DROP SCHEMA IF EXISTS {REPLAY_SCHEMA} CASCADE")
        await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {REPLAY_SCHEMA}")
        await migrate(
            self._url,
            [("runtime", RUNTIME_MIGRATIONS), (self.plan.service, self.plan.migrations)],
            search_path=REPLAY_SCHEMA,
        )
        await admin.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {REPLAY_SCHEMA}.replay_positions (
                topic       text    NOT NULL,
                partition   integer NOT NULL,
                next_offset bigint  NOT NULL,
                PRIMARY KEY (topic, partition)
            );
            CREATE TABLE IF NOT EXISTS {REPLAY_SCHEMA}.replay_state (
                step    text PRIMARY KEY,
                done_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        return str(live)

    def _reader(self) -> AIOKafkaConsumer:
        """A reader of the topics from their start, in no group, committing nothing."""
        return AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_size,
            **client_options(self._kafka),
        )


class _Session:
    def __init__(
        self,
        replay: Replay,
        admin: Connection,
        live_schema: str,
        database: Database,
        reader: AIOKafkaConsumer,
    ) -> None:
        self.replay = replay
        self.plan = replay.plan
        self.admin = admin
        self.live = quote_identifier(live_schema)
        self.live_name = live_schema
        self.database = database
        self.reader = reader
        self.partitions: list[TopicPartition] = []
        self.positions: Positions = {}

    async def start(self) -> None:
        topics = self.replay.consumer.topics
        known = await self.reader.topics()
        missing = sorted(set(topics) - known)
        if missing:
            raise ReplayRefused(f"topics not found on the broker: {', '.join(missing)}")
        for topic in topics:
            self.partitions += [
                TopicPartition(topic, partition)
                for partition in sorted(self.reader.partitions_for_topic(topic) or ())
            ]
        self.reader.assign(self.partitions)
        stored = {
            TopicPartition(row["topic"], row["partition"]): row["next_offset"]
            for row in await self.admin.fetch(
                f"SELECT topic, partition, next_offset FROM {REPLAY_SCHEMA}.replay_positions"
            )
        }
        beginnings = await self.reader.beginning_offsets(self.partitions)
        for tp in self.partitions:
            self.positions[tp] = max(stored.get(tp, 0), beginnings[tp])
            self.reader.seek(tp, self.positions[tp])

    async def live_applied(self) -> Positions:
        """Per partition, how far the live projection has applied the topic."""
        applied: Positions = dict.fromkeys(self.partitions, 0)
        for row in await self.admin.fetch(
            f"SELECT topic, partition, max(kafka_offset) + 1 AS next_offset"
            f" FROM {self.live}.inbox WHERE topic = ANY($1::text[]) GROUP BY topic, partition",
            self.replay.consumer.topics,
        ):
            tp = TopicPartition(row["topic"], row["partition"])
            if tp in applied:
                applied[tp] = row["next_offset"]
        committed = await self._committed()
        return {tp: max(applied[tp], committed.get(tp, 0)) for tp in applied}

    async def _committed(self) -> Positions:
        # A consumer with the group's id but assigned partitions never joins the group (nor,
        # with auto-commit off, commits): it only reads the group's offsets.
        group = AIOKafkaConsumer(
            group_id=self.replay.consumer.group_id,
            enable_auto_commit=False,
            **client_options(self.replay._kafka),
        )
        await group.start()
        try:
            group.assign(self.partitions)
            offsets = await asyncio.gather(*(group.committed(tp) for tp in self.partitions))
        finally:
            await group.stop()
        return {tp: offset for tp, offset in zip(self.partitions, offsets, strict=True) if offset}

    async def advance(self, targets: Positions, *, phase: str) -> int:
        """Apply the records from the current positions up to `targets` (exclusive), and
        discard the events they emit: the live service emitted them already."""
        applied = 0
        while True:
            behind = {tp: targets[tp] - self.positions[tp] for tp in self.partitions}
            left = sum(max(0, n) for n in behind.values())
            self.replay._on_progress(phase, applied, left)
            if left == 0:
                break
            wanted = [tp for tp in self.partitions if behind[tp] > 0]
            fetched = await self.reader.getmany(
                *wanted, timeout_ms=1_000, max_records=self.replay._batch_size
            )
            records: list[Record] = []
            moved: Positions = {}
            for tp in wanted:
                for record in fetched.get(tp, ()):
                    if record.offset >= targets[tp]:
                        break
                    records.append(record)
                    moved[tp] = record.offset + 1
                # Past the target, or offsets with no record (compaction, transaction markers).
                moved[tp] = min(max(moved.get(tp, 0), await self.reader.position(tp)), targets[tp])
            if records:
                await self._apply(records)
                applied += len(records)
            await self._save(moved)
        for tp in self.partitions:  # the next phase starts exactly at the target
            self.reader.seek(tp, self.positions[tp])
        return applied

    async def _apply(self, records: list[Record]) -> None:
        delay = 0.2
        while True:
            try:
                await self.replay.consumer.apply(self.database, records)
                break
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("replay batch will be retried", error=str(error), in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Emitted by the live service already (or dead-lettered by it).
        await self._empty_outbox()

    async def _empty_outbox(self) -> None:
        await self.admin.execute(f"DELETE FROM {REPLAY_SCHEMA}.outbox_pending")
        await self.admin.execute(f"DELETE FROM {REPLAY_SCHEMA}.outbox")

    async def _copy_outbox(self) -> None:
        """The live outbox as it is, ids included: what is still to publish stays so, and the
        published rows stay kept for a re-publish after a broker loss."""
        await self.admin.execute(
            f"""
            INSERT INTO {REPLAY_SCHEMA}.outbox (id, topic, key, value, headers, created_at)
            OVERRIDING SYSTEM VALUE
            SELECT id, topic, key, value, headers, created_at FROM {self.live}.outbox ORDER BY id
            """
        )
        await self.admin.execute(
            f"INSERT INTO {REPLAY_SCHEMA}.outbox_pending SELECT id FROM {self.live}.outbox_pending"
        )
        await self.admin.execute(
            f"""
            SELECT setval(pg_get_serial_sequence('{REPLAY_SCHEMA}.outbox', 'id'),
                          coalesce(max(id), 0) + 1, false)
            FROM {REPLAY_SCHEMA}.outbox
            """
        )

    async def _save(self, moved: Positions) -> None:
        changed = {tp: offset for tp, offset in moved.items() if offset > self.positions[tp]}
        if not changed:
            return
        await self.admin.execute(
            f"""
            INSERT INTO {REPLAY_SCHEMA}.replay_positions AS p (topic, partition, next_offset)
            SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
            """,
            [tp.topic for tp in changed],
            [tp.partition for tp in changed],
            list(changed.values()),
        )
        self.positions.update(changed)

    async def take_over_owned_state(self) -> None:
        """Copy the owned tables and the outbox from the live schema, once: the rows not yet
        published, and the published ones kept for a re-publish after a broker loss, as they
        are (a published row is not sent again)."""
        async with self.admin.transaction():
            done = await self.admin.fetchval(
                f"SELECT true FROM {REPLAY_SCHEMA}.replay_state WHERE step = 'owned state copied'"
            )
            if done:
                return
            await self._empty_outbox()
            for table in self.plan.owned_tables:
                columns = await self._shared_columns(table)
                # An owned table a topic also feeds (recall's lot movements, kept longer
                # than the topic) already holds what the rebuild read: keep that row.
                await self.admin.execute(
                    f"INSERT INTO {REPLAY_SCHEMA}.{table} ({columns}) OVERRIDING SYSTEM VALUE"
                    f" SELECT {columns} FROM {self.live}.{table} ON CONFLICT DO NOTHING"
                )
            await self._copy_outbox()
            if self.plan.after_copy is not None:
                await self.admin.execute(f"SET LOCAL search_path TO {REPLAY_SCHEMA}")
                await self.plan.after_copy(self.admin)
            await self.admin.execute(
                f"INSERT INTO {REPLAY_SCHEMA}.replay_state (step) VALUES ('owned state copied')"
            )

    async def _shared_columns(self, table: str) -> str:
        # The live schema may be a migration behind the rebuilt one: copy what both have.
        names = await self.admin.fetch(
            """
            SELECT r.column_name FROM information_schema.columns r
            JOIN information_schema.columns l
              ON l.table_schema = $2 AND l.table_name = r.table_name
             AND l.column_name = r.column_name
            WHERE r.table_schema = $1 AND r.table_name = $3
            ORDER BY r.ordinal_position
            """,
            REPLAY_SCHEMA,
            self.live_name,
            table,
        )
        if not names:
            raise ReplayRefused(f"table {table} is missing from the live or the rebuilt schema")
        return ", ".join(quote_identifier(row["column_name"]) for row in names)

    async def table_rows(self) -> dict[str, tuple[int, int]]:
        tables = await self.admin.fetch(
            """
            SELECT table_name FROM information_schema.tables
            WHERE table_schema = $1 AND table_type = 'BASE TABLE'
              AND table_name NOT IN ('replay_positions', 'replay_state')
            ORDER BY table_name
            """,
            REPLAY_SCHEMA,
        )
        counts: dict[str, tuple[int, int]] = {}
        for row in tables:
            table = quote_identifier(row["table_name"])
            live = await self.admin.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"{self.live}.{table}"
            )
            old = (
                await self.admin.fetchval(f"SELECT count(*) FROM {self.live}.{table}")
                if live
                else 0
            )
            new = await self.admin.fetchval(f"SELECT count(*) FROM {REPLAY_SCHEMA}.{table}")
            counts[row["table_name"]] = (old, new)
        return counts

    async def swap(self) -> str:
        replaced = REPLACED_PREFIX + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        async with self.admin.transaction():
            await self.admin.execute(
                f"""
                DROP TABLE {REPLAY_SCHEMA}.replay_positions, {REPLAY_SCHEMA}.replay_state;
                ALTER SCHEMA {self.live} RENAME TO {quote_identifier(replaced)};
                ALTER SCHEMA {REPLAY_SCHEMA} RENAME TO {self.live};
                """
            )
        return replaced
