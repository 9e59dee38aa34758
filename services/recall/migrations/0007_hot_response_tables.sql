-- Responses come by the hundred thousand while a recall is followed, and a foreign key check
-- is a query per row: a third of ingesting them (`python -m bench.recall_loop --customers
-- 50000 --lines 500000`: 4.6 s with these keys, 3.0 s with them dropped by hand). Their one
-- writer (services/recall/responses.py) stores a response only for a recall it read in the
-- same transaction, and a response's units only with the response; recalls are never deleted.
ALTER TABLE recall_responses DROP CONSTRAINT IF EXISTS recall_responses_recall_id_fkey;
ALTER TABLE recall_reported_units DROP CONSTRAINT IF EXISTS recall_reported_units_response_id_fkey;
