DROP TABLE IF EXISTS import_staging;
DROP TABLE IF EXISTS import_checkpoints;
