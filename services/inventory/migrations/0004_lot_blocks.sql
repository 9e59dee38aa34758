-- The reasons a lot may not be allocated live in one column, as the values of
-- `services.inventory.domain.Block`; queries receive the blocking set as a parameter.
ALTER TABLE lots ADD COLUMN blocks text[] NOT NULL DEFAULT '{}';
UPDATE lots SET blocks = array_remove(ARRAY[
    CASE WHEN recalled THEN 'recalled' END,
    CASE WHEN on_hold THEN 'quarantined' END], NULL)
WHERE recalled OR on_hold;

-- The allocation index no longer restates the rule in a predicate: a partial index serves only
-- queries that repeat its literal predicate. Blocked lots are few, so indexing them costs little.
DROP INDEX lots_sku;
CREATE INDEX lots_sku ON lots (sku, expiry_date, received_at, lot_id);

-- Read-only for tools outside the service (bench/chaos.py reads `recalled` and `on_hold`);
-- the service itself reads `blocks`.
ALTER TABLE lots DROP COLUMN recalled, DROP COLUMN on_hold;
ALTER TABLE lots
    ADD COLUMN recalled boolean GENERATED ALWAYS AS ('recalled' = ANY (blocks)) STORED,
    ADD COLUMN on_hold boolean GENERATED ALWAYS AS ('quarantined' = ANY (blocks)) STORED;
