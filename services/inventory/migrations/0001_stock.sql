-- Lots: identity, dates, cost, and the blocks that apply to the whole lot (hold, recall).
CREATE TABLE lots (
    lot_id      uuid PRIMARY KEY,
    sku         text        NOT NULL,
    lot_code    text        NOT NULL,
    gtin        text,
    uom         text        NOT NULL DEFAULT 'EA',
    supplier_id text,
    expiry_date date,
    received_at timestamptz,          -- first receipt; NULL while only a shipment or recall named it
    unit_cost   numeric,
    currency    text,
    on_hold     boolean     NOT NULL DEFAULT false,
    hold_reason text,
    recalled    boolean     NOT NULL DEFAULT false,
    recall_id   text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lots_sku ON lots (sku, expiry_date, received_at, lot_id) WHERE NOT on_hold AND NOT recalled;
CREATE INDEX lots_expiry ON lots (expiry_date) WHERE expiry_date IS NOT NULL;
CREATE INDEX lots_code ON lots (lot_code);

-- Stock of a lot at a location. Every quantity that moves has its own column, so that
-- received - consumed - shipped + adjusted = on_hand holds by construction.
CREATE TABLE stock (
    lot_id   uuid        NOT NULL REFERENCES lots (lot_id),
    location text        NOT NULL,
    received numeric     NOT NULL DEFAULT 0,
    consumed numeric     NOT NULL DEFAULT 0,   -- by production of other lots
    shipped  numeric     NOT NULL DEFAULT 0,
    adjusted numeric     NOT NULL DEFAULT 0,   -- cycle counts, signed
    reserved numeric     NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    on_hand  numeric GENERATED ALWAYS AS (received - consumed - shipped + adjusted) STORED,
    PRIMARY KEY (lot_id, location)
);

-- Orders as inventory needs them: demand per line, in arrival order.
CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    customer_id text,                          -- NULL while only a cancellation named it
    min_remaining_shelf_life_days integer NOT NULL DEFAULT 0,
    placed_at   timestamptz,
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled', 'closed')),
    revision    integer     NOT NULL DEFAULT 0,
    arrival     bigint GENERATED ALWAYS AS IDENTITY,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_arrival ON orders (arrival) WHERE status = 'open';

-- Hot tables carry no foreign keys: a key check is a query per row, and these rows are written
-- by thousands a second. The one writer of this projection (the inventory service) writes a
-- parent before or with its children, in one transaction; `make chaos` checks the result.
CREATE TABLE order_lines (
    order_id         text    NOT NULL,              -- orders
    line_no          integer NOT NULL,
    sku              text    NOT NULL,
    uom              text    NOT NULL,
    ordered          numeric NOT NULL CHECK (ordered > 0),
    shipped          numeric NOT NULL DEFAULT 0,
    reserved         numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    backorder_reason text,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_open_demand ON order_lines (sku) WHERE ordered > shipped + reserved;

-- What is set aside for which order line from which lot at which location (not yet shipped).
CREATE TABLE reservations (
    order_id text    NOT NULL,
    line_no  integer NOT NULL,
    lot_id   uuid    NOT NULL,
    location text    NOT NULL,
    quantity numeric NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line_no, lot_id, location)  -- of order_lines and of stock
);
-- Lot first (holds, recalls, counts find reservations by lot); the full key, so that a
-- lookup by (order, line, lot, location) is as cheap through it as through the primary key.
CREATE INDEX reservations_lot ON reservations (lot_id, location, order_id, line_no);

-- Every change to a lot with its cause: the event id, or the user or rule behind it.
CREATE TABLE lot_history (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_id   uuid        NOT NULL,
    location text,
    at       timestamptz NOT NULL DEFAULT now(),
    change   text        NOT NULL,
    quantity numeric,
    order_id text,
    cause    text        NOT NULL,
    detail   text
);
CREATE INDEX lot_history_lot ON lot_history (lot_id, id);
