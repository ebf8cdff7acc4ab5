-- Drops event metadata (and with it every event's metadata).
ALTER TABLE incremental_import_events DROP COLUMN metadata;
ALTER TABLE import_staging DROP COLUMN metadata;
ALTER TABLE events DROP COLUMN metadata;
