-- Case handling: the directory, the working-day calendar, assignments,
-- deadlines, extensions, idempotent staff actions and supervision marks.
-- Same tables as PostgreSQL; times are microseconds, days are yyyy-mm-dd text.
CREATE TABLE units (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN (
                   'centre', 'fallback', 'subdistrict', 'subdistrict_office', 'community',
                   'department', 'utility', 'contractor')),
    name_zh    TEXT NOT NULL,
    name_en    TEXT NOT NULL DEFAULT '',
    parent_id  TEXT REFERENCES units (id),
    updated_at INTEGER NOT NULL
);

-- Years whose official holiday notice is loaded, and that notice's
-- exceptions to the weekday rule.
CREATE TABLE calendar_years (
    year      INTEGER PRIMARY KEY,
    loaded_at INTEGER NOT NULL
);
CREATE TABLE calendar_exceptions (
    day  TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('off', 'work'))
);

ALTER TABLE complaints ADD COLUMN owner_unit_id TEXT;
ALTER TABLE complaints ADD COLUMN lead_unit_id TEXT;
ALTER TABLE complaints ADD COLUMN urgency TEXT;
ALTER TABLE complaints ADD COLUMN accepted_at INTEGER;
ALTER TABLE complaints ADD COLUMN deadline_provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE complaints ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE complaints ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE complaints ADD COLUMN rework_round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE complaints ADD COLUMN resolution_summary TEXT;
ALTER TABLE complaints ADD COLUMN resolved_at INTEGER;
ALTER TABLE complaints ADD COLUMN resolved_on_time INTEGER;
ALTER TABLE complaints ADD COLUMN closed_at INTEGER;
ALTER TABLE complaints ADD COLUMN merged_into INTEGER REFERENCES complaints (id);
-- A probable duplicate found at filing, for the dispatcher to decide on.
ALTER TABLE complaints ADD COLUMN duplicate_hint INTEGER REFERENCES complaints (id);
ALTER TABLE complaints ADD COLUMN extension_unit_id TEXT;
ALTER TABLE complaints ADD COLUMN extension_until INTEGER;
ALTER TABLE complaints ADD COLUMN extension_reason TEXT;
CREATE INDEX complaints_active_by_deadline ON complaints (status, deadline);
CREATE INDEX complaints_by_category_recent ON complaints (category_code, created_at);
CREATE INDEX complaints_by_survivor ON complaints (merged_into) WHERE merged_into IS NOT NULL;

ALTER TABLE complaint_events ADD COLUMN unit_id TEXT;

CREATE TABLE case_assignments (
    complaint_id INTEGER NOT NULL REFERENCES complaints (id),
    unit_id      TEXT NOT NULL,
    is_lead      INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('assigned', 'reported', 'returned')),
    note         TEXT,
    assigned_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (complaint_id, unit_id)
);
CREATE INDEX case_assignments_by_unit ON case_assignments (unit_id, complaint_id);

-- A staff action's request id: a retry finds it and does not act twice.
CREATE TABLE staff_requests (
    actor_id     INTEGER NOT NULL REFERENCES accounts (id),
    request_id   TEXT NOT NULL,
    complaint_id INTEGER NOT NULL REFERENCES complaints (id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (actor_id, request_id)
);

-- Each reminder, overdue mark and escalation fires once, whichever replica's
-- supervision loop gets there first.
CREATE TABLE supervision_marks (
    complaint_id INTEGER NOT NULL REFERENCES complaints (id),
    mark         TEXT NOT NULL,
    fired_at     INTEGER NOT NULL,
    PRIMARY KEY (complaint_id, mark)
);
