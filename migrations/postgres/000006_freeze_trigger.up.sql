-- The freeze holds in the database itself: an INSERT into events while the
-- store is frozen fails, whoever sends it (another tool, raw SQL, an older
-- esctl). The store's own maintenance writes into a frozen store (imports,
-- restores) set maintenance in their transaction, which holds the
-- store-state row's lock, and clear it before they commit, so that no other
-- transaction ever sees it set. One check per statement, not per row.
-- SET search_path FROM CURRENT binds the functions to the store's schema.
ALTER TABLE store_state
    ADD COLUMN maintenance boolean NOT NULL DEFAULT false,
    ADD COLUMN aggregate_count bigint NOT NULL DEFAULT 0;

CREATE FUNCTION esctl_refuse_frozen() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM store_state WHERE id = 1 AND frozen AND NOT maintenance) THEN
        RAISE EXCEPTION 'esctl: the store is frozen: nothing can be appended until it is unfrozen (esctl unfreeze)'
            USING ERRCODE = '55000';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER events_refuse_frozen BEFORE INSERT ON events
FOR EACH STATEMENT EXECUTE FUNCTION esctl_refuse_frozen();

-- The number of distinct aggregates, kept by the writes (as event_count
-- is), so that describe costs the same at 10M events as at 1,000. Positions
-- only grow, so an aggregate of an insert is new when it has no event below
-- the lowest position the statement gives it: one index probe per distinct
-- aggregate of the statement. A delete uncounts the aggregates it leaves
-- with no event.
UPDATE store_state SET aggregate_count = (SELECT count(DISTINCT aggregate_id) FROM events) WHERE id = 1;

CREATE FUNCTION esctl_count_aggregates() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE store_state SET aggregate_count = aggregate_count + (
        SELECT count(*) FROM (SELECT aggregate_id, min(position) AS first FROM new_events GROUP BY aggregate_id) n
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_id = n.aggregate_id AND e.position < n.first))
    WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER events_count_aggregates AFTER INSERT ON events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION esctl_count_aggregates();

CREATE FUNCTION esctl_uncount_aggregates() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE store_state SET aggregate_count = aggregate_count - (
        SELECT count(*) FROM (SELECT DISTINCT aggregate_id FROM old_events) o
        WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.aggregate_id = o.aggregate_id))
    WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER events_uncount_aggregates AFTER DELETE ON events
REFERENCING OLD TABLE AS old_events
FOR EACH STATEMENT EXECUTE FUNCTION esctl_uncount_aggregates();
