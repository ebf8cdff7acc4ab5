-- Event metadata (schema version 8): a JSON object about the event (the
-- correlation and causation ids, the trace context, the user), kept as its
-- compact text byte for byte like the payload, NULL for none. ADD COLUMN
-- without a default changes only the schema: SQLite reads the missing
-- column of the existing rows as NULL, so no row is rewritten and the
-- migration takes the same time on any size of store. The staging tables
-- of imports and incremental imports carry it too.
ALTER TABLE events ADD COLUMN metadata TEXT;
ALTER TABLE import_staging ADD COLUMN metadata TEXT;
ALTER TABLE incremental_import_events ADD COLUMN metadata TEXT;
