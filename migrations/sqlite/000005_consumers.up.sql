-- Durable consumers (package consumer). One row per member of a consumer
-- group (a consumer of one member is a group of 1): its checkpoint, the
-- last position it handled, and its lease. holder is the instance that
-- holds the lease ('' none) and lease_until when it ends, in milliseconds
-- since the epoch (a SQLite store is on one machine: one clock). The
-- esctl_ prefix keeps the names clear of an application's own tables.
CREATE TABLE esctl_consumers (
    name        TEXT    NOT NULL,
    member      INTEGER NOT NULL,
    members     INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    holder      TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (name, member),
    CHECK (member >= 0 AND member < members),
    CHECK (position >= 0)
) STRICT;

-- Events a consumer's handler failed on after its retries, with the last
-- error. replay is set by a replay request (esctl consumers replay): the
-- member that owns the event handles it again and deletes the row when it
-- succeeds. Parking and replaying never move a checkpoint.
CREATE TABLE esctl_parked_events (
    name         TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    aggregate_id TEXT    NOT NULL,
    error        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    parked_at    INTEGER NOT NULL,
    replay       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, position)
) STRICT;
