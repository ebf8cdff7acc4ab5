-- Every event's position is > 0: reads start after position 0, so an event
-- at a position <= 0 would be stored where no read, cursor or count finds
-- it, while its (aggregate_id, aggregate_version) key is taken. The store
-- never assigns such a position; the constraint makes sure no bug can store
-- one again (the adapters map its violation to eventstore.InvariantError).
--
-- esctl before this version could store such events on PostgreSQL when a
-- Freeze or Unfreeze raced an append: the append reported an error, yet its
-- events were written at positions <= 0. They are moved, not deleted, to
-- events_quarantine, so that the store's invariants hold again (the
-- callers were told that those appends failed) and nothing is lost.
-- No append may run while events are moved and checked.
LOCK TABLE store_state, events IN ACCESS EXCLUSIVE MODE;

CREATE TABLE IF NOT EXISTS events_quarantine (
    position          bigint      NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version bigint      NOT NULL,
    type              text        NOT NULL,
    timestamp         bigint      NOT NULL,
    payload           json        NOT NULL,
    reason            text        NOT NULL,
    quarantined_at    timestamptz NOT NULL DEFAULT now()
);

WITH moved AS (
    DELETE FROM events WHERE position <= 0
    RETURNING position, aggregate_id, aggregate_version, type, timestamp, payload
)
INSERT INTO events_quarantine (position, aggregate_id, aggregate_version, type, timestamp, payload, reason)
SELECT position, aggregate_id, aggregate_version, type, timestamp, payload,
       'stored at a position <= 0 by an append that reported a failure (a Freeze/Unfreeze race of esctl before migration 4)'
FROM moved;

ALTER TABLE events ADD CONSTRAINT events_position_positive CHECK (position > 0);
