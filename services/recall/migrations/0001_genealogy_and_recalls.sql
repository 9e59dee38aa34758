-- Lots with their origin, as goods-received tells it (or, until then, as a shipment names them).
CREATE TABLE lots (
    lot_id            uuid PRIMARY KEY,
    lot_code          text        NOT NULL,
    sku               text        NOT NULL,
    gtin              text,
    uom               text,
    supplier_id       text,
    supplier_name     text,
    supplier_lot_code text,
    purchase_order    text,
    location          text,
    production_date   date,
    expiry_date       date,
    best_before_date  date,
    first_received_at timestamptz,
    received_quantity numeric     NOT NULL DEFAULT 0,
    received          boolean     NOT NULL DEFAULT false
);
CREATE INDEX lots_code ON lots (lot_code, sku);
CREATE INDEX lots_sku ON lots (sku, first_received_at);
CREATE INDEX lots_supplier ON lots (supplier_id, first_received_at);

-- Receipts: the receiving and transformation events of the traceability records.
CREATE TABLE receipts (
    receipt_id     text PRIMARY KEY,
    lot_id         uuid        NOT NULL,
    quantity       numeric     NOT NULL,
    uom            text        NOT NULL,
    received_at    timestamptz NOT NULL,
    location       text,
    purchase_order text,
    supplier_id    text,
    supplier_name  text,
    event_id       text        NOT NULL
);
CREATE INDEX receipts_lot ON receipts (lot_id);
CREATE INDEX receipts_received_at ON receipts (received_at);

-- Genealogy: input lot -> produced lot, any depth.
CREATE TABLE lot_inputs (
    receipt_id     text    NOT NULL,
    lot_id         uuid    NOT NULL,
    input_lot_id   uuid    NOT NULL,
    input_lot_code text    NOT NULL,
    input_sku      text    NOT NULL,
    quantity       numeric NOT NULL,
    uom            text    NOT NULL,
    PRIMARY KEY (receipt_id, input_lot_id)
);
CREATE INDEX lot_inputs_input ON lot_inputs (input_lot_id);
CREATE INDEX lot_inputs_output ON lot_inputs (lot_id);

CREATE TABLE customers (
    customer_id text PRIMARY KEY,
    name        text,
    email       text,
    phone       text,
    address     jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Who received which lot. `seq` orders arrival: a recall's notices cover the lines up to its
-- watermark; later lines of its lots are late shipments.
CREATE TABLE shipment_lines (
    shipment_id text        NOT NULL,
    line_no     integer     NOT NULL,
    lot_id      uuid        NOT NULL,
    order_id    text        NOT NULL,
    customer_id text        NOT NULL,
    sku         text        NOT NULL,
    lot_code    text        NOT NULL,
    quantity    numeric     NOT NULL,
    uom         text        NOT NULL,
    shipped_at  timestamptz NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (shipment_id, line_no, lot_id)
);
-- Who received a lot: covering, so a recall counts its customers and quantity from the index.
CREATE INDEX shipment_lines_lot ON shipment_lines (lot_id, customer_id) INCLUDE (quantity, seq);
CREATE INDEX shipment_lines_order ON shipment_lines (order_id);
CREATE INDEX shipment_lines_shipped_at ON shipment_lines (shipped_at);

CREATE TABLE recalls (
    recall_id               text PRIMARY KEY,
    issued_at               timestamptz NOT NULL,
    reason                  text        NOT NULL,
    classification          text        NOT NULL,
    scope                   jsonb       NOT NULL,
    status                  text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    requested_by            text        NOT NULL,
    shipment_watermark      bigint      NOT NULL,
    affected_customer_count integer     NOT NULL,
    shipped_quantity        numeric     NOT NULL,
    notices_done_at         timestamptz,
    closed_at               timestamptz,
    closed_by               text,
    close_note              text
);

CREATE TABLE recall_lots (
    recall_id  text NOT NULL REFERENCES recalls (recall_id),
    lot_id     uuid NOT NULL,
    lot_code   text NOT NULL,
    sku        text NOT NULL,
    supplier_id text,
    via_lot_id uuid,
    PRIMARY KEY (recall_id, lot_id)
);
CREATE INDEX recall_lots_lot ON recall_lots (lot_id);

-- The affected customers of a recall, in chunks of consecutive customer ids, fixed when the
-- recall is issued. A chunk's notices are written in one transaction that marks it notified,
-- so a crash leaves it to do again; replicas take different chunks (SKIP LOCKED).
CREATE TABLE recall_chunks (
    recall_id      text        NOT NULL REFERENCES recalls (recall_id),
    chunk          integer     NOT NULL,
    first_customer text        NOT NULL,
    last_customer  text        NOT NULL,
    customers      integer     NOT NULL,
    notified_at    timestamptz,
    PRIMARY KEY (recall_id, chunk)
);

-- Every notice emitted (regular or late), for the recall's status and audit.
CREATE TABLE recall_notices (
    recall_id   text        NOT NULL,
    customer_id text        NOT NULL,
    event_id    text        NOT NULL,
    late        boolean     NOT NULL,
    shipments   integer     NOT NULL,
    part        integer     NOT NULL,
    parts       integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recall_id, customer_id, event_id)
);
