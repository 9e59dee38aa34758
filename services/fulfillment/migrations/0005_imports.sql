-- Shipments of onboarding files already imported, by their row key: a re-run of the same file
-- announces nothing twice. Each row was announced as one `order-shipped` with `imported: true`;
-- it never touches the orders and shipments fulfillment ships itself.
CREATE TABLE imported_shipment_rows (
    row_key     text PRIMARY KEY,
    shipment_id text        NOT NULL,
    order_id    text        NOT NULL,
    line_no     integer     NOT NULL,
    customer_id text        NOT NULL,
    sku         text        NOT NULL,
    lot_id      uuid        NOT NULL,
    lot_code    text        NOT NULL,
    quantity    numeric     NOT NULL CHECK (quantity > 0),
    uom         text        NOT NULL,
    shipped_at  timestamptz NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX imported_shipment_rows_lot ON imported_shipment_rows (lot_id);
