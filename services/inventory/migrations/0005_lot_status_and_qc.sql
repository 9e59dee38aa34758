-- The status last announced on `lot-status-changed` for each lot, so that every change is
-- announced once (NULL: none yet; a lot from before this migration is announced when next
-- touched). The status itself is derived by `services.inventory.domain.lot_status`.
ALTER TABLE lots ADD COLUMN status text;
-- A lot received `qc_required` waits for its QC result: 'pending', then 'passed' or 'failed'
-- (`domain.QcState`). NULL: the lot needed no QC.
ALTER TABLE lots ADD COLUMN qc_state text;
-- The expiry sweep looks for lots past their date still announced with a status that expiry
-- replaces.
CREATE INDEX lots_expiry_status ON lots (expiry_date, status) WHERE expiry_date IS NOT NULL;
