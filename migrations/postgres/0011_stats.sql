-- Instant answers (秒回) and the district's figures.

-- Questions and answers kept by staff; consultations are matched against
-- the questions as they are filed. Entries are retired, never deleted, so
-- that a consultation's accepted answer stays readable.
CREATE TABLE knowledge_entries (
    id            BIGSERIAL PRIMARY KEY,
    question      TEXT NOT NULL,
    answer        TEXT NOT NULL,
    category_code TEXT,
    retired       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    updated_by    BIGINT NOT NULL REFERENCES accounts (id)
);

-- What matching offered a consultation when it was filed: the offers as
-- JSON [[entry id, score], …], best first, and the best score reached
-- whether offered or not. Hot consultations without an answer are those
-- with no offer.
CREATE TABLE consultation_matches (
    complaint_id      BIGINT PRIMARY KEY REFERENCES complaints (id),
    best_score        DOUBLE PRECISION NOT NULL,
    offers            TEXT NOT NULL,
    offered           BOOLEAN NOT NULL,
    accepted_entry_id BIGINT REFERENCES knowledge_entries (id),
    matched_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX consultation_matches_unanswered ON consultation_matches (matched_at)
    WHERE NOT offered;
CREATE INDEX consultation_matches_by_entry ON consultation_matches (accepted_entry_id)
    WHERE accepted_entry_id IS NOT NULL;

-- Spikes the supervision pass saw: one per key and district day, however
-- many replicas look.
CREATE TABLE spike_alerts (
    id              BIGSERIAL PRIMARY KEY,
    dimension       TEXT NOT NULL CHECK (dimension IN ('category', 'area')),
    key             TEXT NOT NULL,
    name            TEXT NOT NULL,
    window_start    TIMESTAMPTZ NOT NULL,
    window_end      TIMESTAMPTZ NOT NULL,
    count           BIGINT NOT NULL,
    previous_count  BIGINT NOT NULL,
    baseline_mean   DOUBLE PRECISION NOT NULL,
    baseline_stddev DOUBLE PRECISION NOT NULL,
    score           DOUBLE PRECISION NOT NULL,
    raised_at       TIMESTAMPTZ NOT NULL,
    alert_day       TEXT NOT NULL,
    UNIQUE (dimension, key, alert_day)
);

-- Returns and extensions are counted from the timeline by kind.
CREATE INDEX complaint_events_by_kind ON complaint_events (kind, complaint_id)
    WHERE kind IN ('returned', 'deadline_changed');
