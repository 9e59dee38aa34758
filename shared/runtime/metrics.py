"""Prometheus metrics shared by the runtime of every service (one process, one service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "lottrace_events_consumed_total",
    "Events read from Kafka, by topic and outcome (processed, duplicate, ignored, dead_lettered).",
    ["topic", "outcome"],
)
BATCH_SIZE = Histogram(
    "lottrace_consumer_batch_size",
    "Records per consumed batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
BATCH_SECONDS = Histogram(
    "lottrace_consumer_batch_seconds",
    "Time to apply one batch: parse, database transaction, offset commit.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HANDLER_SECONDS = Histogram(
    "lottrace_handler_seconds",
    "Time spent in the handler of one event type, per batch.",
    ["event_type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_RETRIES = Counter(
    "lottrace_consumer_retries_total",
    "Batches retried after a transient failure (database or broker unavailable).",
)
DEAD_LETTERED = Counter(
    "lottrace_dead_lettered_total",
    "Records sent to a dead-letter topic, by source topic and error type.",
    ["topic", "error_type"],
)
OUTBOX_PUBLISHED = Counter(
    "lottrace_outbox_published_total",
    "Events published from the transactional outbox, by topic.",
    ["topic"],
)
OUTBOX_BACKLOG = Gauge(
    "lottrace_outbox_backlog",
    "Outbox rows committed and not yet published (as last seen by the relay).",
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "lottrace_outbox_oldest_unsent_seconds",
    "Age of the oldest unpublished outbox row (as last seen by the relay).",
)
READY = Gauge("lottrace_ready", "1 when the database and the broker are reachable.")
