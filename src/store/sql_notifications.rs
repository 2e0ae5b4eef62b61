//! The notification SQL, shared by both engines like `sql.rs`, whose
//! helpers (`event_from_row`, `complaint_in`, `Tx`, …) and `sql_staff.rs`'s
//! `is_postgres` it uses: the macros expand into the same engine module.
//! `enqueue_notification` is the outbox: `insert_event` calls it for every
//! event it writes, inside the event's transaction.

macro_rules! notification_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::notification::{
            AttemptOutcome, DeliveryChannel, NotificationKind, NotificationPreferences,
            NotificationState, PastAttempt, RateCounts, Recipient, notification_for,
        };
        use crate::store::notifications::{
            AfterAttempt, AttemptRecord, AttemptResult, ChannelCounts, ClaimedNotification,
            InboxEntry, NotificationRecord, NotificationStore, Settlement,
        };

        /// The event columns, qualified for joins; `event_from_row` reads them.
        const JOINED_EVENT_COLUMNS: &str = "e.complaint_id, e.sequence, e.kind, e.status, \
             e.message, e.visible_to_citizen, e.actor_id, e.unit_id, e.occurred_at, \
             e.citizen_id, e.citizen_sequence";

        /// Writes the notification an event calls for, in the event's
        /// transaction: it commits or rolls back with the event.
        async fn enqueue_notification(tx: &mut Tx, event: &ComplaintEvent) -> anyhow::Result<()> {
            let Some((kind, recipient)) = notification_for(event) else {
                return Ok(());
            };
            let (citizen, unit) = match &recipient {
                Recipient::Citizen(id) => (Some(id.0), None),
                Recipient::Unit(unit) => (None, Some(unit.clone())),
            };
            sqlx::query(
                "INSERT INTO notifications \
                   (complaint_id, sequence, kind, citizen_id, unit_id, created_at, state, \
                    next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $6)",
            )
            .bind(event.complaint_id.0)
            .bind(i64::try_from(event.sequence)?)
            .bind(kind.as_str())
            .bind(citizen)
            .bind(unit)
            .bind(to_db(event.occurred_at))
            .execute(&mut **tx)
            .await
            .context("Failed to write a notification to the outbox")?;
            Ok(())
        }

        fn recipient_from_row(row: &Row) -> anyhow::Result<Recipient> {
            let citizen: Option<i64> = row.try_get("recipient_citizen")?;
            let unit: Option<String> = row.try_get("recipient_unit")?;
            match (citizen, unit) {
                (Some(id), None) => Ok(Recipient::Citizen(AccountId(id))),
                (None, Some(unit)) => Ok(Recipient::Unit(unit)),
                _ => anyhow::bail!("a stored notification has no single recipient"),
            }
        }

        fn optional_stored<T>(
            row: &Row,
            column: &str,
            parse: fn(&str) -> Option<T>,
        ) -> anyhow::Result<Option<T>> {
            let value: Option<String> = row.try_get(column)?;
            value.map(|v| parse_stored(&v, parse, column)).transpose()
        }

        async fn past_attempts(tx: &mut Tx, id: i64) -> anyhow::Result<Vec<PastAttempt>> {
            let rows = sqlx::query(
                "SELECT channel, outcome, detail FROM notification_attempts \
                 WHERE notification_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&mut **tx)
            .await
            .context("Failed to read a notification's attempts")?;
            rows.iter()
                .map(|row| {
                    let channel: String = row.try_get("channel")?;
                    Ok(PastAttempt {
                        channel: parse_stored(&channel, DeliveryChannel::parse, "channel")?,
                        outcome: optional_stored(row, "outcome", AttemptOutcome::parse)?,
                        detail: row.try_get("detail")?,
                    })
                })
                .collect()
        }

        async fn claimed_in(tx: &mut Tx, id: i64) -> anyhow::Result<ClaimedNotification> {
            let sql = format!(
                "SELECT n.id AS notification_id, n.kind AS notification_kind, \
                   n.citizen_id AS recipient_citizen, n.unit_id AS recipient_unit, \
                   {JOINED_EVENT_COLUMNS} \
                 FROM notifications n JOIN complaint_events e \
                   ON e.complaint_id = n.complaint_id AND e.sequence = n.sequence \
                 WHERE n.id = $1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(&mut **tx)
                .await
                .context("Failed to read a claimed notification")?;
            let kind: String = row.try_get("notification_kind")?;
            let event = event_from_row(&row)?;
            let complaint = complaint_in(tx, event.complaint_id).await?;
            let contact_phone_cipher: Option<String> =
                sqlx::query_scalar("SELECT contact_phone_cipher FROM complaints WHERE id = $1")
                    .bind(event.complaint_id.0)
                    .fetch_one(&mut **tx)
                    .await
                    .context("Failed to read a complaint's contact")?;
            Ok(ClaimedNotification {
                id,
                kind: parse_stored(&kind, NotificationKind::parse, "notification kind")?,
                recipient: recipient_from_row(&row)?,
                event,
                complaint,
                contact_phone_cipher,
                attempts: past_attempts(tx, id).await?,
            })
        }

        /// The notification's new state after an attempt, if the sender
        /// still holds it.
        async fn apply_after_attempt(
            tx: &mut Tx,
            id: i64,
            worker: &str,
            then: &AfterAttempt,
        ) -> anyhow::Result<()> {
            match then {
                AfterAttempt::Continue => Ok(()),
                AfterAttempt::RetryAt(at) => release_in(tx, id, worker, *at).await,
                AfterAttempt::Settle(settlement) => settle_in(tx, id, worker, settlement).await,
            }
        }

        async fn release_in(
            tx: &mut Tx,
            id: i64,
            worker: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            sqlx::query(
                "UPDATE notifications SET lease_owner = NULL, lease_until = NULL, \
                   next_attempt_at = $3 \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(worker)
            .bind(to_db(at))
            .execute(&mut **tx)
            .await
            .context("Failed to release a notification")?;
            Ok(())
        }

        async fn settle_in(
            tx: &mut Tx,
            id: i64,
            worker: &str,
            settlement: &Settlement,
        ) -> anyhow::Result<()> {
            sqlx::query(
                "UPDATE notifications SET state = $3, channel = $4, failure_reason = $5, \
                   settled_at = $6, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(id)
            .bind(worker)
            .bind(settlement.state.as_str())
            .bind(settlement.channel.map(|c| c.as_str()))
            .bind(&settlement.reason)
            .bind(to_db(settlement.at))
            .execute(&mut **tx)
            .await
            .context("Failed to settle a notification")?;
            Ok(())
        }

        /// A SUM or COUNT column; SUM over no rows is NULL.
        fn count_in(row: &Row, column: &str) -> anyhow::Result<u64> {
            let value: Option<i64> = row.try_get(column)?;
            Ok(u64::try_from(value.unwrap_or(0))?)
        }

        fn counts_from_row(row: &Row) -> anyhow::Result<RateCounts> {
            let count = |column: &str| count_in(row, column);
            Ok(RateCounts {
                intended: count("intended")?,
                sent: count("sent")?,
                delivered: count("delivered")?,
                in_app_only: count("in_app_only")?,
                failed: count("failed")?,
                pending: count("pending")?,
                unconfirmed: count("unconfirmed")?,
                read: count("read_count")?,
            })
        }

        fn attempt_record_from_row(row: &Row) -> anyhow::Result<AttemptRecord> {
            let channel: String = row.try_get("channel")?;
            Ok(AttemptRecord {
                channel: parse_stored(&channel, DeliveryChannel::parse, "channel")?,
                started_at: from_db(row.try_get("started_at")?)?,
                finished_at: optional_time(row, "finished_at")?,
                outcome: optional_stored(row, "outcome", AttemptOutcome::parse)?,
                detail: row.try_get("detail")?,
                delivered_at: optional_time(row, "delivered_at")?,
            })
        }

        fn notification_record_from_row(row: &Row) -> anyhow::Result<NotificationRecord> {
            let kind: String = row.try_get("kind")?;
            let state: String = row.try_get("state")?;
            let sequence: i64 = row.try_get("sequence")?;
            Ok(NotificationRecord {
                id: row.try_get("id")?,
                complaint_id: ComplaintId(row.try_get("complaint_id")?),
                sequence: u64::try_from(sequence)?,
                kind: parse_stored(&kind, NotificationKind::parse, "notification kind")?,
                recipient: recipient_from_row(row)?,
                state: parse_stored(&state, NotificationState::parse, "notification state")?,
                channel: optional_stored(row, "channel", DeliveryChannel::parse)?,
                created_at: from_db(row.try_get("created_at")?)?,
                settled_at: optional_time(row, "settled_at")?,
                failure_reason: row.try_get("failure_reason")?,
                read_at: optional_time(row, "read_at")?,
                attempts: Vec::new(),
            })
        }

        #[async_trait::async_trait]
        impl NotificationStore for $store {
            async fn claim_notifications(
                &self,
                worker: &str,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> anyhow::Result<Vec<ClaimedNotification>> {
                // The outer conditions repeat the inner ones: PostgreSQL
                // re-checks them on a row another sender changed meanwhile.
                let lock = if is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
                let sql = format!(
                    "UPDATE notifications SET lease_owner = $1, lease_until = $2 \
                     WHERE id IN (SELECT id FROM notifications \
                         WHERE state = 'pending' AND next_attempt_at <= $3 \
                           AND (lease_until IS NULL OR lease_until <= $3) \
                         ORDER BY next_attempt_at, id LIMIT $4{lock}) \
                       AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                     RETURNING id"
                );
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let mut ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(worker)
                    .bind(to_db(lease_until))
                    .bind(to_db(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await
                    .context("Failed to claim notifications")?;
                ids.sort_unstable();
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    claimed.push(claimed_in(&mut tx, id).await?);
                }
                tx.commit().await.context("Failed to commit a claim")?;
                Ok(claimed)
            }

            async fn begin_attempt(
                &self,
                notification: i64,
                worker: &str,
                channel: DeliveryChannel,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<i64>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let held = sqlx::query(
                    "UPDATE notifications SET attempts = attempts + 1 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                )
                .bind(notification)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .context("Failed to count an attempt")?;
                if held.rows_affected() == 0 {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO notification_attempts \
                       (notification_id, channel, worker, started_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(notification)
                .bind(channel.as_str())
                .bind(worker)
                .bind(to_db(now))
                .fetch_one(&mut *tx)
                .await
                .context("Failed to record an attempt")?;
                tx.commit().await.context("Failed to commit an attempt")?;
                Ok(Some(id))
            }

            async fn finish_attempt(
                &self,
                attempt: i64,
                worker: &str,
                result: &AttemptResult,
                then: &AfterAttempt,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let notification: i64 = sqlx::query_scalar(
                    "UPDATE notification_attempts SET outcome = $2, detail = $3, \
                       provider_ref = $4, finished_at = $5 \
                     WHERE id = $1 RETURNING notification_id",
                )
                .bind(attempt)
                .bind(result.outcome.as_str())
                .bind(&result.detail)
                .bind(&result.provider_ref)
                .bind(to_db(result.finished_at))
                .fetch_one(&mut *tx)
                .await
                .context("Failed to record an attempt's outcome")?;
                apply_after_attempt(&mut tx, notification, worker, then).await?;
                tx.commit().await.context("Failed to commit an attempt's outcome")?;
                Ok(())
            }

            async fn release_notification(
                &self,
                notification: i64,
                worker: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                release_in(&mut tx, notification, worker, at).await?;
                tx.commit().await.context("Failed to commit a release")?;
                Ok(())
            }

            async fn settle_notification(
                &self,
                notification: i64,
                worker: &str,
                settlement: &Settlement,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                settle_in(&mut tx, notification, worker, settlement).await?;
                tx.commit().await.context("Failed to commit a settlement")?;
                Ok(())
            }

            async fn record_delivery(
                &self,
                channel: DeliveryChannel,
                provider_ref: &str,
                delivered: bool,
                status: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<bool> {
                let done = sqlx::query(
                    "UPDATE notification_attempts SET delivered_at = $4, delivery_status = $5 \
                     WHERE channel = $1 AND provider_ref = $2 AND outcome = 'sent' \
                       AND ($3 OR delivered_at IS NULL)",
                )
                .bind(channel.as_str())
                .bind(provider_ref)
                .bind(delivered)
                .bind(delivered.then(|| to_db(at)))
                .bind(status)
                .execute(&self.pool)
                .await
                .context("Failed to record a delivery report")?;
                Ok(done.rows_affected() > 0)
            }

            async fn inbox(
                &self,
                citizen: AccountId,
                unread_only: bool,
                before: Option<i64>,
                limit: u32,
            ) -> anyhow::Result<Vec<InboxEntry>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT n.id AS notification_id, n.kind AS notification_kind, \
                       n.created_at AS notification_created_at, n.read_at, \
                       c.created_at AS complaint_created_at, c.deadline AS complaint_deadline, \
                       {JOINED_EVENT_COLUMNS} \
                     FROM notifications n \
                     JOIN complaint_events e \
                       ON e.complaint_id = n.complaint_id AND e.sequence = n.sequence \
                     JOIN complaints c ON c.id = n.complaint_id \
                     WHERE n.citizen_id = "
                ));
                sql.push_bind(citizen.0);
                if unread_only {
                    sql.push(" AND n.read_at IS NULL");
                }
                if let Some(before) = before {
                    sql.push(" AND n.id < ").push_bind(before);
                }
                sql.push(" ORDER BY n.id DESC LIMIT ").push_bind(i64::from(limit));
                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read an inbox")?;
                rows.iter()
                    .map(|row| {
                        let kind: String = row.try_get("notification_kind")?;
                        Ok(InboxEntry {
                            id: row.try_get("notification_id")?,
                            kind: parse_stored(&kind, NotificationKind::parse, "notification kind")?,
                            event: event_from_row(row)?,
                            complaint_created_at: from_db(row.try_get("complaint_created_at")?)?,
                            deadline: optional_time(row, "complaint_deadline")?,
                            created_at: from_db(row.try_get("notification_created_at")?)?,
                            read_at: optional_time(row, "read_at")?,
                        })
                    })
                    .collect()
            }

            async fn unread_notifications(&self, citizen: AccountId) -> anyhow::Result<u64> {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications WHERE citizen_id = $1 AND read_at IS NULL",
                )
                .bind(citizen.0)
                .fetch_one(&self.pool)
                .await
                .context("Failed to count unread notifications")?;
                Ok(u64::try_from(count)?)
            }

            async fn mark_notifications_read(
                &self,
                citizen: AccountId,
                ids: Option<&[i64]>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<u64> {
                let mut sql = sqlx::QueryBuilder::<$db>::new("UPDATE notifications SET read_at = ");
                sql.push_bind(to_db(now))
                    .push(" WHERE read_at IS NULL AND citizen_id = ")
                    .push_bind(citizen.0);
                if let Some(ids) = ids {
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    sql.push(" AND id IN (");
                    let mut list = sql.separated(", ");
                    for id in ids {
                        list.push_bind(*id);
                    }
                    sql.push(")");
                }
                let done = sql
                    .build()
                    .execute(&self.pool)
                    .await
                    .context("Failed to mark notifications read")?;
                Ok(done.rows_affected())
            }

            async fn add_subscription_grants(
                &self,
                citizen: AccountId,
                app_id: &str,
                request_id: &str,
                template_ids: &[String],
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                for template_id in template_ids {
                    sqlx::query(
                        "INSERT INTO subscription_grants \
                           (account_id, app_id, template_id, request_id, granted_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (account_id, request_id, template_id) DO NOTHING",
                    )
                    .bind(citizen.0)
                    .bind(app_id)
                    .bind(template_id)
                    .bind(request_id)
                    .bind(to_db(now))
                    .execute(&mut *tx)
                    .await
                    .context("Failed to record a subscription grant")?;
                }
                tx.commit().await.context("Failed to commit subscription grants")?;
                Ok(())
            }

            async fn spend_subscription_grant(
                &self,
                citizen: AccountId,
                app_id: &str,
                template_id: &str,
                long_term: bool,
                notification: i64,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<i64>> {
                const UNSPENT: &str = "FROM subscription_grants WHERE account_id = $1 \
                     AND app_id = $2 AND template_id = $3 AND spent_at IS NULL \
                     AND revoked_at IS NULL ORDER BY id LIMIT 1";
                if long_term {
                    let grant: Option<i64> =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id {UNSPENT}")))
                            .bind(citizen.0)
                            .bind(app_id)
                            .bind(template_id)
                            .fetch_optional(&self.pool)
                            .await
                            .context("Failed to find a long-term subscription")?;
                    return Ok(grant);
                }
                // Two senders spending the same citizen's grants take
                // different ones (or one finds none left).
                let lock = if is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
                let sql = format!(
                    "UPDATE subscription_grants SET spent_at = $4, notification_id = $5 \
                     WHERE id = (SELECT id {UNSPENT}{lock}) AND spent_at IS NULL \
                     RETURNING id"
                );
                let grant: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(citizen.0)
                    .bind(app_id)
                    .bind(template_id)
                    .bind(to_db(now))
                    .bind(notification)
                    .fetch_optional(&self.pool)
                    .await
                    .context("Failed to spend a subscription grant")?;
                Ok(grant)
            }

            async fn restore_subscription_grant(&self, grant: i64) -> anyhow::Result<()> {
                sqlx::query(
                    "UPDATE subscription_grants SET spent_at = NULL, notification_id = NULL \
                     WHERE id = $1",
                )
                .bind(grant)
                .execute(&self.pool)
                .await
                .context("Failed to give back a subscription grant")?;
                Ok(())
            }

            async fn revoke_subscription_grants(
                &self,
                citizen: AccountId,
                app_id: &str,
                template_id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                sqlx::query(
                    "UPDATE subscription_grants SET revoked_at = $4 \
                     WHERE account_id = $1 AND app_id = $2 AND template_id = $3 \
                       AND spent_at IS NULL AND revoked_at IS NULL",
                )
                .bind(citizen.0)
                .bind(app_id)
                .bind(template_id)
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to revoke subscription grants")?;
                Ok(())
            }

            async fn subscription_balances(
                &self,
                citizen: AccountId,
                app_id: &str,
            ) -> anyhow::Result<Vec<(String, u64)>> {
                let rows = sqlx::query(
                    "SELECT template_id, COUNT(*) AS unspent FROM subscription_grants \
                     WHERE account_id = $1 AND app_id = $2 AND spent_at IS NULL \
                       AND revoked_at IS NULL \
                     GROUP BY template_id ORDER BY template_id",
                )
                .bind(citizen.0)
                .bind(app_id)
                .fetch_all(&self.pool)
                .await
                .context("Failed to count subscription grants")?;
                rows.iter()
                    .map(|row| {
                        let unspent: i64 = row.try_get("unspent")?;
                        Ok((row.try_get("template_id")?, u64::try_from(unspent)?))
                    })
                    .collect()
            }

            async fn notification_preferences(
                &self,
                citizen: AccountId,
            ) -> anyhow::Result<NotificationPreferences> {
                let row = sqlx::query(
                    "SELECT wechat, sms FROM notification_preferences WHERE account_id = $1",
                )
                .bind(citizen.0)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read notification preferences")?;
                match row {
                    None => Ok(NotificationPreferences::default()),
                    Some(row) => Ok(NotificationPreferences {
                        wechat: row.try_get("wechat")?,
                        sms: row.try_get("sms")?,
                    }),
                }
            }

            async fn save_notification_preferences(
                &self,
                citizen: AccountId,
                preferences: NotificationPreferences,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                sqlx::query(
                    "INSERT INTO notification_preferences (account_id, wechat, sms, updated_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id) DO UPDATE SET wechat = excluded.wechat, \
                       sms = excluded.sms, updated_at = excluded.updated_at",
                )
                .bind(citizen.0)
                .bind(preferences.wechat)
                .bind(preferences.sms)
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to save notification preferences")?;
                Ok(())
            }

            async fn notification_counts(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Vec<(NotificationKind, RateCounts)>> {
                let rows = sqlx::query(
                    "SELECT n.kind, COUNT(*) AS intended, \
                       SUM(CASE WHEN EXISTS (SELECT 1 FROM notification_attempts a \
                           WHERE a.notification_id = n.id AND a.outcome = 'sent') \
                         THEN 1 ELSE 0 END) AS sent, \
                       SUM(CASE WHEN EXISTS (SELECT 1 FROM notification_attempts a \
                           WHERE a.notification_id = n.id AND a.outcome = 'sent' \
                             AND a.delivered_at IS NOT NULL) \
                         THEN 1 ELSE 0 END) AS delivered, \
                       SUM(CASE WHEN n.state = 'in_app' THEN 1 ELSE 0 END) AS in_app_only, \
                       SUM(CASE WHEN n.state = 'failed' THEN 1 ELSE 0 END) AS failed, \
                       SUM(CASE WHEN n.state = 'pending' THEN 1 ELSE 0 END) AS pending, \
                       SUM(CASE WHEN n.state = 'unconfirmed' THEN 1 ELSE 0 END) AS unconfirmed, \
                       SUM(CASE WHEN n.read_at IS NOT NULL THEN 1 ELSE 0 END) AS read_count \
                     FROM notifications n WHERE n.created_at >= $1 AND n.created_at < $2 \
                     GROUP BY n.kind ORDER BY n.kind",
                )
                .bind(to_db(since))
                .bind(to_db(until))
                .fetch_all(&self.pool)
                .await
                .context("Failed to count notifications")?;
                rows.iter()
                    .map(|row| {
                        let kind: String = row.try_get("kind")?;
                        Ok((
                            parse_stored(&kind, NotificationKind::parse, "notification kind")?,
                            counts_from_row(row)?,
                        ))
                    })
                    .collect()
            }

            async fn channel_counts(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Vec<(DeliveryChannel, ChannelCounts)>> {
                let rows = sqlx::query(
                    "SELECT a.channel, COUNT(*) AS attempts, \
                       SUM(CASE WHEN a.outcome = 'sent' THEN 1 ELSE 0 END) AS sent, \
                       SUM(CASE WHEN a.delivered_at IS NOT NULL THEN 1 ELSE 0 END) AS delivered, \
                       SUM(CASE WHEN a.outcome = 'transient' THEN 1 ELSE 0 END) AS transient, \
                       SUM(CASE WHEN a.outcome = 'permanent' THEN 1 ELSE 0 END) AS permanent, \
                       SUM(CASE WHEN a.outcome = 'unknown' THEN 1 ELSE 0 END) AS unknown \
                     FROM notification_attempts a \
                     JOIN notifications n ON n.id = a.notification_id \
                     WHERE n.created_at >= $1 AND n.created_at < $2 \
                     GROUP BY a.channel ORDER BY a.channel",
                )
                .bind(to_db(since))
                .bind(to_db(until))
                .fetch_all(&self.pool)
                .await
                .context("Failed to count attempts")?;
                rows.iter()
                    .map(|row| {
                        let channel: String = row.try_get("channel")?;
                        let count = |column: &str| count_in(row, column);
                        Ok((
                            parse_stored(&channel, DeliveryChannel::parse, "channel")?,
                            ChannelCounts {
                                attempts: count("attempts")?,
                                sent: count("sent")?,
                                delivered: count("delivered")?,
                                transient: count("transient")?,
                                permanent: count("permanent")?,
                                unknown: count("unknown")?,
                            },
                        ))
                    })
                    .collect()
            }

            async fn case_notifications(
                &self,
                complaint: ComplaintId,
            ) -> anyhow::Result<Vec<NotificationRecord>> {
                let mut tx = begin_snapshot(&self.pool).await.context("Failed to begin a read")?;
                let rows = sqlx::query(
                    "SELECT id, complaint_id, sequence, kind, citizen_id AS recipient_citizen, \
                       unit_id AS recipient_unit, state, channel, created_at, settled_at, \
                       failure_reason, read_at \
                     FROM notifications WHERE complaint_id = $1 ORDER BY id",
                )
                .bind(complaint.0)
                .fetch_all(&mut *tx)
                .await
                .context("Failed to read a case's notifications")?;
                let mut records = rows
                    .iter()
                    .map(notification_record_from_row)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let attempts = sqlx::query(
                    "SELECT a.notification_id, a.channel, a.started_at, a.finished_at, \
                       a.outcome, a.detail, a.delivered_at \
                     FROM notification_attempts a \
                     JOIN notifications n ON n.id = a.notification_id \
                     WHERE n.complaint_id = $1 ORDER BY a.id",
                )
                .bind(complaint.0)
                .fetch_all(&mut *tx)
                .await
                .context("Failed to read a case's notification attempts")?;
                tx.commit().await.context("Failed to end a read")?;
                for row in &attempts {
                    let id: i64 = row.try_get("notification_id")?;
                    if let Some(record) = records.iter_mut().find(|r| r.id == id) {
                        record.attempts.push(attempt_record_from_row(row)?);
                    }
                }
                Ok(records)
            }
        }
    };
}

pub(crate) use notification_store_impl;
