-- Published outbox rows are kept for a retention window (OUTBOX_RETENTION_SECONDS) instead of
-- being deleted at once: when the broker loses its log (the embedded broker keeps it only in
-- memory), the relay re-publishes them. published_at NULL means not yet published.
ALTER TABLE outbox ADD COLUMN published_at timestamptz;

-- The relay's next rows, in id order: only the unpublished ones are indexed.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
-- The purge deletes the oldest published rows in batches by this index.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Where the broker acknowledged the last record the relay published, and its CloudEvents id:
-- the relay reads that one record back to tell whether the broker still holds its log.
-- One row at most.
CREATE TABLE outbox_anchor (
    singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    kafka_offset bigint      NOT NULL,
    event_id     text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- Rows the broker refuses for good (too large): set aside so the relay goes on, kept for a
-- person to inspect.
CREATE TABLE outbox_rejected (
    id          bigint      PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL
);
