-- The reports' reads (docs/reports.md) without whole-table scans, and the facts of shipments
-- imported at onboarding, which the reports and returns count.

-- "Ever held" (lot_report_facts): a lot's quality holds, not its whole history.
CREATE INDEX lot_history_holds ON lot_history (lot_id) WHERE change = 'hold';
-- What customers returned of the lots in a report (returned_units), by lot.
CREATE INDEX return_lines_lot ON return_lines (lot_id);
-- The lots received in a report's window.
CREATE INDEX lots_received_at ON lots (received_at) WHERE received_at IS NOT NULL;

-- Shipments made before lottrace (`order-shipped` with `imported: true`, history_facts.py):
-- they never move stock, but what each customer received of each lot is what a return of it
-- is checked against, and what each lot shipped counts in the reports. One row per line of
-- each event, so a re-delivered event counts once.
CREATE TABLE imported_shipment_lines (
    event_id    text        NOT NULL,
    line_no     integer     NOT NULL,
    shipment_id text        NOT NULL,
    order_id    text        NOT NULL,
    customer_id text        NOT NULL,
    lot_id      uuid        NOT NULL,
    quantity    numeric     NOT NULL CHECK (quantity > 0),
    shipped_at  timestamptz NOT NULL,
    PRIMARY KEY (event_id, line_no)
);
CREATE INDEX imported_shipment_lines_lot ON imported_shipment_lines (lot_id, customer_id);
