-- Red envelopes: the reward policy, one decision per complaint accepted
-- for filing, the budgets per period, the double-entry ledger and the
-- transfer bills sent to the payment provider.

-- One row: the policy in force. Amounts are fen.
CREATE TABLE reward_policy (
    id                      SMALLINT PRIMARY KEY CHECK (id = 1),
    min_amount_fen          BIGINT NOT NULL,
    max_amount_fen          BIGINT NOT NULL,
    daily_cap_per_citizen   INTEGER NOT NULL,
    monthly_cap_per_citizen INTEGER NOT NULL,
    daily_budget_fen        BIGINT NOT NULL,
    monthly_budget_fen      BIGINT NOT NULL,
    claim_days              INTEGER NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    CHECK (0 < min_amount_fen AND min_amount_fen <= max_amount_fen)
);

INSERT INTO reward_policy VALUES (1, 100, 2000, 3, 20, 1000000, 20000000, 30, now());

-- Money committed to envelopes per budget period ('day:2026-12-03',
-- 'month:2026-12', district time); the rows are locked by each grant.
CREATE TABLE reward_budgets (
    period        TEXT PRIMARY KEY,
    committed_fen BIGINT NOT NULL DEFAULT 0 CHECK (committed_fen >= 0)
);

-- The decision for a complaint accepted for filing: granted or not, why,
-- and where its money is. At most one per complaint, whatever happens.
CREATE TABLE red_envelopes (
    id            BIGSERIAL PRIMARY KEY,
    complaint_id  BIGINT NOT NULL UNIQUE REFERENCES complaints (id),
    citizen_id    BIGINT NOT NULL REFERENCES accounts (id),
    amount_fen    BIGINT NOT NULL CHECK (amount_fen >= 0),
    state         TEXT NOT NULL CHECK (state IN ('not_granted', 'granted', 'claiming',
                      'paid', 'cancelled', 'expired', 'failed')),
    reason        TEXT NOT NULL,
    day           TEXT NOT NULL,
    month         TEXT NOT NULL,
    decided_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    claim_until   TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    paid_at       TIMESTAMPTZ,
    audit_flag    TEXT
);

CREATE INDEX red_envelopes_citizen ON red_envelopes (citizen_id, id);
CREATE INDEX red_envelopes_state ON red_envelopes (state, claim_until);
CREATE INDEX red_envelopes_day ON red_envelopes (day);

-- Double entry: each movement of an envelope's money is one entry whose
-- postings sum to zero. An envelope is granted, paid and released at most
-- once each.
CREATE TABLE ledger_entries (
    id          BIGSERIAL PRIMARY KEY,
    envelope_id BIGINT NOT NULL REFERENCES red_envelopes (id),
    kind        TEXT NOT NULL CHECK (kind IN ('grant', 'payout', 'release')),
    occurred_at TIMESTAMPTZ NOT NULL,
    UNIQUE (envelope_id, kind)
);

CREATE TABLE ledger_postings (
    id         BIGSERIAL PRIMARY KEY,
    entry_id   BIGINT NOT NULL REFERENCES ledger_entries (id),
    account    TEXT NOT NULL CHECK (account IN ('budget', 'owed', 'paid_out')),
    amount_fen BIGINT NOT NULL
);

CREATE INDEX ledger_postings_entry ON ledger_postings (entry_id);

-- One transfer attempt per row; out_bill_no is derived from the envelope
-- and the attempt, so a retry is the same transfer.
CREATE TABLE payout_bills (
    out_bill_no      TEXT PRIMARY KEY,
    envelope_id      BIGINT NOT NULL REFERENCES red_envelopes (id),
    attempt          INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('creating', 'waiting', 'cancelling',
                         'success', 'closed')),
    transfer_bill_no TEXT,
    package_info     TEXT,
    fail_reason      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    UNIQUE (envelope_id, attempt)
);

CREATE INDEX payout_bills_open ON payout_bills (state, lease_until);

-- Notifications already applied, so a replayed one changes nothing.
CREATE TABLE payout_notifications (
    id          TEXT PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);
