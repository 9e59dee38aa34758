-- Rows of onboarding lot files already imported, by their row key: a re-run of the same file
-- receives nothing twice. Each row was received as one receipt; a row with nothing on hand (a
-- lot sold out before the move) recorded its lot and no receipt.
CREATE TABLE imported_lot_rows (
    row_key     text PRIMARY KEY,
    receipt_id  text REFERENCES receipts (receipt_id),
    lot_id      uuid        NOT NULL REFERENCES lots (lot_id),
    imported_at timestamptz NOT NULL DEFAULT now()
);
