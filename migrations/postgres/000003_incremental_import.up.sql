-- Open incremental imports and their staged events. Staging lives in the
-- database so that an import survives a restart and can be committed by any
-- process that knows its id. seq is the push order. Payloads are text here
-- (json has no equality operator, and duplicates are found by comparing
-- the exact bytes).
CREATE TABLE incremental_imports (
    import_id  text   NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    CONSTRAINT incremental_imports_pkey PRIMARY KEY (import_id)
);

CREATE TABLE incremental_import_events (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    import_id    text   NOT NULL,
    aggregate_id text   NOT NULL,
    type         text   NOT NULL,
    timestamp    bigint NOT NULL,
    payload      text   NOT NULL,
    CONSTRAINT incremental_import_events_pkey PRIMARY KEY (seq)
);

CREATE INDEX incremental_import_events_import_idx ON incremental_import_events (import_id, timestamp, seq);
