-- Citizens' own sign-ins: the WeChat openid of each mini-program (app id)
-- they used, a phone number (encrypted, found by its blind index), the
-- privacy notice they accepted, and one-time SMS codes kept only as keyed
-- hashes. Also an index for replicas that read recent revocations.

ALTER TABLE accounts ADD COLUMN phone_cipher TEXT;
ALTER TABLE accounts ADD COLUMN phone_index TEXT;
ALTER TABLE accounts ADD COLUMN privacy_notice_version TEXT;
ALTER TABLE accounts ADD COLUMN privacy_notice_accepted_at TIMESTAMPTZ;
-- A phone number belongs to one account at most.
CREATE UNIQUE INDEX accounts_by_phone ON accounts (phone_index) WHERE phone_index IS NOT NULL;

-- An openid is only meaningful with its app id; red envelopes are paid to it.
CREATE TABLE citizen_wechat (
    app_id     TEXT NOT NULL,
    openid     TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    unionid    TEXT,
    linked_at  TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, openid),
    UNIQUE (account_id, app_id)
);

-- One live code per phone: requesting again replaces it.
CREATE TABLE sms_codes (
    phone_index     TEXT PRIMARY KEY,
    code_hash       BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sms_codes_by_expiry ON sms_codes (expires_at);

CREATE INDEX sessions_by_revocation ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
