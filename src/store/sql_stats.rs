//! The statistics and knowledge-base SQL, shared by both engines like
//! `sql.rs`, whose helpers (`Row`, `to_db`, `from_db`, …) it uses. Where
//! the engines differ (time arithmetic, percentiles) the engine module's
//! `ENGINE` picks the fragment.
//!
//! TODO(stats): a year of a million cases takes 2–3 s on a small machine
//! (README, Statistics); a daily roll-up per unit and category, kept by the
//! supervision pass, would leave only the current day to count live.

/// The cohort filter: received in `[$1, $2)`, then the optional unit and
/// category conditions, whose parameters start at `$first`.
pub(crate) fn scope_condition(
    scope: &crate::domain::stats::CaseScope,
    first: usize,
) -> (String, Vec<String>) {
    let mut sql = String::from("c.created_at >= $1 AND c.created_at < $2");
    let mut binds = Vec::new();
    if let Some(units) = &scope.units {
        if units.is_empty() {
            sql.push_str(" AND FALSE");
        } else {
            let placeholders: Vec<String> = (0..units.len())
                .map(|i| format!("${}", first + i))
                .collect();
            sql.push_str(&format!(
                " AND COALESCE(c.lead_unit_id, c.owner_unit_id) IN ({})",
                placeholders.join(", ")
            ));
            binds.extend(units.iter().cloned());
        }
    }
    if let Some(prefix) = &scope.category_prefix {
        sql.push_str(&format!(
            " AND c.category_code LIKE ${}",
            first + binds.len()
        ));
        // Codes are digits; nothing in them needs escaping.
        binds.push(format!("{prefix}%"));
    }
    (sql, binds)
}

