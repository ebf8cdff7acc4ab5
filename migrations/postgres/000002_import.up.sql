-- Import checkpoints: written in the same transaction as each imported
-- batch, so that an interrupted import resumes exactly after its last
-- committed line. hash_state is the serialized SHA-256 state over the
-- source's first byte_offset bytes (to recognize the same source on resume).
CREATE TABLE import_checkpoints (
    source_id     text    NOT NULL,
    kind          text    NOT NULL,
    mode          text    NOT NULL,
    froze         boolean NOT NULL,
    base_position bigint  NOT NULL,
    byte_offset   bigint  NOT NULL,
    line          bigint  NOT NULL,
    events        bigint  NOT NULL,
    last_position bigint  NOT NULL,
    hash_state    bytea   NOT NULL,
    done          boolean NOT NULL,
    updated_at    bigint  NOT NULL,
    CONSTRAINT import_checkpoints_pkey PRIMARY KEY (source_id)
);

-- Events of a replacing (AUTO) import into a non-empty store wait here until
-- the whole file is in; one transaction then swaps them into events, so the
-- store is never half-replaced.
CREATE TABLE import_staging (
    position          bigint NOT NULL,
    aggregate_id      text   NOT NULL,
    aggregate_version bigint NOT NULL,
    type              text   NOT NULL,
    timestamp         bigint NOT NULL,
    payload           json   NOT NULL,
    CONSTRAINT import_staging_pkey PRIMARY KEY (position),
    CONSTRAINT import_staging_aggregate_version_key UNIQUE (aggregate_id, aggregate_version)
);
