-- Drops event metadata (and with it every event's metadata). SQLite
-- rewrites each table to drop a column.
ALTER TABLE incremental_import_events DROP COLUMN metadata;
ALTER TABLE import_staging DROP COLUMN metadata;
ALTER TABLE events DROP COLUMN metadata;
