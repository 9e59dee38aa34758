-- Notices that could not be sent (too large for the message limit even split, one shipment
-- at a time): dead-lettered, shown on the recall, and never blocking the other customers.
CREATE TABLE recall_notice_failures (
    recall_id   text        NOT NULL REFERENCES recalls (recall_id),
    customer_id text        NOT NULL,
    late        boolean     NOT NULL,
    shipments   integer     NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recall_id, customer_id, late, created_at)
);
