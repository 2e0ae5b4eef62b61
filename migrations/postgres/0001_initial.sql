-- Accounts, sign-in sessions, complaints and their timelines.
-- Enumerations are stored by name and guarded by CHECK constraints.

CREATE TABLE accounts (
    id           BIGSERIAL PRIMARY KEY,
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN (
                     'citizen', 'dispatcher', 'handler', 'unit_supervisor',
                     'district_supervisor', 'auditor', 'system_admin',
                     'security_admin', 'audit_admin')),
    unit_id      TEXT,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, subject)
);

-- One row per refresh token. Rotation marks the old row and adds a new one in
-- the same family; presenting a rotated token again revokes the family.
CREATE TABLE sessions (
    id           BIGSERIAL PRIMARY KEY,
    family_id    TEXT NOT NULL,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    refresh_hash BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    rotated_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX sessions_by_family ON sessions (family_id);

CREATE TABLE complaints (
    id                   BIGSERIAL PRIMARY KEY,
    citizen_id           BIGINT NOT NULL REFERENCES accounts (id),
    request_id           TEXT NOT NULL,
    request_fingerprint  BYTEA NOT NULL,
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
    latitude             DOUBLE PRECISION,
    longitude            DOUBLE PRECISION,
    -- "v<key version>:<base64>"; never the plain number.
    contact_phone_cipher TEXT,
    contact_phone_masked TEXT,
    photo_ids            TEXT NOT NULL DEFAULT '[]',
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    deadline             TIMESTAMPTZ,
    resolution_round     INTEGER NOT NULL DEFAULT 0,
    rating               TEXT CHECK (rating IN ('satisfied', 'basically_satisfied', 'unsatisfied')),
    rating_comment       TEXT,
    rated_at             TIMESTAMPTZ,
    rating_round         INTEGER,
    last_sequence        BIGINT NOT NULL,
    version              BIGINT NOT NULL,
    -- A retried filing finds the complaint its first attempt created.
    UNIQUE (citizen_id, request_id)
);
CREATE INDEX complaints_by_citizen ON complaints (citizen_id, id DESC);

CREATE TABLE complaint_events (
    complaint_id       BIGINT NOT NULL REFERENCES complaints (id),
    sequence           BIGINT NOT NULL,
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    message            TEXT NOT NULL,
    visible_to_citizen BOOLEAN NOT NULL,
    actor_id           BIGINT REFERENCES accounts (id),
    occurred_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (complaint_id, sequence)
);
