-- Import checkpoints: written in the same transaction as each imported
-- batch, so that an interrupted import resumes exactly after its last
-- committed line. hash_state is the serialized SHA-256 state over the
-- source's first byte_offset bytes (to recognize the same source on resume).
CREATE TABLE import_checkpoints (
    source_id     TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    mode          TEXT    NOT NULL,
    froze         INTEGER NOT NULL,
    base_position INTEGER NOT NULL,
    byte_offset   INTEGER NOT NULL,
    line          INTEGER NOT NULL,
    events        INTEGER NOT NULL,
    last_position INTEGER NOT NULL,
    hash_state    BLOB    NOT NULL,
    done          INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- Events of a replacing (AUTO) import into a non-empty store wait here until
-- the whole file is in; one transaction then swaps them into events, so the
-- store is never half-replaced.
CREATE TABLE import_staging (
    position          INTEGER PRIMARY KEY,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL,
    type              TEXT    NOT NULL,
    timestamp         INTEGER NOT NULL,
    payload           TEXT    NOT NULL,
    CONSTRAINT import_staging_aggregate_version_key UNIQUE (aggregate_id, aggregate_version)
) STRICT;
