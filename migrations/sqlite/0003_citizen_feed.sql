-- The home-screen feed: each citizen-visible event also gets a number in its
-- citizen's own sequence, handed out under a lock on the citizen's row, so
-- that numbers follow commit order and a cursor never skips a late commit.
ALTER TABLE accounts ADD COLUMN feed_sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE complaint_events ADD COLUMN citizen_id INTEGER REFERENCES accounts (id);
ALTER TABLE complaint_events ADD COLUMN citizen_sequence INTEGER;
CREATE UNIQUE INDEX complaint_events_by_citizen
    ON complaint_events (citizen_id, citizen_sequence) WHERE citizen_sequence IS NOT NULL;
