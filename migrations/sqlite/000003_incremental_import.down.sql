DROP TABLE IF EXISTS incremental_import_events;
DROP TABLE IF EXISTS incremental_imports;
