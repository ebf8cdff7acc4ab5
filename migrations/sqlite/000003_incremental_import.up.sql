-- Open incremental imports and their staged events. Staging lives in the
-- database so that an import survives a restart and can be committed by any
-- process that knows its id. seq is the push order.
CREATE TABLE incremental_imports (
    import_id  TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE incremental_import_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    import_id    TEXT    NOT NULL,
    aggregate_id TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    timestamp    INTEGER NOT NULL,
    payload      TEXT    NOT NULL
) STRICT;

CREATE INDEX incremental_import_events_import_idx ON incremental_import_events (import_id, timestamp, seq);
