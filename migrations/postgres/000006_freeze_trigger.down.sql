DROP TRIGGER IF EXISTS events_uncount_aggregates ON events;
DROP TRIGGER IF EXISTS events_count_aggregates ON events;
DROP TRIGGER IF EXISTS events_refuse_frozen ON events;
DROP FUNCTION IF EXISTS esctl_uncount_aggregates();
DROP FUNCTION IF EXISTS esctl_count_aggregates();
DROP FUNCTION IF EXISTS esctl_refuse_frozen();
ALTER TABLE store_state DROP COLUMN IF EXISTS aggregate_count, DROP COLUMN IF EXISTS maintenance;
