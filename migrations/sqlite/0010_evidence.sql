-- Evidence: photos citizens attach to complaints and handlers take while
-- handling them. A row is first an upload grant (status 'granted'): who may
-- upload, which type and how many bytes, until when. The upload stores a
-- sanitised file under `storage_key` ('stored'); attaching links it to a
-- complaint. Rows never attached are purged after a configurable time, and
-- a deleted account's rows turn 'deleted' until their files are gone.
-- Times are INTEGER microseconds since the Unix epoch, as elsewhere.
CREATE TABLE uploads (
    id                 TEXT PRIMARY KEY,
    owner_id           INTEGER NOT NULL REFERENCES accounts (id),
    status             TEXT NOT NULL CHECK (status IN ('granted', 'stored', 'deleted')),
    -- The type the client declared; the stored file is of this type.
    content_type       TEXT NOT NULL,
    max_bytes          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    storage_key        TEXT,
    size_bytes         INTEGER,
    width              INTEGER,
    height             INTEGER,
    stored_at          INTEGER,
    complaint_id       INTEGER REFERENCES complaints (id),
    -- 'report' (the citizen's photos), 'before', 'after' or 'progress'.
    stage              TEXT CHECK (stage IN ('report', 'before', 'after', 'progress')),
    visible_to_citizen INTEGER NOT NULL DEFAULT 0,
    unit_id            TEXT,
    attached_at        INTEGER
);
CREATE INDEX uploads_by_complaint ON uploads (complaint_id);
CREATE INDEX uploads_by_owner ON uploads (owner_id);
-- The purge reads unattached rows by age.
CREATE INDEX uploads_unattached ON uploads (created_at) WHERE complaint_id IS NULL;
