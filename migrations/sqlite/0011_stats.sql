-- Instant answers (秒回) and the district's figures.
-- Times are INTEGER microseconds since the Unix epoch, as elsewhere.

-- Questions and answers kept by staff; consultations are matched against
-- the questions as they are filed. Entries are retired, never deleted, so
-- that a consultation's accepted answer stays readable.
CREATE TABLE knowledge_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    question      TEXT NOT NULL,
    answer        TEXT NOT NULL,
    category_code TEXT,
    retired       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    INTEGER NOT NULL REFERENCES accounts (id)
);

-- What matching offered a consultation when it was filed: the offers as
-- JSON [[entry id, score], …], best first, and the best score reached
-- whether offered or not. Hot consultations without an answer are those
-- with no offer.
CREATE TABLE consultation_matches (
    complaint_id      INTEGER PRIMARY KEY REFERENCES complaints (id),
    best_score        REAL NOT NULL,
    offers            TEXT NOT NULL,
    offered           BOOLEAN NOT NULL,
    accepted_entry_id INTEGER REFERENCES knowledge_entries (id),
    matched_at        INTEGER NOT NULL
);
CREATE INDEX consultation_matches_unanswered ON consultation_matches (matched_at)
    WHERE NOT offered;
CREATE INDEX consultation_matches_by_entry ON consultation_matches (accepted_entry_id)
    WHERE accepted_entry_id IS NOT NULL;

-- Spikes the supervision pass saw: one per key and district day, however
-- many replicas look.
CREATE TABLE spike_alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dimension       TEXT NOT NULL CHECK (dimension IN ('category', 'area')),
    key             TEXT NOT NULL,
    name            TEXT NOT NULL,
    window_start    INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    previous_count  INTEGER NOT NULL,
    baseline_mean   REAL NOT NULL,
    baseline_stddev REAL NOT NULL,
    score           REAL NOT NULL,
    raised_at       INTEGER NOT NULL,
    alert_day       TEXT NOT NULL,
    UNIQUE (dimension, key, alert_day)
);

-- Returns and extensions are counted from the timeline by kind.
CREATE INDEX complaint_events_by_kind ON complaint_events (kind, complaint_id)
    WHERE kind IN ('returned', 'deadline_changed');
