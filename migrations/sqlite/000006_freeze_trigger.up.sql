-- The freeze holds in the database itself: an INSERT into events while the
-- store is frozen fails, whoever sends it (another tool, raw SQL, an older
-- esctl). The store's own maintenance writes into a frozen store (imports,
-- restores) set maintenance inside their transaction, before they insert,
-- and clear it again before they commit, so that no other connection ever
-- sees it set: SQLite runs one write transaction at a time.
ALTER TABLE store_state ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER events_refuse_frozen BEFORE INSERT ON events
WHEN (SELECT frozen AND NOT maintenance FROM store_state WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'esctl: the store is frozen: nothing can be appended until it is unfrozen (esctl unfreeze)');
END;

-- The number of distinct aggregates, kept by the writes (as event_count
-- is), so that describe costs the same at 10M events as at 1,000. An insert
-- counts its aggregate when it is the aggregate's only event, a delete
-- uncounts it when none is left: one probe of events_aggregate_id_position_idx
-- per row.
ALTER TABLE store_state ADD COLUMN aggregate_count INTEGER NOT NULL DEFAULT 0;

UPDATE store_state SET aggregate_count = (SELECT count(DISTINCT aggregate_id) FROM events) WHERE id = 1;

CREATE TRIGGER events_count_aggregate AFTER INSERT ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE aggregate_id = NEW.aggregate_id AND position <> NEW.position)
BEGIN
    UPDATE store_state SET aggregate_count = aggregate_count + 1 WHERE id = 1;
END;

CREATE TRIGGER events_uncount_aggregate AFTER DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE aggregate_id = OLD.aggregate_id)
BEGIN
    UPDATE store_state SET aggregate_count = aggregate_count - 1 WHERE id = 1;
END;
