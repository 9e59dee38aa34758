-- A shipment can reach inventory before its order: order-placed and order-shipped are two
-- topics, so a projection rebuilt from offset 0, a consumer lagging on one of them, or an
-- allocation made outside inventory can put the shipment first. What it shipped waits here
-- for the order, whose lines then start with it shipped: never reserved a second time.
CREATE TABLE early_shipments (
    order_id text NOT NULL,
    line_no integer NOT NULL,
    shipped numeric NOT NULL CHECK (shipped > 0),
    PRIMARY KEY (order_id, line_no)
);
