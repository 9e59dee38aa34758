-- Lots as receiving knows them: identity, dates, supplier, cost, and how much was received
-- and consumed by production.
CREATE TABLE lots (
    lot_id            uuid PRIMARY KEY,
    sku               text        NOT NULL,
    lot_code          text        NOT NULL,
    gtin              text,
    uom               text        NOT NULL,
    supplier_id       text,
    supplier_name     text,
    supplier_lot_code text,
    production_date   date,
    expiry_date       date,
    best_before_date  date,
    unit_cost         numeric,
    currency          text,
    received_quantity numeric     NOT NULL DEFAULT 0 CHECK (received_quantity >= 0),
    consumed_quantity numeric     NOT NULL DEFAULT 0 CHECK (consumed_quantity >= 0),
    first_received_at timestamptz NOT NULL,
    last_received_at  timestamptz NOT NULL,
    UNIQUE (sku, lot_code),
    CHECK (consumed_quantity <= received_quantity)
);
CREATE INDEX lots_lot_code ON lots (lot_code);

-- One row per receipt; the stored answer makes a retried receipt return the first answer.
CREATE TABLE receipts (
    receipt_id      text PRIMARY KEY,
    idempotency_key text UNIQUE,
    request_hash    text        NOT NULL,
    lot_id          uuid        NOT NULL REFERENCES lots (lot_id),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    uom             text        NOT NULL,
    location        text        NOT NULL,
    purchase_order  text,
    received_at     timestamptz NOT NULL,
    response        jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipts_lot_id ON receipts (lot_id);

-- Genealogy: the lots a receipt consumed to make its lot.
CREATE TABLE receipt_inputs (
    receipt_id   text    NOT NULL REFERENCES receipts (receipt_id),
    input_lot_id uuid    NOT NULL REFERENCES lots (lot_id),
    quantity     numeric NOT NULL CHECK (quantity > 0),
    uom          text    NOT NULL,
    PRIMARY KEY (receipt_id, input_lot_id)
);
CREATE INDEX receipt_inputs_input ON receipt_inputs (input_lot_id);

-- Lot code sequences per SKU and day: the row lock serialises concurrent receipts, and a
-- rolled-back receipt rolls its number back, so there are no gaps and no duplicates.
CREATE TABLE lot_code_sequences (
    sku      text    NOT NULL,
    day      date    NOT NULL,
    last_seq integer NOT NULL,
    PRIMARY KEY (sku, day)
);
