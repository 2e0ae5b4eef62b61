//! The staff side's SQL, shared by both engines like `sql.rs`, whose
//! helpers (row decoders, `write_change`, `insert_event`, …) it uses: both
//! macros expand into the same engine module.

macro_rules! case_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::calendar::DayKind;
        use crate::domain::case::{Assignment, AssignmentStatus, Case};
        use crate::domain::directory::{Unit, UnitKind};
        use crate::store::{CaseStore, DuplicateQuery, MarkEffect, QueueQuery, StaffOutcome};

        fn assignment_from_row(row: &Row) -> anyhow::Result<Assignment> {
            let status: String = row.try_get("status")?;
            Ok(Assignment {
                unit_id: row.try_get("unit_id")?,
                lead: row.try_get("is_lead")?,
                status: parse_stored(&status, AssignmentStatus::parse, "assignment status")?,
                note: row.try_get("note")?,
                assigned_at: from_db(row.try_get("assigned_at")?)?,
                updated_at: from_db(row.try_get("updated_at")?)?,
            })
        }

        /// The assignments of the given cases, by case id.
        async fn assignments_of<'e, E>(
            executor: E,
            ids: &[i64],
        ) -> anyhow::Result<std::collections::HashMap<i64, Vec<Assignment>>>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            let mut sql = sqlx::QueryBuilder::<$db>::new(
                "SELECT complaint_id, unit_id, is_lead, status, note, assigned_at, updated_at \
                 FROM case_assignments WHERE complaint_id IN (",
            );
            let mut separated = sql.separated(", ");
            for id in ids {
                separated.push_bind(*id);
            }
            sql.push(") ORDER BY complaint_id, is_lead DESC, unit_id");
            let rows = sql
                .build()
                .fetch_all(executor)
                .await
                .context("Failed to read assignments")?;

            let mut by_case: std::collections::HashMap<i64, Vec<Assignment>> = Default::default();
            for row in &rows {
                let id: i64 = row.try_get("complaint_id")?;
                by_case.entry(id).or_default().push(assignment_from_row(row)?);
            }
            Ok(by_case)
        }

        fn unit_from_row(row: &Row) -> anyhow::Result<Unit> {
            let kind: String = row.try_get("kind")?;
            Ok(Unit {
                id: row.try_get("id")?,
                kind: parse_stored(&kind, UnitKind::parse, "unit kind")?,
                name_zh: row.try_get("name_zh")?,
                name_en: row.try_get("name_en")?,
                parent_id: row.try_get("parent_id")?,
            })
        }

        /// Inserts or updates units inside a caller's transaction.
        async fn save_units_in(
            tx: &mut Tx,
            units: &[Unit],
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            for unit in units {
                sqlx::query(
                    "INSERT INTO units (id, kind, name_zh, name_en, parent_id, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
                       name_zh = excluded.name_zh, name_en = excluded.name_en, \
                       parent_id = excluded.parent_id, updated_at = excluded.updated_at",
                )
                .bind(&unit.id)
                .bind(unit.kind.as_str())
                .bind(&unit.name_zh)
                .bind(&unit.name_en)
                .bind(&unit.parent_id)
                .bind(to_db(now))
                .execute(&mut **tx)
                .await
                .with_context(|| format!("Failed to save unit {}", unit.id))?;
            }
            Ok(())
        }

        /// Replaces one year's notice inside a caller's transaction.
        async fn save_calendar_year_in(
            tx: &mut Tx,
            year: i32,
            exceptions: &[(chrono::NaiveDate, DayKind)],
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            let first = chrono::NaiveDate::from_ymd_opt(year, 1, 1).context("bad year")?;
            let last = chrono::NaiveDate::from_ymd_opt(year, 12, 31).context("bad year")?;
            sqlx::query("DELETE FROM calendar_exceptions WHERE day >= $1 AND day <= $2")
                .bind(first)
                .bind(last)
                .execute(&mut **tx)
                .await
                .context("Failed to clear a calendar year")?;
            for (day, kind) in exceptions {
                let kind = match kind {
                    DayKind::Off => "off",
                    DayKind::Work => "work",
                };
                sqlx::query("INSERT INTO calendar_exceptions (day, kind) VALUES ($1, $2)")
                    .bind(*day)
                    .bind(kind)
                    .execute(&mut **tx)
                    .await
                    .context("Failed to store a calendar day")?;
            }
            sqlx::query(
                "INSERT INTO calendar_years (year, loaded_at) VALUES ($1, $2) \
                 ON CONFLICT (year) DO UPDATE SET loaded_at = excluded.loaded_at",
            )
            .bind(year)
            .bind(to_db(now))
            .execute(&mut **tx)
            .await
            .context("Failed to record a calendar year")?;
            Ok(())
        }

        /// Changes a staff account inside a caller's transaction.
        async fn update_staff_in(
            tx: &mut Tx,
            account: &Account,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<Option<Account>> {
            let row = sqlx::query(
                "UPDATE accounts SET role = $2, unit_id = $3, display_name = $4, updated_at = $5 \
                 WHERE id = $1 AND role <> 'citizen' \
                 RETURNING id, role, unit_id, display_name",
            )
            .bind(account.id.0)
            .bind(account.role.as_str())
            .bind(&account.unit_id)
            .bind(&account.display_name)
            .bind(to_db(now))
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to update a staff account")?;
            row.as_ref().map(account_from_row).transpose()
        }

        #[async_trait::async_trait]
        impl CaseStore for $store {
            async fn case(&self, id: ComplaintId) -> anyhow::Result<Option<Case>> {
                // One snapshot for the complaint and its assignments: read
                // apart, a dispatch committing in between would pair the
                // old version with the new units.
                let mut tx = begin_snapshot(&self.pool).await.context("Failed to begin")?;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to read a complaint")?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let complaint = complaint_from_row(&row)?;
                let mut assignments = assignments_of(&mut *tx, &[id.0]).await?;
                tx.commit().await.context("Failed to end a read")?;
                Ok(Some(Case {
                    assignments: assignments.remove(&id.0).unwrap_or_default(),
                    complaint,
                }))
            }

            async fn with_assignments(&self, complaints: Vec<Complaint>) -> anyhow::Result<Vec<Case>> {
                if complaints.is_empty() {
                    return Ok(Vec::new());
                }
                // One query for the whole page rather than one per case.
                let ids: Vec<i64> = complaints.iter().map(|c| c.id.0).collect();
                let mut by_case = assignments_of(&self.pool, &ids).await?;
                Ok(complaints
                    .into_iter()
                    .map(|complaint| Case {
                        assignments: by_case.remove(&complaint.id.0).unwrap_or_default(),
                        complaint,
                    })
                    .collect())
            }

            async fn apply_staff_change(
                &self,
                actor: AccountId,
                request_id: &RequestId,
                change: &ComplaintChange,
            ) -> anyhow::Result<StaffOutcome> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let claimed = sqlx::query(
                    "INSERT INTO staff_requests (actor_id, request_id, complaint_id, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (actor_id, request_id) DO NOTHING",
                )
                .bind(actor.0)
                .bind(request_id.as_str())
                .bind(change.id().0)
                .bind(to_db(change.after.updated_at))
                .execute(&mut *tx)
                .await
                .context("Failed to record a staff request")?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await.context("Failed to roll back")?;
                    let done = self.staff_request(actor, request_id).await?;
                    return Ok(StaffOutcome::Replayed(done.context("a claimed request vanished")?));
                }

                let Some((_, events)) = write_change(&mut tx, change).await? else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(StaffOutcome::Stale);
                };
                // A complaint's red envelope is decided with the decision itself.
                if let Some(effect) = &change.reward {
                    apply_reward_effect(&mut tx, change, effect).await?;
                }
                tx.commit().await.context("Failed to commit a staff action")?;
                Ok(StaffOutcome::Applied { events })
            }

            async fn staff_request(
                &self,
                actor: AccountId,
                request_id: &RequestId,
            ) -> anyhow::Result<Option<ComplaintId>> {
                let id: Option<i64> = sqlx::query_scalar(
                    "SELECT complaint_id FROM staff_requests WHERE actor_id = $1 AND request_id = $2",
                )
                .bind(actor.0)
                .bind(request_id.as_str())
                .fetch_optional(&self.pool)
                .await
                .context("Failed to look up a staff request")?;
                Ok(id.map(ComplaintId))
            }

            async fn fire_mark(
                &self,
                id: ComplaintId,
                mark: &str,
                expected_status: ComplaintStatus,
                effect: &MarkEffect,
                event: &EventDraft,
            ) -> anyhow::Result<Option<Vec<ComplaintEvent>>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let claimed = sqlx::query(
                    "INSERT INTO supervision_marks (complaint_id, mark, fired_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (complaint_id, mark) DO NOTHING",
                )
                .bind(id.0)
                .bind(mark)
                .bind(to_db(event.occurred_at))
                .execute(&mut *tx)
                .await
                .context("Failed to claim a supervision mark")?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }

                let level = i32::try_from(effect.escalation_level.unwrap_or(0))?;
                let updated = sqlx::query(
                    "UPDATE complaints SET overdue = (overdue OR $3), \
                       escalation_level = CASE WHEN $4 > escalation_level THEN $4 ELSE escalation_level END, \
                       status = CASE WHEN $5 THEN 'closed' ELSE status END, \
                       closed_at = CASE WHEN $5 THEN $6 ELSE closed_at END, \
                       version = version + CASE WHEN $5 THEN 1 ELSE 0 END, \
                       last_sequence = last_sequence + 1, updated_at = $6 \
                     WHERE id = $1 AND status = $2 \
                     RETURNING last_sequence",
                )
                .bind(id.0)
                .bind(expected_status.as_str())
                .bind(effect.set_overdue)
                .bind(level)
                .bind(effect.close)
                .bind(to_db(event.occurred_at))
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to apply a supervision mark")?;
                let Some(row) = updated else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                };

                let mut events = vec![insert_event(&mut tx, id, row.try_get("last_sequence")?, event).await?];
                if event.visible_to_citizen {
                    events.extend(mirror_to_merged(&mut tx, id, event).await?);
                }
                tx.commit().await.context("Failed to commit a supervision mark")?;
                Ok(Some(events))
            }

            async fn supervised_cases(&self) -> anyhow::Result<Vec<Complaint>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE merged_into IS NULL AND \
                      ((status IN ('dispatched', 'in_progress') AND deadline IS NOT NULL) \
                       OR status = 'resolved') \
                     ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read supervised cases")?;
                rows.iter().map(complaint_from_row).collect()
            }

            async fn queue(&self, query: &QueueQuery) -> anyhow::Result<Vec<Complaint>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE merged_into IS NULL"
                ));
                if let Some(units) = &query.units {
                    sql.push(
                        " AND id IN (SELECT complaint_id FROM case_assignments \
                          WHERE status <> 'returned' AND unit_id IN (",
                    );
                    let mut list = sql.separated(", ");
                    for unit in units {
                        list.push_bind(unit.clone());
                    }
                    sql.push("))");
                }
                if !query.statuses.is_empty() {
                    sql.push(" AND status IN (");
                    let mut list = sql.separated(", ");
                    for status in &query.statuses {
                        list.push_bind(status.as_str());
                    }
                    sql.push(")");
                }
                if query.overdue_only {
                    sql.push(" AND overdue = ").push_bind(true);
                }
                if let Some(due_before) = query.due_before {
                    sql.push(" AND deadline <= ").push_bind(to_db(due_before));
                }
                if let Some(category) = &query.category_code {
                    sql.push(" AND category_code = ").push_bind(category.clone());
                }
                // Cases without a deadline sort last on both engines.
                sql.push(" ORDER BY CASE WHEN deadline IS NULL THEN 1 ELSE 0 END, deadline, id LIMIT ")
                    .push_bind(i64::from(query.limit))
                    .push(" OFFSET ")
                    .push_bind(i64::from(query.offset));

                let rows = sql.build().fetch_all(&self.pool).await.context("Failed to read a queue")?;
                rows.iter().map(complaint_from_row).collect()
            }

            async fn duplicate_candidates(
                &self,
                query: &DuplicateQuery,
            ) -> anyhow::Result<Vec<Complaint>> {
                // An empty box (south of north) matches nothing when the new
                // complaint has no point.
                let (south_west, north_east) = query.area.unwrap_or((
                    GeoPoint { latitude: 1.0, longitude: 1.0 },
                    GeoPoint { latitude: -1.0, longitude: -1.0 },
                ));
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE created_at >= $1 \
                      AND merged_into IS NULL \
                      AND status IN ('received', 'accepted', 'dispatched', 'in_progress') \
                      AND (category_code = $2 OR citizen_id = $3 \
                           OR (latitude BETWEEN $4 AND $5 AND longitude BETWEEN $6 AND $7)) \
                     ORDER BY id DESC LIMIT $8"
                ))
                .bind(to_db(query.since))
                .bind(&query.category_code)
                .bind(query.citizen_id.0)
                .bind(south_west.latitude)
                .bind(north_east.latitude)
                .bind(south_west.longitude)
                .bind(north_east.longitude)
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read complaints a new one may repeat")?;
                rows.iter().map(complaint_from_row).collect()
            }

            async fn units(&self) -> anyhow::Result<Vec<Unit>> {
                let rows = sqlx::query("SELECT id, kind, name_zh, name_en, parent_id FROM units ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read units")?;
                rows.iter().map(unit_from_row).collect()
            }

            async fn save_units(&self, units: &[Unit], now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                save_units_in(&mut tx, units, now).await?;
                tx.commit().await.context("Failed to commit units")?;
                Ok(())
            }

            async fn calendar(&self) -> anyhow::Result<(Vec<i32>, Vec<(chrono::NaiveDate, DayKind)>)> {
                let years: Vec<i32> = sqlx::query_scalar("SELECT year FROM calendar_years ORDER BY year")
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read calendar years")?;
                let rows = sqlx::query("SELECT day, kind FROM calendar_exceptions ORDER BY day")
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read calendar days")?;
                let mut exceptions = Vec::with_capacity(rows.len());
                for row in rows {
                    let kind: String = row.try_get("kind")?;
                    let kind = match kind.as_str() {
                        "off" => DayKind::Off,
                        "work" => DayKind::Work,
                        other => anyhow::bail!("unknown stored day kind {other:?}"),
                    };
                    exceptions.push((row.try_get("day")?, kind));
                }
                Ok((years, exceptions))
            }

            async fn save_calendar_year(
                &self,
                year: i32,
                exceptions: &[(chrono::NaiveDate, DayKind)],
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                save_calendar_year_in(&mut tx, year, exceptions, now).await?;
                tx.commit().await.context("Failed to commit a calendar year")?;
                Ok(())
            }

            async fn update_deadlines(
                &self,
                updates: &[(ComplaintId, chrono::DateTime<chrono::Utc>, bool)],
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                for (id, deadline, provisional) in updates {
                    sqlx::query("UPDATE complaints SET deadline = $2, deadline_provisional = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(to_db(*deadline))
                        .bind(*provisional)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to move a deadline")?;
                }
                tx.commit().await.context("Failed to commit recomputed deadlines")?;
                Ok(())
            }

            async fn update_staff(
                &self,
                account: &Account,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<Account>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let updated = update_staff_in(&mut tx, account, now).await?;
                tx.commit().await.context("Failed to commit a staff change")?;
                Ok(updated)
            }

            async fn staff_accounts(&self, unit_id: Option<&str>) -> anyhow::Result<Vec<Account>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, role, unit_id, display_name FROM accounts WHERE role <> 'citizen'",
                );
                if let Some(unit_id) = unit_id {
                    sql.push(" AND unit_id = ").push_bind(unit_id.to_owned());
                }
                sql.push(" ORDER BY id");
                let rows = sql.build().fetch_all(&self.pool).await.context("Failed to list staff")?;
                rows.iter().map(account_from_row).collect()
            }
        }
    };
}

pub(crate) use case_store_impl;
