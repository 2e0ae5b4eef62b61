-- Loads one million synthetic cases received in 2025 into a migrated,
-- otherwise empty PostgreSQL database, for measuring StatsService at scale:
--   psql "$HUYING_DATABASE_URL" -f scripts/stats-million.sql
--   huying-replay --measure-only   (with HUYING_DATABASE_URL set)
-- Never run it against a database that holds real cases.
-- One million cases received in 2025 (district time), shaped like the
-- replayed year: most closed on time, some late, open, rejected, withdrawn.
INSERT INTO accounts (provider, subject, role, display_name, created_at, updated_at)
VALUES ('bulk', 'bulk-citizen', 'citizen', 'bulk', now(), now());
INSERT INTO complaints (
    citizen_id, request_id, request_fingerprint, kind, channel, status, text, category_code,
    created_at, updated_at, last_sequence, version, owner_unit_id, lead_unit_id,
    accepted_at, deadline, resolved_at, resolved_on_time, closed_at, rating, rework_round)
SELECT (SELECT id FROM accounts WHERE subject = 'bulk-citizen'),
       'bulk-' || i, '\x00'::bytea, 'complaint', 'mini_program',
       CASE WHEN r < 0.02 THEN 'withdrawn' WHEN r < 0.05 THEN 'rejected'
            WHEN r < 0.06 THEN 'dispatched' ELSE 'closed' END,
       '批量生成的诉求', (ARRAY['010101','010102','011006','020101','020103','030101','040101'])[1 + i % 7],
       t, t, 1, 1, 'centre',
       CASE WHEN r >= 0.05 THEN (ARRAY['sd:pingshan/municipal','cm:heping','dept:ps_water','sd:kengzi/municipal'])[1 + i % 4] END,
       CASE WHEN r >= 0.05 THEN t + interval '30 minutes' END,
       CASE WHEN r >= 0.05 THEN t + interval '4 days' END,
       CASE WHEN r >= 0.06 THEN t + (h || ' hours')::interval END,
       CASE WHEN r >= 0.06 THEN r2 >= 0.01 END,
       CASE WHEN r >= 0.06 THEN t + (h || ' hours')::interval + interval '1 day' END,
       CASE WHEN r >= 0.06 THEN (ARRAY['satisfied','satisfied','satisfied','basically_satisfied','unsatisfied'])[1 + i % 5] END,
       CASE WHEN r >= 0.06 AND i % 33 = 0 THEN 1 ELSE 0 END
FROM (
    SELECT i, random() AS r, random() AS r2,
           (1 + floor(random() * 240))::int AS h,
           timestamptz '2024-12-31 16:00:00+00' + (i * interval '31.536 seconds') AS t
    FROM generate_series(1, 1000000) AS i
) g;
INSERT INTO complaint_events (complaint_id, sequence, kind, status, message, visible_to_citizen, unit_id, occurred_at)
SELECT id, 2, 'returned', 'accepted', '退单', false, lead_unit_id, created_at + interval '1 hour'
FROM complaints WHERE id % 40 = 0 AND lead_unit_id IS NOT NULL;
VACUUM ANALYZE;
