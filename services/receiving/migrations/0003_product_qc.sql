-- A product whose lots are received quarantined, until QC releases them in inventory
-- (`goods-received.qc_required`).
ALTER TABLE products ADD COLUMN qc_required boolean NOT NULL DEFAULT false;
