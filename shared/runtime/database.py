"""PostgreSQL access: the connection pool, the unit of work (projection change + outbox rows
in one transaction), and what counts as a transient failure worth retrying."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import Event
from shared.errors import Unavailable
from shared.runtime.settings import ExportLimits
from shared.runtime.tracing import trace_headers

T = TypeVar("T")
R = TypeVar("R")
Record = asyncpg.Record
# What a pool hands out is a proxy of a connection; both answer the same queries.
if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[Record] | PoolConnectionProxy[Record]
else:
    Connection = asyncpg.Connection

OUTBOX_CHANNEL = "lottrace_outbox"
# The contract's ceiling for any message; a cluster with a smaller `max.message.bytes` lowers
# it through KAFKA_MAX_MESSAGE_BYTES.
MAX_MESSAGE_BYTES = 900 * 1024


class OversizedMessage(ValueError):
    """An event too large for the message limit: split it before emitting."""


_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")  # connection, rollback, resources, operator


def is_transient(error: BaseException) -> bool:
    """True for failures that may succeed on retry: the database or network, not the data."""
    if isinstance(error, (OSError, ConnectionError, asyncio.TimeoutError)):
        return True
    if isinstance(error, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)):
        return True
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = getattr(error, "sqlstate", None) or ""
        return sqlstate.startswith(_TRANSIENT_SQLSTATE_CLASSES)
    return False


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns(rows: Sequence[Any], kind: type[Any]) -> list[list[Any]]:
    """The column arrays `unnest` takes for rows of the dataclass `kind`: one list per field, in
    field order, so a new field cannot be left out of one array."""
    return [[getattr(row, field.name) for row in rows] for field in fields(kind)]


def rows_as(records: Iterable[Record], kind: Callable[..., R]) -> list[R]:
    """Query rows as `kind`, a dataclass whose fields the query selects by name: the one way
    a row becomes a record (a column the record does not declare is refused, not dropped)."""
    return [kind(**dict(record)) for record in records]


def row_as(record: Record | None, kind: Callable[..., R]) -> R | None:
    """One query row as `kind`, or None when there is none."""
    return None if record is None else kind(**dict(record))


def _headers_json(headers: Sequence[tuple[str, bytes]]) -> str:
    # latin-1 maps every byte to one code point, so arbitrary header bytes survive jsonb.
    return json.dumps([[name, raw.decode("latin-1")] for name, raw in headers])


def headers_from_json(stored: str | list[list[str]]) -> list[tuple[str, bytes]]:
    return _header_pairs(json.loads(stored) if isinstance(stored, str) else stored)


def headers_of_rows(stored: Sequence[str]) -> list[list[tuple[str, bytes]]]:
    """`headers_from_json` of many rows, parsed as one document instead of a parse a row."""
    rows: list[list[list[str]]] = json.loads("[" + ",".join(stored) + "]")
    return [_header_pairs(pairs) for pairs in rows]


def _header_pairs(pairs: list[list[str]]) -> list[tuple[str, bytes]]:
    return [(name, value.encode("latin-1")) for name, value in pairs]


def _with_trace(message: OutgoingMessage, context: list[tuple[str, bytes]]) -> OutgoingMessage:
    if any(name == "traceparent" for name, _ in message.headers):
        return message  # a dead letter keeps the trace of the record it carries
    return replace(message, headers=[*message.headers, *context])


class UnitOfWork:
    """One database transaction; events emitted in it reach the outbox in the same commit."""

    def __init__(
        self, connection: Connection, *, source: str, max_message_bytes: int = MAX_MESSAGE_BYTES
    ) -> None:
        self.connection = connection
        self.source = source
        self.max_message_bytes = max_message_bytes
        self._outgoing: list[OutgoingMessage] = []
        self._written_in_sql = False

    def emit(
        self, event: Event, *, event_id: str | None = None, time: datetime | None = None
    ) -> str:
        """Queue an event for the outbox; returns its CloudEvents id."""
        message = encode(event, source=self.source, event_id=event_id, time=time)
        self.emit_message(message)
        return dict(message.headers)["ce_id"].decode()

    def emit_message(self, message: OutgoingMessage) -> None:
        """Queue a message for the outbox, refusing one the broker would refuse: the whole unit
        of work fails with a clear error rather than leaving a row the relay cannot send."""
        if message.size > self.max_message_bytes:
            raise OversizedMessage(
                f"{message.topic} message of {message.size} bytes exceeds the"
                f" {self.max_message_bytes}-byte limit (KAFKA_MAX_MESSAGE_BYTES)"
            )
        self._outgoing.append(message)

    @property
    def pending(self) -> int:
        return len(self._outgoing)

    def outbox_written_in_sql(self) -> None:
        """A statement of this unit wrote outbox rows itself: wake the relay at commit."""
        self._written_in_sql = True

    async def flush_outbox(self) -> None:
        if not self._outgoing:
            if self._written_in_sql:
                await self.connection.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
            return
        messages, self._outgoing = self._outgoing, []
        context = trace_headers()
        if context:
            messages = [_with_trace(m, context) for m in messages]
        # One round trip: the rows, and the notification the relay wakes on at commit.
        await self.connection.execute(
            """
            WITH written AS (
                INSERT INTO outbox (topic, key, value, headers)
                SELECT topic, key, value, headers::jsonb
                FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[])
                    AS m(topic, key, value, headers)
                RETURNING id
            ), pending AS (
                INSERT INTO outbox_pending SELECT id FROM written
            )
            SELECT pg_notify($5, '') FROM (SELECT count(*) FROM written) AS done
            """,
            [m.topic for m in messages],
            [m.key for m in messages],
            [m.value for m in messages],
            [_headers_json(m.headers) for m in messages],
            OUTBOX_CHANNEL,
        )


async def _init_connection(connection: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _session_kept(connection: Connection) -> None:
    """What the pool runs when a connection comes back, after asyncpg has rolled back any
    open transaction: nothing. asyncpg's default sends `pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`: a round trip per consumer batch and per HTTP request, to undo
    session state that pooled connections never take. Their locks and settings are
    transaction-scoped (`_xact_` locks, `SET LOCAL`); the relay, the migrations and replay,
    which LISTEN or hold session locks, use connections of their own. Keep it so."""


class Database:
    """A pool over one service's database."""

    def __init__(
        self,
        url: str,
        *,
        source: str,
        min_size: int = 2,
        max_size: int = 10,
        statement_timeout_ms: int = 30_000,
        schema: str | None = None,
        application_name: str | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        exports: ExportLimits | None = None,
    ) -> None:
        self.url = url
        self.source = source
        self.max_message_bytes = max_message_bytes
        self.schema = schema
        self._application_name = application_name or source.strip("/").replace("/", "-")
        self._min_size = min_size
        self._max_size = max_size
        self._statement_timeout_ms = statement_timeout_ms
        self._pool: asyncpg.Pool | None = None
        self.exports = exports or ExportLimits()
        self._export_slots = asyncio.Semaphore(self.exports.slots)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database pool is not open")
        return self._pool

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url,
            init=_init_connection,
            reset=_session_kept,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=10,
            command_timeout=self._statement_timeout_ms / 1000 + 5,
            server_settings={
                "statement_timeout": str(self._statement_timeout_ms),
                # Plan each batch statement for its own arrays: a generic plan made while a
                # table was small (a sequential scan) would stay as the table grows.
                "plan_cache_mode": "force_custom_plan",
                "application_name": self._application_name[:60],
                # Another schema than the default: a projection being rebuilt (replay).
                **({"search_path": quote_identifier(self.schema)} if self.schema else {}),
            },
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.wait_for(pool.close(), timeout=10)

    async def __aenter__(self) -> Self:
        """`async with Database(...) as database:` opens the pool and closes it after."""
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def ping(self, timeout: float = 2.0) -> bool:
        if self._pool is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._pool.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work: its changes and its outbox rows commit together or not at all."""
        async with self.pool.acquire() as connection, connection.transaction():
            unit = UnitOfWork(
                connection, source=self.source, max_message_bytes=self.max_message_bytes
            )
            yield unit
            await unit.flush_outbox()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Connection]:
        """A connection whose reads all see the database at one moment and write nothing: a
        report's queries agree with each other."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield connection

    @asynccontextmanager
    async def export_snapshot(self) -> AsyncIterator[Connection]:
        """`snapshot` for an export sent as it is read, which holds it as long as its client
        downloads: it takes one of a few slots first, so that however many downloads run, the
        consumers and the API keep connections of the pool. None free within `wait_seconds`
        is a refusal to retry (`exports_busy`)."""
        try:
            async with asyncio.timeout(self.exports.wait_seconds):
                await self._export_slots.acquire()
        except TimeoutError:
            raise Unavailable(
                "exports_busy",
                f"{self.exports.slots} exports are being downloaded already; retry shortly",
            ) from None
        try:
            async with self.snapshot() as connection:
                yield connection
        finally:
            self._export_slots.release()

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]], *, attempts: int = 4) -> T:
        """Run `work` in a unit of work, again when the database rolled it back for a deadlock
        or a serialization conflict (another transaction touched the same rows)."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction() as unit:
                    return await work(unit)
            except asyncpg.exceptions.TransactionRollbackError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        return await self.pool.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        return await self.pool.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(query, *args)
