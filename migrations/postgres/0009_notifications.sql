-- Notifications: an outbox row per citizen or unit to tell about a timeline
-- event, written in the same transaction as the event; every attempt to
-- send one through an outside channel and its outcome; the WeChat
-- subscription grants citizens report; and their channel preferences.

CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    complaint_id    BIGINT NOT NULL,
    sequence        BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    -- Exactly one recipient: a citizen, or a unit's staff.
    citizen_id      BIGINT REFERENCES accounts (id),
    unit_id         TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    -- pending: to be sent; sent: an outside channel accepted it; in_app: no
    -- outside channel could take it, it is only inside the system; failed:
    -- every channel refused or retries ran out; unconfirmed: a call may have
    -- reached a channel without an answer, so it is not repeated.
    state           TEXT NOT NULL CHECK (state IN (
                        'pending', 'sent', 'in_app', 'failed', 'unconfirmed')),
    channel         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- The sender worker holding the row, and until when.
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    settled_at      TIMESTAMPTZ,
    failure_reason  TEXT,
    read_at         TIMESTAMPTZ,
    FOREIGN KEY (complaint_id, sequence) REFERENCES complaint_events (complaint_id, sequence),
    CHECK ((citizen_id IS NULL) <> (unit_id IS NULL)),
    -- One notification per event.
    UNIQUE (complaint_id, sequence)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_inbox ON notifications (citizen_id, id DESC) WHERE citizen_id IS NOT NULL;
CREATE INDEX notifications_by_time ON notifications (created_at);

CREATE TABLE notification_attempts (
    id              BIGSERIAL PRIMARY KEY,
    notification_id BIGINT NOT NULL REFERENCES notifications (id),
    channel         TEXT NOT NULL CHECK (channel IN ('wechat', 'sms', 'webhook')),
    worker          TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    -- NULL while the call is under way.
    outcome         TEXT CHECK (outcome IN ('sent', 'transient', 'permanent', 'unknown')),
    -- The channel's error code or reason; never personal data.
    detail          TEXT,
    -- What the channel calls the message (an SMS serial number), for its
    -- delivery reports.
    provider_ref    TEXT,
    delivered_at    TIMESTAMPTZ,
    delivery_status TEXT
);
CREATE INDEX notification_attempts_by_notification ON notification_attempts (notification_id);
CREATE INDEX notification_attempts_by_ref ON notification_attempts (channel, provider_ref)
    WHERE provider_ref IS NOT NULL;

-- One row per one-time grant (wx.requestSubscribeMessage "accept"); a
-- long-term subscription keeps one row that is never spent.
CREATE TABLE subscription_grants (
    id              BIGSERIAL PRIMARY KEY,
    account_id      BIGINT NOT NULL REFERENCES accounts (id),
    app_id          TEXT NOT NULL,
    template_id     TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    granted_at      TIMESTAMPTZ NOT NULL,
    spent_at        TIMESTAMPTZ,
    notification_id BIGINT REFERENCES notifications (id),
    revoked_at      TIMESTAMPTZ,
    -- A retried report adds nothing.
    UNIQUE (account_id, request_id, template_id)
);
CREATE INDEX subscription_grants_unspent ON subscription_grants (account_id, app_id, template_id)
    WHERE spent_at IS NULL AND revoked_at IS NULL;

CREATE TABLE notification_preferences (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id),
    wechat     BOOLEAN NOT NULL,
    sms        BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
