-- The embedded engine's schema: the same tables as PostgreSQL's.
-- Times are INTEGER microseconds since the Unix epoch (UTC), so that they
-- sort and compare as numbers; booleans are 0/1.

CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN (
                     'citizen', 'dispatcher', 'handler', 'unit_supervisor',
                     'district_supervisor', 'auditor', 'system_admin',
                     'security_admin', 'audit_admin')),
    unit_id      TEXT,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (provider, subject)
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    family_id    TEXT NOT NULL,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    refresh_hash BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    rotated_at   INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX sessions_by_family ON sessions (family_id);

-- AUTOINCREMENT: an id is never reused, since tracking numbers derive from it.
CREATE TABLE complaints (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    citizen_id           INTEGER NOT NULL REFERENCES accounts (id),
    request_id           TEXT NOT NULL,
    request_fingerprint  BLOB NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('complaint', 'suggestion', 'consultation')),
    channel              TEXT NOT NULL CHECK (channel IN (
                             'mini_program', 'app', 'hotline', 'walk_in', 'staff_entered')),
    status               TEXT NOT NULL CHECK (status IN (
                             'received', 'accepted', 'rejected', 'dispatched', 'in_progress',
                             'resolved', 'closed', 'withdrawn')),
    status_reason        TEXT,
    text                 TEXT NOT NULL,
    category_code        TEXT NOT NULL,
    address              TEXT,
    latitude             REAL,
    longitude            REAL,
    contact_phone_cipher TEXT,
    contact_phone_masked TEXT,
    photo_ids            TEXT NOT NULL DEFAULT '[]',
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deadline             INTEGER,
    resolution_round     INTEGER NOT NULL DEFAULT 0,
    rating               TEXT CHECK (rating IN ('satisfied', 'basically_satisfied', 'unsatisfied')),
    rating_comment       TEXT,
    rated_at             INTEGER,
    rating_round         INTEGER,
    last_sequence        INTEGER NOT NULL,
    version              INTEGER NOT NULL,
    UNIQUE (citizen_id, request_id)
);
CREATE INDEX complaints_by_citizen ON complaints (citizen_id, id DESC);

CREATE TABLE complaint_events (
    complaint_id       INTEGER NOT NULL REFERENCES complaints (id),
    sequence           INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    message            TEXT NOT NULL,
    visible_to_citizen INTEGER NOT NULL,
    actor_id           INTEGER REFERENCES accounts (id),
    occurred_at        INTEGER NOT NULL,
    PRIMARY KEY (complaint_id, sequence)
);
