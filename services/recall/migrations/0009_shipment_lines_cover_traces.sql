-- A forward trace and a recall's notices read every column of a lot's shipment lines. The
-- lines of one lot lie scattered over the table, a heap page each, as they arrived among every
-- other lot's: reading them visited a page a line. With those columns in the lot's index,
-- both are index-only scans, the lot's lines side by side. What it changed, measured, is in
-- docs/benchmarks.md (the notes of 2026-12-07, 22:24 to 23:12).
--
-- The new index is built before the narrower one goes: reads go on meanwhile, and new shipment
-- lines wait for the commit (recall's consumer lags, nothing is lost). Dropping the old index
-- needs the table to itself, which waits for every open read of it; the lock timeout keeps
-- reads from queuing behind that wait for long. Past it, the migration is undone and tried
-- again at the next start-up attempt (the service retries within seconds).
CREATE INDEX shipment_lines_lot_covering ON shipment_lines (lot_id, customer_id)
    INCLUDE (quantity, seq, shipped_at, shipment_id, line_no, order_id, sku, lot_code, uom);
SET LOCAL lock_timeout = '5s';
DROP INDEX shipment_lines_lot;
ALTER INDEX shipment_lines_lot_covering RENAME TO shipment_lines_lot;

-- An index-only scan still reads the heap for pages vacuum has not yet marked all-visible, and
-- the lines most traced and recalled are the newest. PostgreSQL vacuums an insert-only table
-- after 20 % more rows by default; after 1 %, the newest lines are soon all-visible too, for a
-- pass over the pages added since.
ALTER TABLE shipment_lines SET (autovacuum_vacuum_insert_scale_factor = 0.01);
