-- Event metadata (schema version 8): a JSON object about the event (the
-- correlation and causation ids, the trace context, the user). json like
-- the payload, which keeps the text byte for byte; NULL for none. ADD
-- COLUMN without a default is a catalog change in PostgreSQL: no row is
-- rewritten, and the ACCESS EXCLUSIVE lock it takes is held for
-- milliseconds on any size of store. The staging tables of imports and
-- incremental imports carry it too (text in incremental_import_events,
-- like its payload).
ALTER TABLE events ADD COLUMN metadata json;
ALTER TABLE import_staging ADD COLUMN metadata json;
ALTER TABLE incremental_import_events ADD COLUMN metadata text;
