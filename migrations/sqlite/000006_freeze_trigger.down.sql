DROP TRIGGER IF EXISTS events_uncount_aggregate;
DROP TRIGGER IF EXISTS events_count_aggregate;
DROP TRIGGER IF EXISTS events_refuse_frozen;
ALTER TABLE store_state DROP COLUMN aggregate_count;
ALTER TABLE store_state DROP COLUMN maintenance;
