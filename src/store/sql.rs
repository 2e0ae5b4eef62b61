//! The SQL both engines share. `shared_store_impl!` expands to the `Store`
//! implementation for one engine; the engine's module must define:
//!
//! - `type DbTime` and `fn to_db(DateTime<Utc>) -> DbTime` /
//!   `fn from_db(DbTime) -> anyhow::Result<DateTime<Utc>>`: how times are stored;
//! - `async fn begin_write(&Pool) -> sqlx::Result<Transaction>`: how a
//!   transaction that reads and then writes begins;
//! - `async fn begin_snapshot(&Pool) -> sqlx::Result<Transaction>`: how a
//!   read whose statements must see one moment begins;
//! - `const ENGINE: Engine`.
//!
//! Placeholders are `$1`, `$2`, …, which both engines accept. A macro rather
//! than generic code: sqlx's traits would need a bound per bound type.

/// The columns of a complaint, in the order `complaint_from_row` reads them.
macro_rules! complaint_columns {
    () => {
        "id, citizen_id, kind, channel, status, status_reason, text, category_code, \
         address, latitude, longitude, contact_phone_masked, photo_ids, created_at, \
         updated_at, deadline, resolution_round, rating, rating_comment, rated_at, \
         rating_round, last_sequence, version, owner_unit_id, lead_unit_id, urgency, \
         accepted_at, deadline_provisional, overdue, escalation_level, rework_round, \
         resolution_summary, resolved_at, resolved_on_time, closed_at, merged_into, \
         extension_unit_id, extension_until, extension_reason, duplicate_hint"
    };
}

macro_rules! event_columns {
    () => {
        "complaint_id, sequence, kind, status, message, visible_to_citizen, actor_id, unit_id, \
         occurred_at, citizen_id, citizen_sequence"
    };
}

