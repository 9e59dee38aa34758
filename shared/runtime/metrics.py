"""Prometheus metrics shared by the runtime of every service (one process, one service).

Names are a contract with the dashboard and the alert rules in deploy/observability/: each is
documented in docs/observability.md, and tests/unit/test_observability.py checks that every
query there names a metric defined here.
"""

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
OUTBOX_REPUBLISHED = Counter(
    "lottrace_outbox_republished_total",
    "Retained outbox rows queued again because the broker lost the log they were published"
    " to (0 unless the broker forgets: the embedded one keeps its log in memory only).",
)
OUTBOX_REJECTED = Counter(
    "lottrace_outbox_rejected_total",
    "Outbox rows the broker refuses for good (too large), set aside in outbox_rejected.",
    ["topic"],
)
OUTBOX_BACKLOG = Gauge(
    "lottrace_outbox_backlog",
    "Outbox rows committed and not yet published, sampled every METRICS_SAMPLE_SECONDS.",
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "lottrace_outbox_oldest_unsent_seconds",
    "Age in seconds of the oldest unpublished outbox row (0 when there is none), sampled every"
    " METRICS_SAMPLE_SECONDS.",
)
READY = Gauge("lottrace_ready", "1 when the database and the broker are reachable.")

# Buckets from 1 ms (a lookup by key) to 10 s (a large report): the API's range.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HTTP_REQUESTS = Counter(
    "lottrace_http_requests_total",
    "HTTP requests answered, by method, route template (`unmatched` when no route matched)"
    " and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "lottrace_http_request_seconds",
    "Time from receiving an HTTP request to sending the last byte of its response, by method"
    " and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "lottrace_consumer_lag",
    "Records not yet consumed (end offset minus committed offset) of the partitions this"
    " replica is assigned, summed per topic: summed over replicas it is the group's lag.",
    ["topic"],
)
SAMPLE_ERRORS = Counter(
    "lottrace_metrics_sample_errors_total",
    "Periodic samples (consumer lag, outbox backlog) that failed or timed out; the gauge"
    " keeps its last value meanwhile.",
    ["sampler"],
)

RECALL_NOTICES_UNDELIVERABLE = Counter(
    "lottrace_recall_notices_undeliverable_total",
    "Customer notices that could not be sent (over the message limit even when split) and were"
    " dead-lettered to recall-issued.dlq; the recall lists the customers waiting.",
)

DATA_QUALITY_FINDINGS = Gauge(
    "lottrace_data_quality_findings",
    "Lots with each data-quality finding (recall's monitor, docs/reports.md), by finding, as"
    " of the latest stored check (one replica checks every RECALL_DATA_QUALITY_CHECK_SECONDS).",
    ["finding"],
)
