-- Orders as fulfillment ships them. An allocation or a cancellation may arrive before the
-- order itself: the row then waits (customer NULL) for the order to complete it.
CREATE TABLE orders (
    order_id            text PRIMARY KEY,
    customer_id         text,
    customer            jsonb,
    placed_at           timestamptz,
    status              text        NOT NULL DEFAULT 'open'
                        CHECK (status IN ('open', 'cancelled', 'shipped')),
    allocation_revision integer     NOT NULL DEFAULT 0,
    allocated_at        timestamptz,
    cancel_reason       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Hot tables carry no foreign keys: a key check is a query per row, and these rows are written
-- by thousands a second. The one writer of this projection (the fulfillment service) writes a
-- parent before or with its children, in one transaction; `make chaos` checks the result.
CREATE TABLE order_lines (
    order_id text    NOT NULL,                      -- orders
    line_no  integer NOT NULL,
    sku      text    NOT NULL,
    uom      text    NOT NULL,
    ordered  numeric NOT NULL CHECK (ordered > 0),
    shipped  numeric NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    PRIMARY KEY (order_id, line_no),
    CHECK (shipped <= ordered)
);

-- The latest allocation inventory published for each order, less what shipped since.
CREATE TABLE allocations (
    order_id    text    NOT NULL,                   -- orders
    line_no     integer NOT NULL,
    lot_id      uuid    NOT NULL,
    lot_code    text    NOT NULL,
    sku         text    NOT NULL,
    quantity    numeric NOT NULL CHECK (quantity > 0),
    uom         text    NOT NULL,
    expiry_date date,
    location    text,
    PRIMARY KEY (order_id, line_no, lot_id)
);
CREATE INDEX allocations_lot ON allocations (lot_id);

CREATE TABLE backorders (
    order_id text    NOT NULL,                      -- orders
    line_no  integer NOT NULL,
    sku      text    NOT NULL,
    quantity numeric NOT NULL,
    uom      text    NOT NULL,
    reason   text    NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Lots that must not ship: recalled.
CREATE TABLE blocked_lots (
    lot_id     uuid PRIMARY KEY,
    lot_code   text,
    reason     text        NOT NULL,
    recall_id  text,
    blocked_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
    shipment_id text PRIMARY KEY,
    order_id    text        NOT NULL,               -- orders
    shipped_at  timestamptz NOT NULL,
    shipped_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_order ON shipments (order_id);

CREATE TABLE shipment_lines (
    shipment_id text    NOT NULL,                   -- shipments
    line_no     integer NOT NULL,
    lot_id      uuid    NOT NULL,
    lot_code    text    NOT NULL,
    sku         text    NOT NULL,
    quantity    numeric NOT NULL CHECK (quantity > 0),
    uom         text    NOT NULL,
    PRIMARY KEY (shipment_id, line_no, lot_id)
);
CREATE INDEX shipment_lines_lot ON shipment_lines (lot_id);
