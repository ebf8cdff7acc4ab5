-- Durable consumers (package consumer). One row per member of a consumer
-- group (a consumer of one member is a group of 1): its checkpoint, the
-- last position it handled, and its lease. holder is the instance that
-- holds the lease ('' none) and lease_until when it ends, in milliseconds
-- since the epoch on the server's clock (clock_timestamp()), so that the
-- clocks of the machines running consumers do not matter. The esctl_
-- prefix keeps the names clear of an application's own tables in a shared
-- schema.
CREATE TABLE esctl_consumers (
    name        text     NOT NULL,
    member      integer  NOT NULL,
    members     integer  NOT NULL,
    position    bigint   NOT NULL,
    holder      text     NOT NULL DEFAULT '',
    lease_until bigint   NOT NULL DEFAULT 0,
    updated_at  bigint   NOT NULL,
    CONSTRAINT esctl_consumers_pkey PRIMARY KEY (name, member),
    CONSTRAINT esctl_consumers_member_check CHECK (member >= 0 AND member < members),
    CONSTRAINT esctl_consumers_position_check CHECK (position >= 0)
) WITH (fillfactor = 50);

-- Events a consumer's handler failed on after its retries, with the last
-- error. replay is set by a replay request (esctl consumers replay): the
-- member that owns the event handles it again and deletes the row when it
-- succeeds. Parking and replaying never move a checkpoint.
CREATE TABLE esctl_parked_events (
    name         text    NOT NULL,
    position     bigint  NOT NULL,
    aggregate_id text    NOT NULL,
    error        text    NOT NULL,
    attempts     integer NOT NULL,
    parked_at    bigint  NOT NULL,
    replay       boolean NOT NULL DEFAULT false,
    CONSTRAINT esctl_parked_events_pkey PRIMARY KEY (name, position)
);