macro_rules! shared_store_impl {
    ($store:ident, $db:ty) => {
        use sqlx::Row as _;

        use crate::domain::account::{Account, AccountId, ExternalIdentity, Role};
        use crate::domain::category::Urgency;
        use crate::domain::complaint::{
            Channel, Complaint, ComplaintChange, ComplaintEvent, ComplaintId, ComplaintKind,
            ComplaintStatus, EventDraft, EventKind, ExtensionRequest, Handling, Location,
            NewComplaint, Rating, RequestId, Satisfaction,
        };
        use crate::domain::geo::GeoPoint;
        use crate::store::{CitizenQuery, Filing, NewSession, RefreshToken, SessionRotation, Store};

        type Row = <$db as sqlx::Database>::Row;
        type Tx = sqlx::Transaction<'static, $db>;

        fn parse_stored<T>(value: &str, parse: fn(&str) -> Option<T>, what: &str) -> anyhow::Result<T> {
            parse(value).with_context(|| format!("unknown stored {what} {value:?}"))
        }

        fn account_from_row(row: &Row) -> anyhow::Result<Account> {
            let role: String = row.try_get("role")?;
            Ok(Account {
                id: AccountId(row.try_get("id")?),
                role: parse_stored(&role, Role::parse, "role")?,
                unit_id: row.try_get("unit_id")?,
                display_name: row.try_get("display_name")?,
            })
        }

        fn complaint_from_row(row: &Row) -> anyhow::Result<Complaint> {
            let kind: String = row.try_get("kind")?;
            let channel: String = row.try_get("channel")?;
            let status: String = row.try_get("status")?;
            let latitude: Option<f64> = row.try_get("latitude")?;
            let longitude: Option<f64> = row.try_get("longitude")?;
            let photo_ids: String = row.try_get("photo_ids")?;
            let rating: Option<String> = row.try_get("rating")?;
            let rated_at: Option<DbTime> = row.try_get("rated_at")?;
            let rating_round: Option<i32> = row.try_get("rating_round")?;
            let resolution_round: i32 = row.try_get("resolution_round")?;
            let last_sequence: i64 = row.try_get("last_sequence")?;
            let version: i64 = row.try_get("version")?;

            let rating = match (rating, rated_at, rating_round) {
                (Some(rating), Some(rated_at), Some(round)) => Some(Rating {
                    satisfaction: parse_stored(&rating, Satisfaction::parse, "rating")?,
                    comment: row.try_get("rating_comment")?,
                    rated_at: from_db(rated_at)?,
                    round: u32::try_from(round)?,
                }),
                _ => None,
            };
            let point = match (latitude, longitude) {
                (Some(latitude), Some(longitude)) => Some(GeoPoint { latitude, longitude }),
                _ => None,
            };

            Ok(Complaint {
                id: ComplaintId(row.try_get("id")?),
                citizen_id: AccountId(row.try_get("citizen_id")?),
                kind: parse_stored(&kind, ComplaintKind::parse, "kind")?,
                channel: parse_stored(&channel, Channel::parse, "channel")?,
                status: parse_stored(&status, ComplaintStatus::parse, "status")?,
                status_reason: row.try_get("status_reason")?,
                text: row.try_get("text")?,
                category_code: row.try_get("category_code")?,
                location: Location {
                    address: row.try_get("address")?,
                    point,
                },
                contact_phone_masked: row.try_get("contact_phone_masked")?,
                photo_ids: serde_json::from_str(&photo_ids).context("bad stored photo_ids")?,
                created_at: from_db(row.try_get("created_at")?)?,
                updated_at: from_db(row.try_get("updated_at")?)?,
                resolution_round: u32::try_from(resolution_round)?,
                rating,
                handling: handling_from_row(row)?,
                last_sequence: u64::try_from(last_sequence)?,
                version: u64::try_from(version)?,
            })
        }

        fn optional_time(row: &Row, column: &str) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
            let value: Option<DbTime> = row.try_get(column)?;
            value.map(from_db).transpose()
        }

        fn handling_from_row(row: &Row) -> anyhow::Result<Handling> {
            let urgency: Option<String> = row.try_get("urgency")?;
            let escalation_level: i32 = row.try_get("escalation_level")?;
            let rework_round: i32 = row.try_get("rework_round")?;
            let merged_into: Option<i64> = row.try_get("merged_into")?;
            let duplicate_hint: Option<i64> = row.try_get("duplicate_hint")?;
            let extension_unit: Option<String> = row.try_get("extension_unit_id")?;
            let extension = match (extension_unit, optional_time(row, "extension_until")?) {
                (Some(unit_id), Some(until)) => Some(ExtensionRequest {
                    unit_id,
                    until,
                    reason: row.try_get::<Option<String>, _>("extension_reason")?.unwrap_or_default(),
                }),
                _ => None,
            };
            Ok(Handling {
                owner_unit_id: row.try_get("owner_unit_id")?,
                lead_unit_id: row.try_get("lead_unit_id")?,
                urgency: urgency.as_deref().map(|u| parse_stored(u, Urgency::parse, "urgency")).transpose()?,
                accepted_at: optional_time(row, "accepted_at")?,
                deadline: optional_time(row, "deadline")?,
                deadline_provisional: row.try_get("deadline_provisional")?,
                overdue: row.try_get("overdue")?,
                escalation_level: u32::try_from(escalation_level)?,
                rework_round: u32::try_from(rework_round)?,
                resolution_summary: row.try_get("resolution_summary")?,
                resolved_at: optional_time(row, "resolved_at")?,
                resolved_on_time: row.try_get("resolved_on_time")?,
                closed_at: optional_time(row, "closed_at")?,
                merged_into: merged_into.map(ComplaintId),
                duplicate_hint: duplicate_hint.map(ComplaintId),
                extension,
            })
        }

        fn event_from_row(row: &Row) -> anyhow::Result<ComplaintEvent> {
            let kind: String = row.try_get("kind")?;
            let status: String = row.try_get("status")?;
            let sequence: i64 = row.try_get("sequence")?;
            let actor_id: Option<i64> = row.try_get("actor_id")?;
            Ok(ComplaintEvent {
                complaint_id: ComplaintId(row.try_get("complaint_id")?),
                sequence: u64::try_from(sequence)?,
                kind: parse_stored(&kind, EventKind::parse, "event kind")?,
                status: parse_stored(&status, ComplaintStatus::parse, "status")?,
                message: row.try_get("message")?,
                visible_to_citizen: row.try_get("visible_to_citizen")?,
                actor_id: actor_id.map(AccountId),
                unit_id: row.try_get("unit_id")?,
                occurred_at: from_db(row.try_get("occurred_at")?)?,
                citizen_id: row.try_get::<Option<i64>, _>("citizen_id")?.map(AccountId),
                citizen_sequence: row
                    .try_get::<Option<i64>, _>("citizen_sequence")?
                    .map(u64::try_from)
                    .transpose()?,
            })
        }

        async fn insert_event(
            tx: &mut Tx,
            id: ComplaintId,
            sequence: i64,
            draft: &EventDraft,
        ) -> anyhow::Result<ComplaintEvent> {
            // A citizen-visible event also takes the next number of its
            // citizen's feed, under the lock of the citizen's row (taken
            // after the complaint's, always in that order).
            let (citizen_id, citizen_sequence) = if draft.visible_to_citizen {
                let row = sqlx::query(
                    "UPDATE accounts SET feed_sequence = feed_sequence + 1 \
                     WHERE id = (SELECT citizen_id FROM complaints WHERE id = $1) \
                     RETURNING id, feed_sequence",
                )
                .bind(id.0)
                .fetch_one(&mut **tx)
                .await
                .context("Failed to number a feed event")?;
                (Some(row.try_get::<i64, _>("id")?), Some(row.try_get::<i64, _>("feed_sequence")?))
            } else {
                (None, None)
            };

            let row = sqlx::query(concat!(
                "INSERT INTO complaint_events (",
                $crate::store::sql::event_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
                $crate::store::sql::event_columns!()
            ))
            .bind(id.0)
            .bind(sequence)
            .bind(draft.kind.as_str())
            .bind(draft.status.as_str())
            .bind(&draft.message)
            .bind(draft.visible_to_citizen)
            .bind(draft.actor_id.map(|a| a.0))
            .bind(&draft.unit_id)
            .bind(to_db(draft.occurred_at))
            .bind(citizen_id)
            .bind(citizen_sequence)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to append a timeline event")?;
            let event = event_from_row(&row)?;
            // Every event is written here, so its notification is too: in
            // the same transaction, never for a change that rolls back.
            enqueue_notification(tx, &event).await?;
            Ok(event)
        }

        async fn complaint_in(tx: &mut Tx, id: ComplaintId) -> anyhow::Result<Complaint> {
            let row = sqlx::query(concat!(
                "SELECT ",
                $crate::store::sql::complaint_columns!(),
                " FROM complaints WHERE id = $1"
            ))
            .bind(id.0)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to read back a complaint")?;
            complaint_from_row(&row)
        }

        async fn account_in(tx: &mut Tx, id: i64) -> anyhow::Result<Account> {
            let row = sqlx::query(
                "SELECT id, role, unit_id, display_name FROM accounts WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to read an account")?;
            account_from_row(&row)
        }

        async fn insert_session(tx: &mut Tx, session: &NewSession) -> anyhow::Result<()> {
            sqlx::query(
                "INSERT INTO sessions (family_id, account_id, refresh_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&session.family_id)
            .bind(session.account_id.0)
            .bind(&session.refresh_hash)
            .bind(to_db(session.created_at))
            .bind(to_db(session.expires_at))
            .execute(&mut **tx)
            .await
            .context("Failed to store a session")?;
            Ok(())
        }

        /// Writes a change and its events if the version still matches:
        /// the complaint's row, its assignments when replaced, its events,
        /// and copies of citizen-visible events into complaints merged into it.
        async fn write_change(
            tx: &mut Tx,
            change: &ComplaintChange,
        ) -> anyhow::Result<Option<(Complaint, Vec<ComplaintEvent>)>> {
            let after = &change.after;
            let rating = after.rating.as_ref();
            let handling = &after.handling;
            let extension = handling.extension.as_ref();
            let added = i64::try_from(change.events.len())?;

            // The row lock this update takes orders concurrent writers, so
            // sequence numbers are handed out without gaps or repeats.
            let updated = sqlx::query(
                "UPDATE complaints SET status = $3, status_reason = $4, resolution_round = $5, \
                   rating = $6, rating_comment = $7, rated_at = $8, rating_round = $9, \
                   updated_at = $10, owner_unit_id = $11, lead_unit_id = $12, urgency = $13, \
                   accepted_at = $14, deadline = $15, deadline_provisional = $16, overdue = $17, \
                   escalation_level = $18, rework_round = $19, resolution_summary = $20, \
                   resolved_at = $21, resolved_on_time = $22, closed_at = $23, merged_into = $24, \
                   extension_unit_id = $25, extension_until = $26, extension_reason = $27, \
                   last_sequence = last_sequence + $28, version = version + 1 \
                 WHERE id = $1 AND version = $2 \
                 RETURNING last_sequence",
            )
            .bind(after.id.0)
            .bind(i64::try_from(change.expected_version)?)
            .bind(after.status.as_str())
            .bind(&after.status_reason)
            .bind(i32::try_from(after.resolution_round)?)
            .bind(rating.map(|r| r.satisfaction.as_str()))
            .bind(rating.and_then(|r| r.comment.clone()))
            .bind(rating.map(|r| to_db(r.rated_at)))
            .bind(rating.map(|r| i32::try_from(r.round)).transpose()?)
            .bind(to_db(after.updated_at))
            .bind(&handling.owner_unit_id)
            .bind(&handling.lead_unit_id)
            .bind(handling.urgency.map(|u| u.as_str()))
            .bind(handling.accepted_at.map(to_db))
            .bind(handling.deadline.map(to_db))
            .bind(handling.deadline_provisional)
            .bind(handling.overdue)
            .bind(i32::try_from(handling.escalation_level)?)
            .bind(i32::try_from(handling.rework_round)?)
            .bind(&handling.resolution_summary)
            .bind(handling.resolved_at.map(to_db))
            .bind(handling.resolved_on_time)
            .bind(handling.closed_at.map(to_db))
            .bind(handling.merged_into.map(|id| id.0))
            .bind(extension.map(|e| e.unit_id.clone()))
            .bind(extension.map(|e| to_db(e.until)))
            .bind(extension.map(|e| e.reason.clone()))
            .bind(added)
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to update a complaint")?;
            let Some(row) = updated else {
                return Ok(None);
            };

            let last: i64 = row.try_get("last_sequence")?;
            let mut events = Vec::with_capacity(change.events.len());
            for (i, draft) in change.events.iter().enumerate() {
                let sequence = last - added + 1 + i64::try_from(i)?;
                events.push(insert_event(tx, after.id, sequence, draft).await?);
            }
            if let Some(assignments) = &change.assignments {
                replace_assignments(tx, after.id, assignments).await?;
            }
            for draft in change.events.iter().filter(|d| d.visible_to_citizen) {
                events.extend(mirror_to_merged(tx, after.id, draft).await?);
            }
            let complaint = complaint_in(tx, after.id).await?;
            Ok(Some((complaint, events)))
        }

        /// Appends a copy of the survivor's event to each complaint merged
        /// into it, in that complaint's own sequence, with its status following.
        async fn mirror_to_merged(
            tx: &mut Tx,
            survivor: ComplaintId,
            draft: &EventDraft,
        ) -> anyhow::Result<Vec<ComplaintEvent>> {
            let rows = sqlx::query(
                "UPDATE complaints SET last_sequence = last_sequence + 1, status = $2, updated_at = $3 \
                 WHERE merged_into = $1 RETURNING id, last_sequence",
            )
            .bind(survivor.0)
            .bind(draft.status.as_str())
            .bind(to_db(draft.occurred_at))
            .fetch_all(&mut **tx)
            .await
            .context("Failed to follow merged complaints")?;

            let mut copies = Vec::with_capacity(rows.len());
            for row in rows {
                let copy = EventDraft {
                    actor_id: None,
                    unit_id: None,
                    ..draft.clone()
                };
                let id = ComplaintId(row.try_get("id")?);
                copies.push(insert_event(tx, id, row.try_get("last_sequence")?, &copy).await?);
            }
            Ok(copies)
        }

        async fn replace_assignments(
            tx: &mut Tx,
            id: ComplaintId,
            assignments: &[crate::domain::case::Assignment],
        ) -> anyhow::Result<()> {
            sqlx::query("DELETE FROM case_assignments WHERE complaint_id = $1")
                .bind(id.0)
                .execute(&mut **tx)
                .await
                .context("Failed to clear assignments")?;
            for assignment in assignments {
                sqlx::query(
                    "INSERT INTO case_assignments \
                       (complaint_id, unit_id, is_lead, status, note, assigned_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(id.0)
                .bind(&assignment.unit_id)
                .bind(assignment.lead)
                .bind(assignment.status.as_str())
                .bind(&assignment.note)
                .bind(to_db(assignment.assigned_at))
                .bind(to_db(assignment.updated_at))
                .execute(&mut **tx)
                .await
                .context("Failed to store an assignment")?;
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn engine(&self) -> crate::store::Engine {
                ENGINE
            }

            async fn ping(&self) -> anyhow::Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .context("Failed to reach the database")?;
                Ok(())
            }

            async fn upsert_account(
                &self,
                identity: &ExternalIdentity,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Account> {
                let row = sqlx::query(
                    "INSERT INTO accounts \
                       (provider, subject, role, unit_id, display_name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (provider, subject) DO UPDATE SET \
                       role = excluded.role, unit_id = excluded.unit_id, \
                       display_name = excluded.display_name, updated_at = excluded.updated_at \
                     RETURNING id, role, unit_id, display_name",
                )
                .bind(identity.provider)
                .bind(&identity.subject)
                .bind(identity.role.as_str())
                .bind(&identity.unit_id)
                .bind(&identity.display_name)
                .bind(to_db(now))
                .fetch_one(&self.pool)
                .await
                .context("Failed to upsert an account")?;
                account_from_row(&row)
            }

            async fn create_session(&self, session: &NewSession) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                insert_session(&mut tx, session).await?;
                tx.commit().await.context("Failed to commit a new session")?;
                Ok(())
            }

            async fn rotate_session(
                &self,
                presented_hash: &[u8],
                next: &RefreshToken,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<SessionRotation> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let found = sqlx::query(
                    "SELECT id, family_id, account_id, expires_at, rotated_at, revoked_at \
                     FROM sessions WHERE refresh_hash = $1",
                )
                .bind(presented_hash)
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to look up a session")?;
                let Some(row) = found else {
                    return Ok(SessionRotation::Refused);
                };

                let id: i64 = row.try_get("id")?;
                let family_id: String = row.try_get("family_id")?;
                let rotated_at: Option<DbTime> = row.try_get("rotated_at")?;
                let revoked_at: Option<DbTime> = row.try_get("revoked_at")?;
                let expires_at = from_db(row.try_get("expires_at")?)?;
                if revoked_at.is_some() || expires_at <= now {
                    return Ok(SessionRotation::Refused);
                }
                if rotated_at.is_some() {
                    // A token that was already traded in is being replayed.
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $2 \
                         WHERE family_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(&family_id)
                    .bind(to_db(now))
                    .execute(&mut *tx)
                    .await
                    .context("Failed to revoke a session family")?;
                    tx.commit().await.context("Failed to commit a revocation")?;
                    return Ok(SessionRotation::Refused);
                }

                // The guard on rotated_at makes a concurrent rotation lose.
                let marked = sqlx::query(
                    "UPDATE sessions SET rotated_at = $2 WHERE id = $1 AND rotated_at IS NULL",
                )
                .bind(id)
                .bind(to_db(now))
                .execute(&mut *tx)
                .await
                .context("Failed to mark a session rotated")?;
                if marked.rows_affected() != 1 {
                    return Ok(SessionRotation::Refused);
                }
                let account = account_in(&mut tx, row.try_get("account_id")?).await?;
                let successor = NewSession {
                    family_id: family_id.clone(),
                    account_id: account.id,
                    refresh_hash: next.hash.clone(),
                    created_at: now,
                    expires_at: next.expires_at,
                };
                insert_session(&mut tx, &successor).await?;
                tx.commit().await.context("Failed to commit a rotation")?;
                Ok(SessionRotation::Rotated { account, family_id })
            }

            async fn session_revoked(&self, family_id: &str) -> anyhow::Result<bool> {
                let revoked: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM sessions WHERE family_id = $1 AND revoked_at IS NOT NULL LIMIT 1",
                )
                .bind(family_id)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to check a session")?;
                Ok(revoked.is_some())
            }

            async fn revoke_session_family(
                &self,
                presented_hash: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<String>> {
                let family_id: Option<String> =
                    sqlx::query_scalar("SELECT family_id FROM sessions WHERE refresh_hash = $1")
                        .bind(presented_hash)
                        .fetch_optional(&self.pool)
                        .await
                        .context("Failed to find a session")?;
                let Some(family_id) = family_id else {
                    return Ok(None);
                };
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                    .bind(&family_id)
                    .bind(to_db(now))
                    .execute(&self.pool)
                    .await
                    .context("Failed to revoke a session")?;
                Ok(Some(family_id))
            }

            async fn file_complaint(&self, new: &NewComplaint) -> anyhow::Result<Filing> {
                let photo_ids = serde_json::to_string(&new.photo_ids)?;
                let (latitude, longitude) = match new.location.point {
                    Some(point) => (Some(point.latitude), Some(point.longitude)),
                    None => (None, None),
                };

                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let inserted = sqlx::query(
                    "INSERT INTO complaints \
                       (citizen_id, request_id, request_fingerprint, kind, channel, status, \
                        text, category_code, address, latitude, longitude, contact_phone_cipher, \
                        contact_phone_masked, photo_ids, created_at, updated_at, \
                        owner_unit_id, duplicate_hint, last_sequence, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, \
                             $16, $17, 1, 1) \
                     ON CONFLICT (citizen_id, request_id) DO NOTHING \
                     RETURNING id",
                )
                .bind(new.citizen_id.0)
                .bind(new.request_id.as_str())
                .bind(&new.fingerprint)
                .bind(new.kind.as_str())
                .bind(new.channel.as_str())
                .bind(new.first_event.status.as_str())
                .bind(&new.text)
                .bind(&new.category_code)
                .bind(&new.location.address)
                .bind(latitude)
                .bind(longitude)
                .bind(&new.contact_phone_cipher)
                .bind(&new.contact_phone_masked)
                .bind(photo_ids)
                .bind(to_db(new.created_at))
                .bind(&new.owner_unit_id)
                .bind(new.duplicate_hint.map(|id| id.0))
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to insert a complaint")?;

                let Some(row) = inserted else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return self
                        .find_filing(new.citizen_id, &new.request_id)
                        .await?
                        .context("a conflicting filing vanished");
                };
                let id = ComplaintId(row.try_get("id")?);
                if !new.photo_ids.is_empty() {
                    // Defined by `sql_evidence.rs` in the same module.
                    let attachment = Attachment {
                        complaint_id: id,
                        stage: Stage::Report,
                        visible_to_citizen: true,
                        unit_id: new.owner_unit_id.clone(),
                        attached_at: new.created_at,
                    };
                    let attached = attach_uploads_in(
                        &mut tx,
                        new.photos_uploaded_by,
                        &new.photo_ids,
                        &attachment,
                    )
                    .await?;
                    if !attached {
                        tx.rollback().await.context("Failed to roll back")?;
                        return Ok(Filing::PhotosUnavailable);
                    }
                }
                let event = insert_event(&mut tx, id, 1, &new.first_event).await?;
                let complaint = complaint_in(&mut tx, id).await?;
                tx.commit().await.context("Failed to commit a new complaint")?;
                Ok(Filing::Created { complaint, event })
            }

            async fn find_filing(
                &self,
                citizen_id: AccountId,
                request_id: &RequestId,
            ) -> anyhow::Result<Option<Filing>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    ", request_fingerprint FROM complaints WHERE citizen_id = $1 AND request_id = $2"
                ))
                .bind(citizen_id.0)
                .bind(request_id.as_str())
                .fetch_optional(&self.pool)
                .await
                .context("Failed to look up a filing by request id")?;
                let Some(row) = row else {
                    return Ok(None);
                };
                Ok(Some(Filing::Existing {
                    complaint: complaint_from_row(&row)?,
                    fingerprint: row.try_get("request_fingerprint")?,
                }))
            }

            async fn complaint(&self, id: ComplaintId) -> anyhow::Result<Option<Complaint>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a complaint")?;
                row.as_ref().map(complaint_from_row).transpose()
            }

            async fn citizen_complaints(
                &self,
                query: &CitizenQuery,
            ) -> anyhow::Result<Vec<Complaint>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::sql::complaint_columns!(),
                    " FROM complaints WHERE citizen_id = "
                ));
                sql.push_bind(query.citizen_id.0);
                if let Some(status) = query.status {
                    sql.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(before) = query.before {
                    sql.push(" AND id < ").push_bind(before.0);
                }
                sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));

                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list a citizen's complaints")?;
                rows.iter().map(complaint_from_row).collect()
            }

            async fn apply_change(
                &self,
                change: &ComplaintChange,
            ) -> anyhow::Result<Option<(Complaint, Vec<ComplaintEvent>)>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let Some(written) = write_change(&mut tx, change).await? else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                };
                tx.commit().await.context("Failed to commit a complaint change")?;
                Ok(Some(written))
            }

            async fn citizen_events_after(
                &self,
                citizen: AccountId,
                after: u64,
                limit: u32,
            ) -> anyhow::Result<Vec<ComplaintEvent>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::event_columns!(),
                    " FROM complaint_events WHERE citizen_id = $1 AND citizen_sequence > $2 \
                     ORDER BY citizen_sequence LIMIT $3"
                ))
                .bind(citizen.0)
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read a citizen's feed")?;
                rows.iter().map(event_from_row).collect()
            }

            async fn events_after(
                &self,
                id: ComplaintId,
                after: u64,
                limit: u32,
            ) -> anyhow::Result<Vec<ComplaintEvent>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql::event_columns!(),
                    " FROM complaint_events WHERE complaint_id = $1 AND sequence > $2 \
                     ORDER BY sequence LIMIT $3"
                ))
                .bind(id.0)
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read a timeline")?;
                rows.iter().map(event_from_row).collect()
            }
        }

    };
}

pub(crate) use {complaint_columns, event_columns, shared_store_impl};
