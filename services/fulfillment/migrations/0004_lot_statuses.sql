-- Each lot's latest status as inventory announced it on `lot-status-changed`. Kept apart from
-- `blocked_lots` (recalls): a recall blocks for good, a status may change back to available.
CREATE TABLE lot_statuses (
    lot_id     uuid PRIMARY KEY,
    lot_code   text        NOT NULL,
    status     text        NOT NULL,
    changed_at timestamptz NOT NULL
);
