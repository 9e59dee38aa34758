-- Three more flows of a stock row, each in its own column, so that on hand stays the sum of
-- what moved: customer returns in, returns to the supplier out, and moves between locations
-- (signed: out of one row, into another; they add up to 0 over a lot).
ALTER TABLE stock DROP COLUMN on_hand;
ALTER TABLE stock
    ADD COLUMN returned        numeric NOT NULL DEFAULT 0,
    ADD COLUMN vendor_returned numeric NOT NULL DEFAULT 0,
    ADD COLUMN moved           numeric NOT NULL DEFAULT 0;
ALTER TABLE stock ADD COLUMN on_hand numeric GENERATED ALWAYS AS
    (received - consumed - shipped + adjusted + returned - vendor_returned + moved) STORED;

-- Every line of every customer return taken into stock. A re-sent return (same return_id)
-- finds its lines here and changes nothing. `beyond_shipped`: how much of the line exceeds
-- what inventory saw shipped of the lot to that customer, less earlier returns (flagged, not
-- refused: the units are in the building).
CREATE TABLE return_lines (
    return_id      text        NOT NULL,
    line_no        integer     NOT NULL,
    lot_id         uuid        NOT NULL,
    customer_id    text        NOT NULL,
    order_id       text,
    recall_id      text,
    quantity       numeric     NOT NULL CHECK (quantity > 0),
    location       text        NOT NULL,
    reason         text        NOT NULL,
    condition      text,
    beyond_shipped numeric     NOT NULL DEFAULT 0,
    returned_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (return_id, line_no)
);
CREATE INDEX return_lines_customer_lot ON return_lines (customer_id, lot_id);
