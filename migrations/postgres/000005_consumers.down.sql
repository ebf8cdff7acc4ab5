DROP TABLE IF EXISTS esctl_parked_events;
DROP TABLE IF EXISTS esctl_consumers;
