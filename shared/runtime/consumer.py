"""The batch consumer: Kafka records in, one database transaction per batch, offsets out.

For each batch:
1. every record is parsed into a typed event of its topic, or rejected with a reason, except
   those of a type its topic allows but the service does not handle: skipped by that type
   alone, nothing but their size checked;
2. in ONE transaction: the inbox claims each event by (source, id) (a duplicate is skipped),
   the service's handlers apply the new events set-based, and rejected records become
   dead-letter rows in the outbox;
3. only after that commit are offsets committed, per partition, as `last offset + 1`.

A transient failure (database or network) retries the same batch with backoff and never
commits its offsets. Any other failure isolates the batch: each event is applied alone, and
the one that still fails goes to `<topic>.dlq` with the reason, so the partition moves on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy

from shared.contracts.envelope import Incoming, OutgoingMessage, Rejected, TopicDecoder
from shared.contracts.events import Event
from shared.contracts.topics import TOPICS_BY_NAME, dead_letter_topic
from shared.runtime import metrics
from shared.runtime.database import Database, UnitOfWork, is_transient
from shared.runtime.logging import get_logger

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

    from shared.runtime.settings import ServiceSettings

log = get_logger(__name__)

EventHandler = Callable[[UnitOfWork, list[Incoming[Any]]], Awaitable[None]]
Record: TypeAlias = ConsumerRecord[bytes, bytes]

TRUNCATED_HEADER = "value_truncated_from"  # on a dead letter whose value was cut to fit
DLQ_HEADERS = (
    "error_type",
    "error_message",
    "source_topic",
    "source_partition",
    "source_offset",
    "consumer_group",
)


DEAD_LETTER_VALUE_LIMIT = 800 * 1024


class EventRejected(Exception):
    """Raised by a handler when one event breaks a rule: the event goes to the DLQ."""

    def __init__(self, message: str, *, error_type: str = "rejected") -> None:
        super().__init__(message)
        self.error_type = error_type


def why_headers(error_type: str, error_message: str) -> list[tuple[str, bytes]]:
    """The headers every dead letter carries to say why it was refused."""
    return [
        ("error_type", error_type.encode()),
        ("error_message", error_message[:2000].encode()),
    ]


def dead_letter(
    record: Record, error_type: str, error_message: str, *, consumer_group: str
) -> OutgoingMessage:
    """The DLQ copy of a record: same key, value and headers, plus why, where from, and which
    consumer refused it (each consumer group of a topic dead-letters on its own)."""
    kept = [(name, raw) for name, raw in record.headers if name not in DLQ_HEADERS]
    value: bytes = record.value or b""
    if len(value) > DEAD_LETTER_VALUE_LIMIT:
        # Too large to publish again: keep the head, and say how long the original was.
        kept.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[:DEAD_LETTER_VALUE_LIMIT]
    return OutgoingMessage(
        topic=dead_letter_topic(record.topic),
        key=record.key,
        value=value,
        headers=[
            *kept,
            *why_headers(error_type, error_message),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("consumer_group", consumer_group.encode()),
        ],
    )


@dataclass
class _Candidate:
    record: Record
    event: Incoming[Any] | None = None
    rejection: Rejected | None = None

    @property
    def inbox_key(self) -> tuple[str, str]:
        if self.event is not None:
            return (self.event.source, self.event.id)
        # A record without a usable id is known by where it sits in the log.
        record = self.record
        return (f"kafka:{record.topic}/{record.partition}", f"{record.offset}@{record.timestamp}")

    @property
    def event_type(self) -> str:
        return self.event.type if self.event is not None else "invalid"


# The outcomes the "batch applied" log line counts: its field name, the outcome counted.
LOGGED_OUTCOMES = {
    "processed": "processed",
    "duplicates": "duplicate",
    "ignored": "ignored",
    "dead_lettered": "dead_lettered",
}


@dataclass
class Tally:
    """What one transaction did with its events; counted in the metrics only once it commits,
    so a retried or isolated batch is not counted twice."""

    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, outcome)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, error)

    def count(self, topic: str, outcome: str, events: int = 1) -> None:
        self.events[(topic, outcome)] += events

    def add(self, other: Tally) -> None:
        self.events.update(other.events)
        self.dead_letters.update(other.dead_letters)

    def of(self, outcome: str) -> int:
        return sum(n for (_, counted), n in self.events.items() if counted == outcome)

    def logged(self) -> dict[str, int]:
        """The events of each outcome, under the names the batch log line gives them."""
        return {field: self.of(outcome) for field, outcome in LOGGED_OUTCOMES.items()}

    def publish(self) -> None:
        for (topic, outcome), events in self.events.items():
            metrics.EVENTS_CONSUMED.labels(topic, outcome).inc(events)
        for (topic, error_type), events in self.dead_letters.items():
            metrics.DEAD_LETTERED.labels(topic, error_type).inc(events)


@dataclass(frozen=True)
class Fetched:
    """One fetched batch as the subscriber hands it over: its records and their consumer."""

    records: Sequence[Record]
    consumer: AIOKafkaConsumer


@dataclass
class BatchOutcome:
    tally: Tally = field(default_factory=Tally)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


class BatchConsumer:
    """One consumer group reading a service's input topics, dispatching by event type.

    Handlers run in the order they are registered, each with every new event of its type in
    the batch, in log order. Event types a topic carries but the service does not handle are
    skipped, known by their type alone: a recall's 100,000 customer notices pass inventory and
    fulfillment unvalidated, as they are not theirs to judge. Types the topic's contract does
    not allow go to the DLQ.
    """

    def __init__(
        self,
        *,
        group_id: str,
        handlers: Sequence[tuple[type[Event], EventHandler]],
        max_value_bytes: int = 1_000_000,
    ) -> None:
        self.group_id = group_id
        self._handlers: dict[str, EventHandler] = {
            event.event_type: handler for event, handler in handlers
        }
        self.topics: list[str] = list(dict.fromkeys(event.topic for event, _ in handlers))
        self._decoders = {topic: TopicDecoder(TOPICS_BY_NAME[topic]) for topic in self.topics}
        self._unhandled = {
            topic: {event.event_type for event in TOPICS_BY_NAME[topic].events}
            - set(self._handlers)
            for topic in self.topics
        }
        self._max_value_bytes = max_value_bytes
        self._stopping = False
        self._commit_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ parsing

    def _not_handled(self, record: Record) -> bool:
        """Whether the record carries an event its topic allows but this service skips."""
        unhandled = self._unhandled[record.topic]
        if not unhandled or (record.value and len(record.value) > self._max_value_bytes):
            return False
        decoder = self._decoders[record.topic]
        return decoder.event_type(value=record.value, headers=record.headers) in unhandled

    def _candidate(self, record: Record) -> _Candidate:
        value: bytes | None = record.value
        if value is not None and len(value) > self._max_value_bytes:
            return _Candidate(
                record,
                rejection=Rejected(
                    "too_large", f"value of {len(value)} bytes exceeds {self._max_value_bytes}"
                ),
            )
        parsed = self._decoders[record.topic].decode(
            value=value,
            headers=record.headers,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
        )
        if isinstance(parsed, Rejected):
            return _Candidate(record, rejection=parsed)
        return _Candidate(record, event=parsed)

    # ------------------------------------------------------------------ applying

    async def apply(self, database: Database, records: Sequence[Record]) -> BatchOutcome:
        """Apply a batch once. Raises only for transient failures (the caller retries)."""
        outcome = BatchOutcome()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            outcome.offsets[tp] = max(outcome.offsets.get(tp, -1), record.offset + 1)

        skipped = Tally()
        candidates: list[_Candidate] = []
        seen: set[tuple[str, str]] = set()
        for record in records:
            if self._not_handled(record):
                skipped.count(record.topic, "ignored")
                continue
            candidate = self._candidate(record)
            if candidate.inbox_key in seen:
                skipped.count(record.topic, "duplicate")
                continue
            seen.add(candidate.inbox_key)
            candidates.append(candidate)
        outcome.tally.add(skipped)
        if not candidates:
            return outcome

        try:
            tally = Tally()
            async with database.transaction() as unit:
                fresh = await _claim(unit, candidates, tally)
                await self._apply_fresh(unit, fresh, tally)
            outcome.tally.add(tally)
        except Exception as error:
            if is_transient(error):
                raise
            log.warning(
                "batch failed, applying its events one by one",
                error=f"{type(error).__name__}: {error}",
                records=len(records),
            )
            await self._apply_isolated(database, candidates, outcome.tally)
        return outcome

    async def _apply_fresh(self, unit: UnitOfWork, fresh: list[_Candidate], tally: Tally) -> None:
        by_type: dict[str, list[Incoming[Any]]] = defaultdict(list)
        for candidate in fresh:
            if candidate.event is None:
                assert candidate.rejection is not None
                self._dead_letter(unit, candidate, candidate.rejection, tally)
            else:
                by_type[candidate.event.type].append(candidate.event)
        for event_type, handler in self._handlers.items():
            events = by_type.get(event_type)
            if events:
                started = time.perf_counter()
                await handler(unit, events)
                metrics.HANDLER_SECONDS.labels(event_type).observe(time.perf_counter() - started)
                tally.count(events[0].topic, "processed", len(events))

    async def _apply_isolated(
        self, database: Database, candidates: list[_Candidate], total: Tally
    ) -> None:
        order = {event_type: rank for rank, event_type in enumerate(self._handlers)}
        ordered = sorted(candidates, key=lambda c: order.get(c.event_type, -1))
        for candidate in ordered:
            try:
                tally = Tally()
                async with database.transaction() as unit:
                    await self._apply_fresh(unit, await _claim(unit, [candidate], tally), tally)
                total.add(tally)
            except Exception as error:
                if is_transient(error):
                    raise
                if isinstance(error, EventRejected):
                    rejection = Rejected(error.error_type, str(error))
                else:
                    log.exception("event failed alone; dead-lettering it", **_context(candidate))
                    rejection = Rejected("processing_failed", f"{type(error).__name__}: {error}")
                tally = Tally()
                async with database.transaction() as unit:
                    if await _claim(unit, [candidate], tally):
                        self._dead_letter(unit, candidate, rejection, tally)
                total.add(tally)

    def _dead_letter(
        self, unit: UnitOfWork, candidate: _Candidate, rejection: Rejected, tally: Tally
    ) -> None:
        record = candidate.record
        log.warning(
            "record dead-lettered",
            **_context(candidate),
            error_type=rejection.error_type,
            error_message=rejection.error_message[:300],
        )
        unit.emit_message(
            dead_letter(
                record,
                rejection.error_type,
                rejection.error_message,
                consumer_group=self.group_id,
            )
        )
        tally.count(record.topic, "dead_lettered")
        tally.dead_letters[(record.topic, rejection.error_type)] += 1

    # ------------------------------------------------------------------ Kafka wiring

    def subscribe(self, broker: KafkaBroker, database: Database, settings: ServiceSettings) -> None:
        """Register the FastStream batch subscriber: manual offsets, raw records."""
        kafka = settings.kafka

        async def fetched(message: KafkaMessage) -> Fetched:
            # The batch is parsed record by record, so one bad record is just one. What the
            # handler needs is the body: a `KafkaMessage` parameter is a context field, which
            # FastDepends solves on a worker thread for every batch. Not the message itself:
            # as its own body it would hold itself, and live until the cycle collector runs.
            return Fetched(
                cast("Sequence[Record]", message.raw_message),
                cast("AIOKafkaConsumer", message.consumer),
            )

        subscriber = broker.subscriber(
            *self.topics,
            group_id=self.group_id,
            batch=True,
            max_records=settings.consumer_max_records,
            batch_timeout_ms=settings.consumer_batch_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            max_poll_interval_ms=kafka.max_poll_interval_ms,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            fetch_min_bytes=kafka.fetch_min_bytes,
            decoder=fetched,
            title=f"{self.group_id}-consumer",
            description=f"{self.group_id} consumes {', '.join(self.topics)} in batches.",
        )

        @subscriber
        async def consume(batch: Any) -> None:  # a Fetched: FastDepends must not cast it
            await self.consume(database, batch.records, batch.consumer)

    async def consume(
        self, database: Database, records: Sequence[Record], consumer: AIOKafkaConsumer
    ) -> None:
        if not records:
            return
        started = time.perf_counter()
        delay = 0.2
        while True:
            try:
                outcome = await self.apply(database, records)
                self.last_error = None
                break
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                metrics.CONSUMER_RETRIES.inc()
                if self._stopping:
                    return  # not committed: whoever owns the partitions next reads it again
                log.warning("batch will be retried", error=self.last_error, in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # The offsets go to the broker while the next batch is fetched and applied: the
        # database commit is done, so the order that matters holds. Commits stay in order.
        self._commit_task = asyncio.create_task(
            self._commit(consumer, outcome.offsets, self._commit_task)
        )
        outcome.tally.publish()
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        log.debug(
            "batch applied",
            records=len(records),
            **outcome.tally.logged(),
        )

    async def _commit(
        self,
        consumer: AIOKafkaConsumer,
        offsets: dict[TopicPartition, int],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError) as error:
            # Partitions moved to another member: it re-reads them and the inbox skips
            # what was already applied.
            log.warning("offset commit failed", error=f"{type(error).__name__}: {error}")

    async def flush(self) -> None:
        """Wait for the offset commit under way, if any (at shutdown)."""
        if self._commit_task is not None:
            await asyncio.gather(self._commit_task, return_exceptions=True)

    def stop(self) -> None:
        self._stopping = True


async def _claim(
    unit: UnitOfWork, candidates: Sequence[_Candidate], tally: Tally
) -> list[_Candidate]:
    """Record the events in the inbox; returns those not seen before, in their order."""
    keys = [candidate.inbox_key for candidate in candidates]
    rows = await unit.connection.fetch(
        """
        INSERT INTO inbox (source, event_id, event_type, topic, partition, kafka_offset)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                             $6::bigint[])
        ON CONFLICT DO NOTHING
        RETURNING source, event_id
        """,
        [source for source, _ in keys],
        [event_id for _, event_id in keys],
        [candidate.event_type for candidate in candidates],
        [candidate.record.topic for candidate in candidates],
        [candidate.record.partition for candidate in candidates],
        [candidate.record.offset for candidate in candidates],
    )
    new = {(row["source"], row["event_id"]) for row in rows}
    fresh = [candidate for candidate in candidates if candidate.inbox_key in new]
    for candidate in candidates:
        if candidate.inbox_key not in new:
            tally.count(candidate.record.topic, "duplicate")
    return fresh


def _context(candidate: _Candidate) -> dict[str, Any]:
    record = candidate.record
    context: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    if candidate.event is not None:
        context.update(candidate.event.log_context())
    return context
