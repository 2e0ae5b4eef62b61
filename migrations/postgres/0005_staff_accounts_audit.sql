-- Staff who sign in with a password, their second factor, and the audit log.

-- One row per staff account that signs in with a password; the account
-- itself (role, unit, name) stays in `accounts`, with provider 'password'
-- and the username as subject.
CREATE TABLE staff_credentials (
    account_id           BIGINT PRIMARY KEY REFERENCES accounts (id),
    username             TEXT NOT NULL UNIQUE,
    -- Argon2id in PHC string form: algorithm, parameters, salt and hash.
    password_hash        TEXT NOT NULL,
    -- Set while the password is one an administrator was shown.
    password_is_initial  BOOLEAN NOT NULL,
    password_changed_at  TIMESTAMPTZ NOT NULL,
    failed_attempts      INTEGER NOT NULL DEFAULT 0,
    locked_until         TIMESTAMPTZ,
    disabled_at          TIMESTAMPTZ,
    -- The TOTP secret, encrypted like personal data; pending until confirmed.
    totp_secret_cipher   TEXT,
    totp_confirmed_at    TIMESTAMPTZ,
    -- The last time step whose code was accepted: no code is used twice.
    totp_last_step       BIGINT,
    last_sign_in_at      TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- Privileged actions and staff reads of personal data. Append-only: the
-- triggers below refuse every UPDATE and TRUNCATE, and every DELETE of a
-- record younger than 183 days (the legal floor of six months), whatever
-- the application asks for.
-- TODO(audit): the table's owner can still disable these triggers or drop
-- the table. Production should migrate as one role and serve as another
-- that holds only INSERT, SELECT and DELETE on audit_records.
CREATE TABLE audit_records (
    id            BIGSERIAL PRIMARY KEY,
    occurred_at   TIMESTAMPTZ NOT NULL,
    -- NULL for the system itself (the bootstrap command, lock-outs, purges).
    actor_id      BIGINT REFERENCES accounts (id),
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

CREATE FUNCTION audit_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.occurred_at < now() - interval '183 days' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit records younger than 183 days cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_guard();
CREATE TRIGGER audit_records_no_truncate
    BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_guard();
