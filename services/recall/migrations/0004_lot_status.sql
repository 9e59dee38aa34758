-- Each lot's status as inventory last reported it (lot-status-changed), for the recall views.
ALTER TABLE lots
    ADD COLUMN status            text,
    ADD COLUMN status_changed_at timestamptz;
