-- events_quarantine stays, with whatever it holds: its events were never
-- readable, and their keys may have been used since (migration 4 up keeps
-- the table if it exists; Drop removes it with the store).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_position_positive;
