-- Citizens' personal data: deleted accounts stay as tombstones (their
-- complaints keep pointing at them) with every identifying column emptied,
-- and indexes for the retention purge.

ALTER TABLE accounts ADD COLUMN deleted_at INTEGER;

CREATE INDEX sessions_by_expiry ON sessions (expires_at);
-- Closed complaints whose contact phone is still kept.
CREATE INDEX complaints_with_contact_by_status ON complaints (status, updated_at)
    WHERE contact_phone_cipher IS NOT NULL OR contact_phone_masked IS NOT NULL;
