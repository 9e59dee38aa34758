-- A probe projection for testing the shared runtime: one row per applied event.
CREATE TABLE applied (
    event_id   text    NOT NULL,
    order_id   text    NOT NULL,
    quantity   numeric NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
