-- Every event's position is > 0: reads start after position 0, so an event
-- at a position <= 0 would be stored where no read, cursor or count finds
-- it, while its (aggregate_id, aggregate_version) key is taken. The store
-- never assigns such a position; the constraint makes sure no bug can store
-- one again (the adapters map its violation to eventstore.InvariantError).
-- SQLite adds a CHECK constraint only by rebuilding the table, so events is
-- copied once into a table that has it. Events at positions <= 0 (none is
-- known to exist in a SQLite store; PostgreSQL stores of before this
-- version could have some) are moved to events_quarantine, not deleted.
CREATE TABLE IF NOT EXISTS events_quarantine (
    position          INTEGER NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    timestamp         INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    quarantined_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
) STRICT;

INSERT INTO events_quarantine (position, aggregate_id, aggregate_version, type, timestamp, payload, reason)
SELECT position, aggregate_id, aggregate_version, type, timestamp, payload,
       'stored at a position <= 0 (found by migration 4)'
FROM events WHERE position <= 0;

CREATE TABLE events_new (
    position          INTEGER PRIMARY KEY,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    timestamp         INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version),
    CONSTRAINT events_position_positive CHECK (position > 0)
) STRICT;

INSERT INTO events_new (position, aggregate_id, aggregate_version, type, timestamp, payload)
SELECT position, aggregate_id, aggregate_version, type, timestamp, payload FROM events WHERE position > 0 ORDER BY position;

DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

CREATE INDEX events_aggregate_id_position_idx ON events (aggregate_id, position);
CREATE INDEX events_type_position_idx ON events (type, position);
CREATE INDEX events_timestamp_position_idx ON events (timestamp, position);
