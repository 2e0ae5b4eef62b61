-- Block lists kept by the security administrator: a citizen account, a
-- device or a phone number barred from filing (and a phone from receiving
-- sign-in codes) until a set time, with the reason and who decided.
-- A block is never deleted: lifting it early records who and why.
CREATE TABLE blocks (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('citizen', 'device', 'phone')),
    -- What the checks look up: an account id, a device id, or a phone's
    -- blind index (never the number itself).
    subject_key   TEXT NOT NULL,
    -- What staff see: the account id, the device id, or the masked phone.
    subject_label TEXT NOT NULL,
    reason        TEXT NOT NULL,
    created_by    BIGINT NOT NULL REFERENCES accounts (id),
    request_id    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    lifted_at     TIMESTAMPTZ,
    lifted_by     BIGINT REFERENCES accounts (id),
    lift_reason   TEXT,
    -- A retried request finds the block its first attempt added.
    UNIQUE (created_by, request_id)
);
CREATE INDEX blocks_by_subject ON blocks (kind, subject_key, expires_at);

-- Probable-duplicate candidates are read by filing time.
CREATE INDEX complaints_by_created_at ON complaints (created_at);
