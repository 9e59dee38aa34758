-- Moves between inventory's locations and returns to the supplier (`lot-moved`, a lottrace
-- addition beyond the v1.1 contract), for the lot's records: EPCIS, FSMA 204 and its history.
-- Once per movement_id: a re-sent movement changes nothing.
CREATE TABLE lot_movements (
    movement_id   text PRIMARY KEY,
    lot_id        uuid        NOT NULL,
    lot_code      text        NOT NULL,
    sku           text        NOT NULL,
    gtin          text,
    kind          text        NOT NULL,
    quantity      numeric     NOT NULL,
    uom           text        NOT NULL,
    from_location text        NOT NULL,
    to_location   text,
    supplier_id   text,
    rma           text,
    reason        text,
    actor         text,
    moved_at      timestamptz NOT NULL,
    event_id      text        NOT NULL
);
CREATE INDEX lot_movements_lot ON lot_movements (lot_id, moved_at);
CREATE INDEX lot_movements_time ON lot_movements (moved_at);
