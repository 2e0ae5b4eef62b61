-- Staff who sign in with a password, their second factor, and the audit
-- log; the same tables as PostgreSQL's (times in microseconds, booleans 0/1).

CREATE TABLE staff_credentials (
    account_id           INTEGER PRIMARY KEY REFERENCES accounts (id),
    username             TEXT NOT NULL UNIQUE,
    password_hash        TEXT NOT NULL,
    password_is_initial  INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL,
    failed_attempts      INTEGER NOT NULL DEFAULT 0,
    locked_until         INTEGER,
    disabled_at          INTEGER,
    totp_secret_cipher   TEXT,
    totp_confirmed_at    INTEGER,
    totp_last_step       INTEGER,
    last_sign_in_at      INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE audit_records (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at   INTEGER NOT NULL,
    actor_id      INTEGER REFERENCES accounts (id),
    actor_role    TEXT NOT NULL,
    actor_unit_id TEXT,
    action        TEXT NOT NULL,
    target        TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_records_by_time ON audit_records (occurred_at);
CREATE INDEX audit_records_by_actor ON audit_records (actor_id, id);
CREATE INDEX audit_records_by_target ON audit_records (target, id);

-- Append-only, as on PostgreSQL. SQLite has no TRUNCATE: a DELETE without
-- WHERE runs the row trigger like any other. The floor is measured on the
-- database's own clock, in the microseconds the table stores.
CREATE TRIGGER audit_records_no_update
    BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_records_no_early_delete
    BEFORE DELETE ON audit_records
    WHEN OLD.occurred_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 183 * 86400) * 1000000
BEGIN
    SELECT RAISE(ABORT, 'audit records younger than 183 days cannot be deleted');
END;