macro_rules! stats_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::knowledge::{
            EntryDraft, KnowledgeEntry, MatchResult, Offer, Unanswered,
        };
        use crate::domain::stats::{
            CaseCounts, CaseScope, Hotspot, HotspotDimension, Judgement, SpikeAlert, UnitCounts,
            nearest_rank_offset,
        };
        use crate::store::sql_stats::scope_condition;
        use crate::store::stats::{ExportRow, StatsStore, WindowCount};

        /// Whole seconds from receipt to the last resolution (or to closing
        /// when there was none).
        fn handling_seconds() -> &'static str {
            match ENGINE {
                crate::store::Engine::Postgres => {
                    "FLOOR(EXTRACT(EPOCH FROM (COALESCE(c.resolved_at, c.closed_at) - c.created_at)))::BIGINT"
                }
                crate::store::Engine::Sqlite => {
                    "((COALESCE(c.resolved_at, c.closed_at) - c.created_at) / 1000000)"
                }
            }
        }

        /// Closed, not merged away.
        const CLOSED: &str = "c.status = 'closed' AND c.merged_into IS NULL";
        /// Resolved within the deadline in force then; a case closed without
        /// a resolution judgement (a consultation answered at once) is on
        /// time when it closed by its deadline or had none.
        const ON_TIME: &str = "(c.resolved_on_time = TRUE OR (c.resolved_on_time IS NULL \
             AND (c.deadline IS NULL OR c.closed_at <= c.deadline)))";

        /// Binds the cohort's period as `$1` and `$2`, then `fixed` (already
        /// bound by the caller in `$3`, … order) and the scope's own values.
        /// Accepted for filing or rejected: the citizen is owed the decision.
        const DECIDED: &str = "(c.accepted_at IS NOT NULL OR c.status = 'rejected')";
        /// Resolved (or answered) at least once, not merged away.
        const RESOLVED: &str = "(c.resolved_at IS NOT NULL AND c.merged_into IS NULL)";
        /// The notices each rate counts, by notification kind. A notice is
        /// sent when a channel accepted one of its attempts, never merely
        /// because it was intended.
        const ACCEPTANCE_KINDS: &str = "'accepted', 'rejected'";
        const HANDLING_KINDS: &str = "'resolved', 'answered'";

        fn bind_scope<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            scope: &CaseScope,
            fixed: Option<DbTime>,
            extra: &'q [String],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            let mut query = query.bind(to_db(scope.from)).bind(to_db(scope.to));
            if let Some(value) = fixed {
                query = query.bind(value);
            }
            for value in extra {
                query = query.bind(value.as_str());
            }
            query
        }

        fn count(row: &Row, column: &str) -> anyhow::Result<u64> {
            let value: i64 = row.try_get(column)?;
            Ok(value.max(0) as u64)
        }

        fn entry_from_row(row: &Row) -> anyhow::Result<KnowledgeEntry> {
            Ok(KnowledgeEntry {
                id: row.try_get("id")?,
                question: row.try_get("question")?,
                answer: row.try_get("answer")?,
                category_code: row.try_get("category_code")?,
                retired: row.try_get("retired")?,
                updated_at: from_db(row.try_get("updated_at")?)?,
                updated_by: AccountId(row.try_get("updated_by")?),
                accepted_count: count(row, "accepted_count")?,
            })
        }

        const ENTRY_COLUMNS: &str = "k.id, k.question, k.answer, k.category_code, k.retired, \
             k.updated_at, k.updated_by, \
             (SELECT COUNT(*) FROM consultation_matches m WHERE m.accepted_entry_id = k.id) \
             AS accepted_count";

        fn offers_from_json(text: &str) -> anyhow::Result<Vec<Offer>> {
            let pairs: Vec<(i64, f64)> =
                serde_json::from_str(text).context("stored offers are not JSON")?;
            Ok(pairs
                .into_iter()
                .map(|(entry_id, score)| Offer { entry_id, score })
                .collect())
        }

        fn alert_from_row(row: &Row) -> anyhow::Result<SpikeAlert> {
            let dimension: String = row.try_get("dimension")?;
            let count_now = count(row, "count")?;
            let previous = count(row, "previous_count")?;
            Ok(SpikeAlert {
                id: row.try_get("id")?,
                hotspot: Hotspot {
                    dimension: parse_stored(&dimension, HotspotDimension::parse, "dimension")?,
                    key: row.try_get("key")?,
                    name: row.try_get("name")?,
                    judgement: Judgement {
                        count: count_now,
                        previous_count: previous,
                        baseline_mean: row.try_get("baseline_mean")?,
                        baseline_stddev: row.try_get("baseline_stddev")?,
                        rise: count_now as i64 - previous as i64,
                        score: row.try_get("score")?,
                        spike: true,
                    },
                },
                window_start: from_db(row.try_get("window_start")?)?,
                window_end: from_db(row.try_get("window_end")?)?,
                raised_at: from_db(row.try_get("raised_at")?)?,
            })
        }

        #[async_trait::async_trait]
        impl StatsStore for $store {
            async fn case_counts(
                &self,
                scope: &CaseScope,
                as_of: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<CaseCounts> {
                let (condition, binds) = scope_condition(scope, 4);
                let seconds = handling_seconds();
                let sum = |predicate: &str| {
                    format!("COALESCE(SUM(CASE WHEN {predicate} THEN 1 ELSE 0 END), 0)")
                };
                let sql = format!(
                    "SELECT COUNT(*) AS received, \
                       {accepted} AS accepted, {rejected} AS rejected, \
                       {withdrawn} AS withdrawn, {merged} AS merged, {closed} AS closed, \
                       {on_time} AS closed_on_time, {overdue} AS open_overdue, \
                       {one_day} AS within_one_day, {three_days} AS within_three_days, \
                       {rated} AS rated, {satisfied} AS satisfied, {rehandled} AS rehandled, \
                       {decided} AS decided, {resolved} AS resolved \
                     FROM complaints c WHERE {condition}",
                    accepted = sum("c.accepted_at IS NOT NULL"),
                    rejected = sum("c.status = 'rejected'"),
                    withdrawn = sum("c.status = 'withdrawn'"),
                    merged = sum("c.merged_into IS NOT NULL"),
                    closed = sum(CLOSED),
                    on_time = sum(&format!("{CLOSED} AND {ON_TIME}")),
                    overdue = sum(
                        "c.merged_into IS NULL \
                         AND c.status IN ('accepted', 'dispatched', 'in_progress') \
                         AND c.deadline < $3"
                    ),
                    one_day = sum(&format!("{CLOSED} AND {seconds} <= 86400")),
                    three_days = sum(&format!("{CLOSED} AND {seconds} <= 259200")),
                    rated = sum("c.rating IS NOT NULL"),
                    satisfied = sum("c.rating IN ('satisfied', 'basically_satisfied')"),
                    rehandled = sum(&format!("{CLOSED} AND c.rework_round > 0")),
                    decided = sum(DECIDED),
                    resolved = sum(RESOLVED),
                );
                let mut tx = begin_snapshot(&self.pool).await.context("Failed to begin")?;
                if ENGINE == crate::store::Engine::Postgres {
                    // The percentiles sort a year's handling times: in
                    // memory, not in temporary files.
                    sqlx::query("SET LOCAL work_mem = '64MB'")
                        .execute(&mut *tx)
                        .await
                        .context("Failed to size the sort")?;
                }
                let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let row = bind_scope(query, scope, Some(to_db(as_of)), &binds)
                    .fetch_one(&mut *tx)
                    .await
                    .context("Failed to count cases")?;
                let mut counts = CaseCounts {
                    received: count(&row, "received")?,
                    accepted: count(&row, "accepted")?,
                    rejected: count(&row, "rejected")?,
                    withdrawn: count(&row, "withdrawn")?,
                    merged: count(&row, "merged")?,
                    closed: count(&row, "closed")?,
                    closed_on_time: count(&row, "closed_on_time")?,
                    open_overdue: count(&row, "open_overdue")?,
                    closed_within_one_day: count(&row, "within_one_day")?,
                    closed_within_three_days: count(&row, "within_three_days")?,
                    rated: count(&row, "rated")?,
                    satisfied: count(&row, "satisfied")?,
                    rehandled: count(&row, "rehandled")?,
                    decided: count(&row, "decided")?,
                    resolved: count(&row, "resolved")?,
                    ..CaseCounts::default()
                };

                // Notices are counted from the (far fewer) notifications
                // that reached a channel, joined to the cohort, rather than
                // probed case by case.
                let (condition_3, binds_3) = scope_condition(scope, 3);
                let notice = |kinds: &str, case: &str, delivered: bool| {
                    format!(
                        "COUNT(DISTINCT CASE WHEN n.kind IN ({kinds}) AND {case}{} THEN c.id END)",
                        if delivered { " AND a.delivered_at IS NOT NULL" } else { "" }
                    )
                };
                let sql = format!(
                    "SELECT {} AS acceptance_sent, {} AS acceptance_delivered, \
                       {} AS handling_sent, {} AS handling_delivered \
                     FROM notifications n \
                     JOIN notification_attempts a ON a.notification_id = n.id AND a.outcome = 'sent' \
                     JOIN complaints c ON c.id = n.complaint_id \
                     WHERE n.citizen_id IS NOT NULL \
                       AND n.kind IN ({ACCEPTANCE_KINDS}, {HANDLING_KINDS}) AND {condition_3}",
                    notice(ACCEPTANCE_KINDS, DECIDED, false),
                    notice(ACCEPTANCE_KINDS, DECIDED, true),
                    notice(HANDLING_KINDS, RESOLVED, false),
                    notice(HANDLING_KINDS, RESOLVED, true),
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let row = bind_scope(query, scope, None, &binds_3)
                    .fetch_one(&mut *tx)
                    .await
                    .context("Failed to count notices sent")?;
                counts.acceptance_notice_sent = count(&row, "acceptance_sent")?;
                counts.acceptance_notice_delivered = count(&row, "acceptance_delivered")?;
                counts.handling_notice_sent = count(&row, "handling_sent")?;
                counts.handling_notice_delivered = count(&row, "handling_delivered")?;

                if counts.closed > 0 {
                    let (condition, binds) = scope_condition(scope, 3);
                    let (median, p90) = match ENGINE {
                        crate::store::Engine::Postgres => {
                            let sql = format!(
                                "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY {seconds}) \
                                   AS median, \
                                 percentile_disc(0.9) WITHIN GROUP (ORDER BY {seconds}) AS p90 \
                                 FROM complaints c WHERE {condition} AND {CLOSED}"
                            );
                            let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                            let row = bind_scope(query, scope, None, &binds)
                                .fetch_one(&mut *tx)
                                .await
                                .context("Failed to read handling-time percentiles")?;
                            let median: Option<i64> = row.try_get("median")?;
                            let p90: Option<i64> = row.try_get("p90")?;
                            (median.unwrap_or(0), p90.unwrap_or(0))
                        }
                        crate::store::Engine::Sqlite => {
                            let at = |percent: u32| {
                                let sql = format!(
                                    "SELECT {seconds} AS s FROM complaints c \
                                     WHERE {condition} AND {CLOSED} \
                                     ORDER BY s LIMIT 1 OFFSET {}",
                                    nearest_rank_offset(counts.closed, percent)
                                );
                                let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                                bind_scope(query, scope, None, &binds)
                            };
                            let median: i64 = at(50)
                                .fetch_one(&mut *tx)
                                .await
                                .context("Failed to read the median handling time")?
                                .try_get("s")?;
                            let p90: i64 = at(90)
                                .fetch_one(&mut *tx)
                                .await
                                .context("Failed to read the 90th percentile")?
                                .try_get("s")?;
                            (median, p90)
                        }
                    };
                    counts.median_handling_seconds = median;
                    counts.p90_handling_seconds = p90;
                }
                tx.commit().await.context("Failed to end a read")?;
                Ok(counts)
            }

            async fn unit_counts(&self, scope: &CaseScope) -> anyhow::Result<Vec<UnitCounts>> {
                let (condition, binds) = scope_condition(scope, 3);
                let sql = format!(
                    "SELECT e.unit_id, \
                       COALESCE(SUM(CASE WHEN e.kind = 'returned' THEN 1 ELSE 0 END), 0) \
                         AS returns, \
                       COALESCE(SUM(CASE WHEN e.kind = 'deadline_changed' THEN 1 ELSE 0 END), 0) \
                         AS extensions \
                     FROM complaint_events e JOIN complaints c ON c.id = e.complaint_id \
                     WHERE e.kind IN ('returned', 'deadline_changed') \
                       AND e.unit_id IS NOT NULL AND c.merged_into IS NULL AND {condition} \
                     GROUP BY e.unit_id ORDER BY e.unit_id"
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let rows = bind_scope(query, scope, None, &binds)
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to count returns and extensions")?;
                rows.iter()
                    .map(|row| {
                        Ok(UnitCounts {
                            unit_id: row.try_get("unit_id")?,
                            returns: count(row, "returns")?,
                            extensions: count(row, "extensions")?,
                        })
                    })
                    .collect()
            }

            async fn window_counts(
                &self,
                dimension: HotspotDimension,
                now: chrono::DateTime<chrono::Utc>,
                window: chrono::Duration,
                windows: u32,
            ) -> anyhow::Result<Vec<WindowCount>> {
                let key = match dimension {
                    HotspotDimension::Category => "SUBSTR(c.category_code, 1, 4)",
                    HotspotDimension::Area => "COALESCE(c.lead_unit_id, c.owner_unit_id)",
                };
                // Window 0 holds (now - window, now]; later ones go back.
                let bucket = match ENGINE {
                    crate::store::Engine::Postgres => {
                        "FLOOR(EXTRACT(EPOCH FROM ($2 - c.created_at)) * 1000000 / $3)::BIGINT"
                    }
                    crate::store::Engine::Sqlite => "(($2 - c.created_at) / $3)",
                };
                let sql = format!(
                    "SELECT w, k, COUNT(*) AS n FROM ( \
                       SELECT {bucket} AS w, {key} AS k \
                       FROM complaints c WHERE c.created_at > $1 AND c.created_at <= $2 \
                     ) t GROUP BY w, k ORDER BY w, k"
                );
                let micros = window.num_microseconds().context("window too long")?;
                let start = now - window * windows as i32;
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(to_db(start))
                    .bind(to_db(now))
                    .bind(micros)
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to count cases by window")?;
                rows.iter()
                    .map(|row| {
                        let w: i64 = row.try_get("w")?;
                        Ok(WindowCount {
                            window: w.clamp(0, i64::from(windows) - 1) as u32,
                            key: row.try_get("k")?,
                            count: count(row, "n")?,
                        })
                    })
                    .collect()
            }

            async fn export_rows(
                &self,
                scope: &CaseScope,
                after: Option<ComplaintId>,
                limit: u32,
            ) -> anyhow::Result<Vec<ExportRow>> {
                let (condition, binds) = scope_condition(scope, 5);
                let sql = format!(
                    "SELECT c.id, c.citizen_id, c.kind, c.channel, c.status, c.category_code, \
                       c.text, c.address, c.contact_phone_cipher, c.contact_phone_masked, \
                       c.lead_unit_id, c.created_at, c.accepted_at, c.deadline, c.resolved_at, \
                       c.closed_at, c.resolved_on_time, c.rating, c.rework_round, c.merged_into \
                     FROM complaints c WHERE {condition} AND c.id > $3 \
                     ORDER BY c.id LIMIT $4"
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(sql));
                let rows = query
                    .bind(to_db(scope.from))
                    .bind(to_db(scope.to))
                    .bind(after.map_or(0, |id| id.0))
                    .bind(i64::from(limit));
                let rows = binds
                    .iter()
                    .fold(rows, |query, value| query.bind(value.as_str()))
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read cases for export")?;
                rows.iter()
                    .map(|row| {
                        let rework: i32 = row.try_get("rework_round")?;
                        let merged: Option<i64> = row.try_get("merged_into")?;
                        Ok(ExportRow {
                            id: ComplaintId(row.try_get("id")?),
                            citizen_id: AccountId(row.try_get("citizen_id")?),
                            kind: row.try_get("kind")?,
                            channel: row.try_get("channel")?,
                            status: row.try_get("status")?,
                            category_code: row.try_get("category_code")?,
                            text: row.try_get("text")?,
                            address: row.try_get("address")?,
                            contact_phone_cipher: row.try_get("contact_phone_cipher")?,
                            contact_phone_masked: row.try_get("contact_phone_masked")?,
                            lead_unit_id: row.try_get("lead_unit_id")?,
                            created_at: from_db(row.try_get("created_at")?)?,
                            accepted_at: optional_time(row, "accepted_at")?,
                            deadline: optional_time(row, "deadline")?,
                            resolved_at: optional_time(row, "resolved_at")?,
                            closed_at: optional_time(row, "closed_at")?,
                            resolved_on_time: row.try_get("resolved_on_time")?,
                            rating: row.try_get("rating")?,
                            rework_round: rework.max(0) as u32,
                            merged_into: merged.map(ComplaintId),
                        })
                    })
                    .collect()
            }

            async fn record_audit(&self, audit: &AuditDraft) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit an audit record")?;
                Ok(())
            }

            async fn record_spike(&self, alert: &SpikeAlert, alert_day: &str) -> anyhow::Result<bool> {
                let judged = &alert.hotspot.judgement;
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO spike_alerts (dimension, key, name, window_start, window_end, \
                       count, previous_count, baseline_mean, baseline_stddev, score, raised_at, \
                       alert_day) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (dimension, key, alert_day) DO NOTHING RETURNING id",
                )
                .bind(alert.hotspot.dimension.as_str())
                .bind(&alert.hotspot.key)
                .bind(&alert.hotspot.name)
                .bind(to_db(alert.window_start))
                .bind(to_db(alert.window_end))
                .bind(judged.count as i64)
                .bind(judged.previous_count as i64)
                .bind(judged.baseline_mean)
                .bind(judged.baseline_stddev)
                .bind(judged.score)
                .bind(to_db(alert.raised_at))
                .bind(alert_day)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to record a spike")?;
                Ok(id.is_some())
            }

            async fn spike_alerts(
                &self,
                before: Option<i64>,
                limit: u32,
            ) -> anyhow::Result<Vec<SpikeAlert>> {
                let rows = sqlx::query(
                    "SELECT id, dimension, key, name, window_start, window_end, count, \
                       previous_count, baseline_mean, baseline_stddev, score, raised_at \
                     FROM spike_alerts WHERE id < $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read spike alerts")?;
                rows.iter().map(alert_from_row).collect()
            }

            async fn save_knowledge_entry(
                &self,
                id: Option<i64>,
                draft: &EntryDraft,
                by: AccountId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<KnowledgeEntry>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let id: Option<i64> = match id {
                    None => sqlx::query_scalar(
                        "INSERT INTO knowledge_entries (question, answer, category_code, \
                           created_at, updated_at, updated_by) \
                         VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
                    )
                    .bind(&draft.question)
                    .bind(&draft.answer)
                    .bind(&draft.category_code)
                    .bind(to_db(now))
                    .bind(by.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to add a knowledge entry")?,
                    Some(id) => sqlx::query_scalar(
                        "UPDATE knowledge_entries SET question = $2, answer = $3, \
                           category_code = $4, updated_at = $5, updated_by = $6 \
                         WHERE id = $1 RETURNING id",
                    )
                    .bind(id)
                    .bind(&draft.question)
                    .bind(&draft.answer)
                    .bind(&draft.category_code)
                    .bind(to_db(now))
                    .bind(by.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to change a knowledge entry")?,
                };
                let entry = match id {
                    Some(id) => {
                        let sql = format!("SELECT {ENTRY_COLUMNS} FROM knowledge_entries k WHERE k.id = $1");
                        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await
                            .context("Failed to read a knowledge entry")?;
                        Some(entry_from_row(&row)?)
                    }
                    None => None,
                };
                tx.commit().await.context("Failed to commit a knowledge entry")?;
                Ok(entry)
            }

            async fn retire_knowledge_entry(
                &self,
                id: i64,
                by: AccountId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<KnowledgeEntry>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                sqlx::query(
                    "UPDATE knowledge_entries SET retired = TRUE, updated_at = $2, updated_by = $3 \
                     WHERE id = $1 AND NOT retired",
                )
                .bind(id)
                .bind(to_db(now))
                .bind(by.0)
                .execute(&mut *tx)
                .await
                .context("Failed to retire a knowledge entry")?;
                let sql = format!("SELECT {ENTRY_COLUMNS} FROM knowledge_entries k WHERE k.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to read a knowledge entry")?;
                tx.commit().await.context("Failed to commit a retirement")?;
                row.as_ref().map(entry_from_row).transpose()
            }

            async fn knowledge_entries(
                &self,
                include_retired: bool,
                after: Option<i64>,
                limit: u32,
            ) -> anyhow::Result<Vec<KnowledgeEntry>> {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM knowledge_entries k \
                     WHERE k.id > $1 AND ($2 OR NOT k.retired) ORDER BY k.id LIMIT $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after.unwrap_or(0))
                    .bind(include_retired)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read knowledge entries")?;
                rows.iter().map(entry_from_row).collect()
            }

            async fn record_match(
                &self,
                complaint: ComplaintId,
                result: &MatchResult,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Vec<Offer>> {
                let pairs: Vec<(i64, f64)> = result
                    .offers
                    .iter()
                    .map(|offer| (offer.entry_id, offer.score))
                    .collect();
                sqlx::query(
                    "INSERT INTO consultation_matches (complaint_id, best_score, offers, offered, \
                       matched_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (complaint_id) DO NOTHING",
                )
                .bind(complaint.0)
                .bind(result.best_score)
                .bind(serde_json::to_string(&pairs)?)
                .bind(!pairs.is_empty())
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to record a consultation's match")?;
                self.recorded_offers(complaint)
                    .await?
                    .context("a recorded match vanished")
            }

            async fn recorded_offers(&self, complaint: ComplaintId) -> anyhow::Result<Option<Vec<Offer>>> {
                let offers: Option<String> = sqlx::query_scalar(
                    "SELECT offers FROM consultation_matches WHERE complaint_id = $1",
                )
                .bind(complaint.0)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a consultation's match")?;
                offers.as_deref().map(offers_from_json).transpose()
            }

            async fn accept_offer(&self, complaint: ComplaintId, entry_id: i64) -> anyhow::Result<()> {
                sqlx::query(
                    "UPDATE consultation_matches SET accepted_entry_id = $2 \
                     WHERE complaint_id = $1 AND accepted_entry_id IS NULL",
                )
                .bind(complaint.0)
                .bind(entry_id)
                .execute(&self.pool)
                .await
                .context("Failed to record an accepted answer")?;
                Ok(())
            }

            async fn unanswered_consultations(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> anyhow::Result<Vec<Unanswered>> {
                let rows = sqlx::query(
                    "SELECT c.id, c.text, c.category_code, m.best_score \
                     FROM consultation_matches m JOIN complaints c ON c.id = m.complaint_id \
                     WHERE NOT m.offered AND m.matched_at >= $1 AND m.matched_at < $2 \
                     ORDER BY m.matched_at DESC, c.id DESC LIMIT $3",
                )
                .bind(to_db(from))
                .bind(to_db(to))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read unanswered consultations")?;
                rows.iter()
                    .map(|row| {
                        Ok(Unanswered {
                            complaint_id: ComplaintId(row.try_get("id")?),
                            text: row.try_get("text")?,
                            category_code: row.try_get("category_code")?,
                            best_score: row.try_get("best_score")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use stats_store_impl;
