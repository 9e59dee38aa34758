-- The GTIN of each allocated lot's product, as inventory's `lot-allocated` names it (NULL when
-- the lot's receipt named none, or the allocation came from an older inventory). A scanned
-- case must match it, not only the lot code: two products may share a lot code.
ALTER TABLE allocations ADD COLUMN gtin text;
