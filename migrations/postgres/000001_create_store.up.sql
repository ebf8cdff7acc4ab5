-- Runs with search_path set to the store's schema only.

-- The store-state row: every write that assigns positions or reads the frozen
-- flag locks this row (SELECT ... FOR UPDATE) inside its transaction and holds
-- it to commit, so positions commit in order and Freeze is a barrier. The
-- counters are kept in the same transaction as every write, so Describe is
-- exact without COUNT(*). A low fillfactor keeps its updates HOT.
CREATE TABLE store_state (
    id                   smallint PRIMARY KEY CHECK (id = 1),
    last_position        bigint   NOT NULL DEFAULT 0,
    event_count          bigint   NOT NULL DEFAULT 0,
    secret_count         bigint   NOT NULL DEFAULT 0,
    deleted_secret_count bigint   NOT NULL DEFAULT 0,
    frozen               boolean  NOT NULL DEFAULT false,
    frozen_reason        text     NOT NULL DEFAULT ''
) WITH (fillfactor = 10);

INSERT INTO store_state (id) VALUES (1);

-- position is assigned by the store (last_position + 1 ...) under the lock:
-- dense and in commit order. payload is json, not jsonb: json keeps the text
-- byte for byte (jsonb reorders keys, drops duplicates, rewrites numbers).
CREATE TABLE events (
    position          bigint NOT NULL,
    aggregate_id      text   NOT NULL,
    aggregate_version bigint NOT NULL,
    type              text   NOT NULL,
    timestamp         bigint NOT NULL,
    payload           json   NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_aggregate_version_key UNIQUE (aggregate_id, aggregate_version)
);

CREATE INDEX events_aggregate_id_position_idx ON events (aggregate_id, position);
CREATE INDEX events_type_position_idx ON events (type, position);
CREATE INDEX events_timestamp_position_idx ON events (timestamp, position);

-- Keys compare bytewise (COLLATE "C"), as in SQLite, so that both engines
-- list snapshots in the same order.
CREATE TABLE snapshots (
    snapshot_key text COLLATE "C" NOT NULL,
    content      bytea NOT NULL,
    CONSTRAINT snapshots_pkey PRIMARY KEY (snapshot_key)
);

-- secret is NULL for a deleted secret (a tombstone keeps its id from reuse).
CREATE TABLE secrets (
    idx    bigint NOT NULL,
    id     text   NOT NULL,
    secret text,
    CONSTRAINT secrets_pkey PRIMARY KEY (idx),
    CONSTRAINT secrets_id_key UNIQUE (id)
);
