-- The store-state row: every write that assigns positions or reads the frozen
-- flag runs inside BEGIN IMMEDIATE, which serializes writers, so positions
-- commit in order. The counters are kept in the same transaction as every
-- write, so Describe is exact without COUNT(*).
CREATE TABLE store_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    last_position        INTEGER NOT NULL DEFAULT 0,
    event_count          INTEGER NOT NULL DEFAULT 0,
    secret_count         INTEGER NOT NULL DEFAULT 0,
    deleted_secret_count INTEGER NOT NULL DEFAULT 0,
    frozen               INTEGER NOT NULL DEFAULT 0,
    frozen_reason        TEXT    NOT NULL DEFAULT ''
) STRICT;

INSERT INTO store_state (id) VALUES (1);

-- position is assigned by the store (last_position + 1 ...) under the lock:
-- dense and in commit order. The payload is the compact JSON text exactly as
-- the caller gave it.
CREATE TABLE events (
    position          INTEGER PRIMARY KEY,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    timestamp         INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version)
) STRICT;

CREATE INDEX events_aggregate_id_position_idx ON events (aggregate_id, position);
CREATE INDEX events_type_position_idx ON events (type, position);
CREATE INDEX events_timestamp_position_idx ON events (timestamp, position);

CREATE TABLE snapshots (
    snapshot_key TEXT PRIMARY KEY,
    content      BLOB NOT NULL
) STRICT;

-- secret is NULL for a deleted secret (a tombstone keeps its id from reuse).
CREATE TABLE secrets (
    idx    INTEGER PRIMARY KEY,
    id     TEXT    NOT NULL,
    secret TEXT,
    CONSTRAINT secrets_id_key UNIQUE (id)
) STRICT;
