-- What is still to publish is a narrow table of outbox ids: the relay deletes an id once the
-- broker has the row, and the row itself stays untouched until the purge. Marking the wide row
-- published is an UPDATE: a new version of the whole row, value included, and an index entry,
-- where deleting an id writes almost nothing. A re-publish after a broker loss puts the ids back.
CREATE TABLE outbox_pending (
    id bigint PRIMARY KEY
);
INSERT INTO outbox_pending SELECT id FROM outbox WHERE published_at IS NULL;
DROP INDEX outbox_unpublished;
DROP INDEX outbox_published_at;
ALTER TABLE outbox DROP COLUMN published_at;
