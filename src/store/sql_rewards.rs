//! The SQL of red envelopes, shared by both engines like `sql.rs`, whose
//! helpers (`Tx`, row decoding, time conversion) and `sql_staff.rs`'s
//! `insert_audit` it uses: the macros expand into the same engine module.
//!
//! Locks are always taken in one order: the complaint's row, the citizen's
//! account row, the envelope's row, then the month's budget row and the
//! day's. SQLite's write transactions are serial anyway.

macro_rules! envelope_columns {
    () => {
        "id, complaint_id, citizen_id, amount_fen, state, reason, day, month, decided_at, \
         updated_at, claim_until, attempts, paid_at, audit_flag"
    };
}

macro_rules! bill_columns {
    () => {
        "out_bill_no, envelope_id, attempt, state, transfer_bill_no, package_info, fail_reason, \
         created_at, updated_at"
    };
}

macro_rules! reward_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::red_envelope::{
            self as red_envelope, AmountRange, EntryKind, Envelope, EnvelopeBalance,
            EnvelopeOffer, EnvelopeState, GrantDecision, GrantFacts, RewardEffect, RewardPolicy,
        };
        use crate::domain::red_envelope::{Bill, BillState};
        use crate::store::rewards::{
            BillUpdate, ClaimStart, EnvelopeQuery, LedgerState, PayoutStore, PeriodTotals,
            RewardStore, Settlement as BillSettlement, Withdrawal,
        };

        fn bill_from_row(row: &Row) -> anyhow::Result<Bill> {
            let state: String = row.try_get("state")?;
            let attempt: i32 = row.try_get("attempt")?;
            Ok(Bill {
                out_bill_no: row.try_get("out_bill_no")?,
                envelope_id: row.try_get("envelope_id")?,
                attempt: u32::try_from(attempt)?,
                state: parse_stored(&state, BillState::parse, "bill state")?,
                transfer_bill_no: row.try_get("transfer_bill_no")?,
                package_info: row.try_get("package_info")?,
                fail_reason: row.try_get("fail_reason")?,
                created_at: from_db(row.try_get("created_at")?)?,
                updated_at: from_db(row.try_get("updated_at")?)?,
            })
        }

        /// Locks an envelope's row and reads it.
        async fn lock_envelope(tx: &mut Tx, id: i64) -> anyhow::Result<Option<Envelope>> {
            let row = sqlx::query(concat!(
                "UPDATE red_envelopes SET attempts = attempts WHERE id = $1 RETURNING ",
                $crate::store::sql_rewards::envelope_columns!()
            ))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to lock an envelope")?;
            row.as_ref().map(envelope_from_row).transpose()
        }

        async fn envelope_in(tx: &mut Tx, id: i64) -> anyhow::Result<Envelope> {
            let row = sqlx::query(concat!(
                "SELECT ",
                $crate::store::sql_rewards::envelope_columns!(),
                " FROM red_envelopes WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to read back an envelope")?;
            envelope_from_row(&row)
        }

        async fn latest_bill_in(tx: &mut Tx, envelope_id: i64) -> anyhow::Result<Option<Bill>> {
            let row = sqlx::query(concat!(
                "SELECT ",
                $crate::store::sql_rewards::bill_columns!(),
                " FROM payout_bills WHERE envelope_id = $1 ORDER BY attempt DESC LIMIT 1"
            ))
            .bind(envelope_id)
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to read a bill")?;
            row.as_ref().map(bill_from_row).transpose()
        }

        /// Starts the next transfer attempt of a granted envelope.
        async fn new_attempt_in(
            tx: &mut Tx,
            envelope: &Envelope,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<Bill> {
            let attempt = envelope.attempts + 1;
            let out_bill_no = crate::payout::out_bill_no(envelope.id, attempt);
            sqlx::query(
                "UPDATE red_envelopes SET state = 'claiming', attempts = $2, updated_at = $3 \
                 WHERE id = $1 AND state = 'granted'",
            )
            .bind(envelope.id)
            .bind(i32::try_from(attempt)?)
            .bind(to_db(now))
            .execute(&mut **tx)
            .await
            .context("Failed to mark an envelope claimed")?;
            let row = sqlx::query(concat!(
                "INSERT INTO payout_bills (out_bill_no, envelope_id, attempt, state, created_at, \
                   updated_at) VALUES ($1, $2, $3, 'creating', $4, $4) RETURNING ",
                $crate::store::sql_rewards::bill_columns!()
            ))
            .bind(&out_bill_no)
            .bind(envelope.id)
            .bind(i32::try_from(attempt)?)
            .bind(to_db(now))
            .fetch_one(&mut **tx)
            .await
            .context("Failed to record a transfer attempt")?;
            bill_from_row(&row)
        }

        fn envelope_from_row(row: &Row) -> anyhow::Result<Envelope> {
            let state: String = row.try_get("state")?;
            let attempts: i32 = row.try_get("attempts")?;
            Ok(Envelope {
                id: row.try_get("id")?,
                complaint_id: ComplaintId(row.try_get("complaint_id")?),
                citizen_id: AccountId(row.try_get("citizen_id")?),
                amount_fen: row.try_get("amount_fen")?,
                state: parse_stored(&state, EnvelopeState::parse, "envelope state")?,
                reason: row.try_get("reason")?,
                day: row.try_get("day")?,
                month: row.try_get("month")?,
                decided_at: from_db(row.try_get("decided_at")?)?,
                updated_at: from_db(row.try_get("updated_at")?)?,
                claim_until: from_db(row.try_get("claim_until")?)?,
                attempts: u32::try_from(attempts)?,
                paid_at: optional_time(row, "paid_at")?,
                audit_flag: row.try_get("audit_flag")?,
            })
        }

        fn policy_from_row(row: &Row) -> anyhow::Result<RewardPolicy> {
            let daily_cap: i32 = row.try_get("daily_cap_per_citizen")?;
            let monthly_cap: i32 = row.try_get("monthly_cap_per_citizen")?;
            let claim_days: i32 = row.try_get("claim_days")?;
            Ok(RewardPolicy {
                range: AmountRange {
                    min_fen: row.try_get("min_amount_fen")?,
                    max_fen: row.try_get("max_amount_fen")?,
                },
                daily_cap_per_citizen: u32::try_from(daily_cap)?,
                monthly_cap_per_citizen: u32::try_from(monthly_cap)?,
                daily_budget_fen: row.try_get("daily_budget_fen")?,
                monthly_budget_fen: row.try_get("monthly_budget_fen")?,
                claim_days: u32::try_from(claim_days)?,
            })
        }

        async fn policy_in(tx: &mut Tx) -> anyhow::Result<RewardPolicy> {
            let row = sqlx::query(
                "SELECT min_amount_fen, max_amount_fen, daily_cap_per_citizen, \
                   monthly_cap_per_citizen, daily_budget_fen, monthly_budget_fen, claim_days \
                 FROM reward_policy WHERE id = 1",
            )
            .fetch_one(&mut **tx)
            .await
            .context("Failed to read the reward policy")?;
            policy_from_row(&row)
        }

        /// Locks a budget period's row, creating it first, and returns what
        /// it has committed.
        async fn lock_budget(tx: &mut Tx, period: &str) -> anyhow::Result<i64> {
            sqlx::query("INSERT INTO reward_budgets (period) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(period)
                .execute(&mut **tx)
                .await
                .context("Failed to open a budget period")?;
            // A no-op update takes the row lock on both engines.
            let committed: i64 = sqlx::query_scalar(
                "UPDATE reward_budgets SET committed_fen = committed_fen WHERE period = $1 \
                 RETURNING committed_fen",
            )
            .bind(period)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to lock a budget period")?;
            Ok(committed)
        }

        async fn commit_budget(
            tx: &mut Tx,
            envelope_day: &str,
            envelope_month: &str,
            delta_fen: i64,
        ) -> anyhow::Result<()> {
            let periods = [
                red_envelope::month_budget_key(envelope_month),
                red_envelope::day_budget_key(envelope_day),
            ];
            for period in periods {
                sqlx::query(
                    "UPDATE reward_budgets SET committed_fen = committed_fen + $2 WHERE period = $1",
                )
                .bind(&period)
                .bind(delta_fen)
                .execute(&mut **tx)
                .await
                .context("Failed to move budget")?;
            }
            Ok(())
        }

        /// Writes one balanced ledger entry for an envelope. The unique
        /// (envelope, kind) makes a second grant, payout or release fail.
        async fn post_in(
            tx: &mut Tx,
            envelope_id: i64,
            kind: EntryKind,
            amount_fen: i64,
            at: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            let entry: i64 = sqlx::query_scalar(
                "INSERT INTO ledger_entries (envelope_id, kind, occurred_at) VALUES ($1, $2, $3) \
                 RETURNING id",
            )
            .bind(envelope_id)
            .bind(kind.as_str())
            .bind(to_db(at))
            .fetch_one(&mut **tx)
            .await
            .context("Failed to write a ledger entry")?;
            for (account, amount) in red_envelope::postings(kind, amount_fen) {
                sqlx::query(
                    "INSERT INTO ledger_postings (entry_id, account, amount_fen) VALUES ($1, $2, $3)",
                )
                .bind(entry)
                .bind(account.as_str())
                .bind(amount)
                .execute(&mut **tx)
                .await
                .context("Failed to write a posting")?;
            }
            Ok(())
        }

        /// Applies a change's reward effect inside the change's transaction.
        async fn apply_reward_effect(
            tx: &mut Tx,
            change: &ComplaintChange,
            effect: &RewardEffect,
        ) -> anyhow::Result<()> {
            let now = change.after.updated_at;
            match effect {
                RewardEffect::Offer(offer) => grant_in(tx, &change.after, offer, now).await,
                RewardEffect::Withdraw { reason } => {
                    withdraw_in(tx, change.after.id, reason, now).await.map(|_| ())
                }
            }
        }

        /// Decides the envelope of a complaint being accepted: reads the
        /// caps and budgets under their locks, records the decision and,
        /// for a grant, commits the budget and posts it.
        async fn grant_in(
            tx: &mut Tx,
            complaint: &Complaint,
            offer: &EnvelopeOffer,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            let policy = policy_in(tx).await?;
            let (day, month) = red_envelope::periods(now);

            // Caps are per citizen: their row serialises their grants.
            sqlx::query("UPDATE accounts SET feed_sequence = feed_sequence WHERE id = $1")
                .bind(complaint.citizen_id.0)
                .execute(&mut **tx)
                .await
                .context("Failed to lock the citizen")?;
            let committed_this_month_fen =
                lock_budget(tx, &red_envelope::month_budget_key(&month)).await?;
            let committed_today_fen = lock_budget(tx, &red_envelope::day_budget_key(&day)).await?;
            let counts = sqlx::query(
                "SELECT COUNT(*) AS month_count, \
                   CAST(COALESCE(SUM(CASE WHEN day = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                     AS day_count \
                 FROM red_envelopes \
                 WHERE citizen_id = $1 AND month = $3 AND state <> 'not_granted'",
            )
            .bind(complaint.citizen_id.0)
            .bind(&day)
            .bind(&month)
            .fetch_one(&mut **tx)
            .await
            .context("Failed to count a citizen's envelopes")?;

            let facts = GrantFacts {
                kind: complaint.kind,
                channel: complaint.channel,
                merged: complaint.handling.merged_into.is_some(),
                author_blocked: offer.author_blocked,
                citizen_today: u32::try_from(counts.try_get::<i64, _>("day_count")?)?,
                citizen_this_month: u32::try_from(counts.try_get::<i64, _>("month_count")?)?,
                committed_today_fen,
                committed_this_month_fen,
            };
            let (amount, state, reason) =
                match red_envelope::decide_grant(&facts, &policy, offer.amount_fen) {
                    GrantDecision::Granted { amount_fen } => {
                        (amount_fen, EnvelopeState::Granted, red_envelope::ELIGIBLE)
                    }
                    GrantDecision::NotGranted(why) => (0, EnvelopeState::NotGranted, why.as_str()),
                };

            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO red_envelopes \
                   (complaint_id, citizen_id, amount_fen, state, reason, day, month, decided_at, \
                    updated_at, claim_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
                 ON CONFLICT (complaint_id) DO NOTHING RETURNING id",
            )
            .bind(complaint.id.0)
            .bind(complaint.citizen_id.0)
            .bind(amount)
            .bind(state.as_str())
            .bind(reason)
            .bind(&day)
            .bind(&month)
            .bind(to_db(now))
            .bind(to_db(policy.claim_until(now)))
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to record an envelope decision")?;
            let Some(envelope_id) = inserted else {
                // Decided before: a complaint earns one envelope at most.
                return Ok(());
            };
            if state == EnvelopeState::Granted {
                commit_budget(tx, &day, &month, amount).await?;
                post_in(tx, envelope_id, EntryKind::Grant, amount, now).await?;
            }
            Ok(())
        }

        /// Gives an envelope's money back to the budget, moving it from a
        /// pending state to `to`. False when it was not pending.
        async fn release_envelope_in(
            tx: &mut Tx,
            envelope_id: i64,
            from: &[EnvelopeState],
            to: EnvelopeState,
            reason: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<bool> {
            let mut sql = sqlx::QueryBuilder::<$db>::new("UPDATE red_envelopes SET state = ");
            sql.push_bind(to.as_str())
                .push(", reason = ")
                .push_bind(reason.to_owned())
                .push(", updated_at = ")
                .push_bind(to_db(now))
                .push(" WHERE id = ")
                .push_bind(envelope_id)
                .push(" AND state IN (");
            let mut states = sql.separated(", ");
            for state in from {
                states.push_bind(state.as_str());
            }
            sql.push(") RETURNING amount_fen, day, month");
            let row = sql
                .build()
                .fetch_optional(&mut **tx)
                .await
                .context("Failed to release an envelope")?;
            let Some(row) = row else {
                return Ok(false);
            };
            let amount: i64 = row.try_get("amount_fen")?;
            let day: String = row.try_get("day")?;
            let month: String = row.try_get("month")?;
            lock_budget(tx, &red_envelope::month_budget_key(&month)).await?;
            lock_budget(tx, &red_envelope::day_budget_key(&day)).await?;
            commit_budget(tx, &day, &month, -amount).await?;
            post_in(tx, envelope_id, EntryKind::Release, amount, now).await?;
            Ok(true)
        }

        /// Cancels a complaint's unclaimed envelope; flags one that was
        /// paid or whose transfer is open, for the auditor.
        async fn withdraw_in(
            tx: &mut Tx,
            complaint: ComplaintId,
            reason: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<Withdrawal> {
            let row = sqlx::query(concat!(
                "SELECT ",
                $crate::store::sql_rewards::envelope_columns!(),
                " FROM red_envelopes WHERE complaint_id = $1"
            ))
            .bind(complaint.0)
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to read an envelope")?;
            let Some(envelope) = row.as_ref().map(envelope_from_row).transpose()? else {
                return Ok(Withdrawal::Nothing);
            };
            let cancelled = release_envelope_in(
                tx,
                envelope.id,
                &[EnvelopeState::Granted],
                EnvelopeState::Cancelled,
                reason,
                now,
            )
            .await?;
            if cancelled {
                return Ok(Withdrawal::Cancelled);
            }
            // TODO(rewards): an envelope withdrawn while its transfer waits
            // for the citizen's confirmation is only flagged; the worker
            // should cancel the bill and release the money once closed.
            if !matches!(envelope.state, EnvelopeState::Paid | EnvelopeState::Claiming) {
                return Ok(Withdrawal::Nothing);
            }
            let flag = format!("withdrawn after {}: {reason}", envelope.state.as_str());
            sqlx::query("UPDATE red_envelopes SET audit_flag = $2, updated_at = $3 WHERE id = $1")
                .bind(envelope.id)
                .bind(flag)
                .bind(to_db(now))
                .execute(&mut **tx)
                .await
                .context("Failed to flag an envelope")?;
            Ok(Withdrawal::Flagged)
        }

        #[async_trait::async_trait]
        impl RewardStore for $store {
            async fn reward_policy(&self) -> anyhow::Result<RewardPolicy> {
                let mut tx = self.pool.begin().await.context("Failed to begin")?;
                let policy = policy_in(&mut tx).await?;
                tx.commit().await.context("Failed to end a read")?;
                Ok(policy)
            }

            async fn save_reward_policy(
                &self,
                policy: &RewardPolicy,
                audit: &AuditDraft,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                sqlx::query(
                    "UPDATE reward_policy SET min_amount_fen = $1, max_amount_fen = $2, \
                       daily_cap_per_citizen = $3, monthly_cap_per_citizen = $4, \
                       daily_budget_fen = $5, monthly_budget_fen = $6, claim_days = $7, \
                       updated_at = $8 \
                     WHERE id = 1",
                )
                .bind(policy.range.min_fen)
                .bind(policy.range.max_fen)
                .bind(i32::try_from(policy.daily_cap_per_citizen)?)
                .bind(i32::try_from(policy.monthly_cap_per_citizen)?)
                .bind(policy.daily_budget_fen)
                .bind(policy.monthly_budget_fen)
                .bind(i32::try_from(policy.claim_days)?)
                .bind(to_db(audit.occurred_at))
                .execute(&mut *tx)
                .await
                .context("Failed to save the reward policy")?;
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit the reward policy")?;
                Ok(())
            }

            async fn envelope(&self, id: i64) -> anyhow::Result<Option<Envelope>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_rewards::envelope_columns!(),
                    " FROM red_envelopes WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read an envelope")?;
                row.as_ref().map(envelope_from_row).transpose()
            }

            async fn envelope_of_complaint(
                &self,
                id: ComplaintId,
            ) -> anyhow::Result<Option<Envelope>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_rewards::envelope_columns!(),
                    " FROM red_envelopes WHERE complaint_id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a complaint's envelope")?;
                row.as_ref().map(envelope_from_row).transpose()
            }

            async fn envelopes(&self, query: &EnvelopeQuery) -> anyhow::Result<Vec<Envelope>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::sql_rewards::envelope_columns!(),
                    " FROM red_envelopes WHERE 1 = 1"
                ));
                if let Some(state) = query.state {
                    sql.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(citizen) = query.citizen_id {
                    sql.push(" AND citizen_id = ").push_bind(citizen.0);
                }
                if let Some(complaint) = query.complaint_id {
                    sql.push(" AND complaint_id = ").push_bind(complaint.0);
                }
                if let Some(day) = &query.day {
                    sql.push(" AND day = ").push_bind(day.clone());
                }
                if let Some(month) = &query.month {
                    sql.push(" AND month = ").push_bind(month.clone());
                }
                if query.flagged_only {
                    sql.push(" AND audit_flag IS NOT NULL");
                }
                if let Some(before) = query.before_id {
                    sql.push(" AND id < ").push_bind(before);
                }
                sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list envelopes")?;
                rows.iter().map(envelope_from_row).collect()
            }

            async fn period_totals(
                &self,
                day: Option<&str>,
                month: &str,
            ) -> anyhow::Result<PeriodTotals> {
                let (column, value, period) = match day {
                    Some(day) => ("day", day, red_envelope::day_budget_key(day)),
                    None => ("month", month, red_envelope::month_budget_key(month)),
                };
                let sum = |states: &str| {
                    format!(
                        "CAST(COALESCE(SUM(CASE WHEN state IN ({states}) THEN amount_fen \
                         ELSE 0 END), 0) AS BIGINT)"
                    )
                };
                let sql = format!(
                    "SELECT \
                       CAST(COALESCE(SUM(CASE WHEN state <> 'not_granted' THEN 1 ELSE 0 END), 0) \
                         AS BIGINT) AS granted_count, \
                       CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS granted_fen, \
                       {} AS paid_fen, {} AS pending_fen, {} AS cancelled_fen, \
                       {} AS expired_fen, {} AS failed_fen, \
                       CAST(COALESCE(SUM(CASE WHEN state = 'not_granted' THEN 1 ELSE 0 END), 0) \
                         AS BIGINT) AS not_granted_count \
                     FROM red_envelopes WHERE {column} = $1",
                    sum("'paid'"),
                    sum("'granted', 'claiming'"),
                    sum("'cancelled'"),
                    sum("'expired'"),
                    sum("'failed'"),
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(value)
                    .fetch_one(&self.pool)
                    .await
                    .context("Failed to total envelopes")?;
                let committed: Option<i64> =
                    sqlx::query_scalar("SELECT committed_fen FROM reward_budgets WHERE period = $1")
                        .bind(period)
                        .fetch_optional(&self.pool)
                        .await
                        .context("Failed to read a budget period")?;
                Ok(PeriodTotals {
                    granted_count: u64::try_from(row.try_get::<i64, _>("granted_count")?)?,
                    granted_fen: row.try_get("granted_fen")?,
                    paid_fen: row.try_get("paid_fen")?,
                    pending_fen: row.try_get("pending_fen")?,
                    cancelled_fen: row.try_get("cancelled_fen")?,
                    expired_fen: row.try_get("expired_fen")?,
                    failed_fen: row.try_get("failed_fen")?,
                    not_granted_count: u64::try_from(row.try_get::<i64, _>("not_granted_count")?)?,
                    committed_fen: committed.unwrap_or(0),
                })
            }

            async fn ledger_state(&self) -> anyhow::Result<LedgerState> {
                // One snapshot for everything the report compares.
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let unbalanced: Vec<i64> = sqlx::query_scalar(
                    "SELECT e.id FROM ledger_entries e \
                     LEFT JOIN ledger_postings p ON p.entry_id = e.id \
                     GROUP BY e.id HAVING COALESCE(SUM(p.amount_fen), 0) <> 0 \
                       OR COUNT(p.id) < 2 ORDER BY e.id",
                )
                .fetch_all(&mut *tx)
                .await
                .context("Failed to check ledger entries")?;
                let totals = sqlx::query(
                    "SELECT \
                       (SELECT COUNT(*) FROM ledger_entries) AS entries, \
                       (SELECT COUNT(*) FROM ledger_postings) AS postings, \
                       CAST(COALESCE(SUM(CASE WHEN account = 'budget' THEN amount_fen END), 0) \
                         AS BIGINT) AS budget, \
                       CAST(COALESCE(SUM(CASE WHEN account = 'owed' THEN amount_fen END), 0) \
                         AS BIGINT) AS owed, \
                       CAST(COALESCE(SUM(CASE WHEN account = 'paid_out' THEN amount_fen END), 0) \
                         AS BIGINT) AS paid_out \
                     FROM ledger_postings",
                )
                .fetch_one(&mut *tx)
                .await
                .context("Failed to total the ledger")?;
                let rows = sqlx::query(
                    "SELECT r.id, r.state, r.amount_fen, \
                       CAST(COALESCE(SUM(CASE WHEN p.account = 'budget' THEN p.amount_fen END), 0) \
                         AS BIGINT) AS budget, \
                       CAST(COALESCE(SUM(CASE WHEN p.account = 'owed' THEN p.amount_fen END), 0) \
                         AS BIGINT) AS owed, \
                       CAST(COALESCE(SUM(CASE WHEN p.account = 'paid_out' THEN p.amount_fen END), \
                         0) AS BIGINT) AS paid_out \
                     FROM red_envelopes r \
                     LEFT JOIN ledger_entries e ON e.envelope_id = r.id \
                     LEFT JOIN ledger_postings p ON p.entry_id = e.id \
                     GROUP BY r.id, r.state, r.amount_fen ORDER BY r.id",
                )
                .fetch_all(&mut *tx)
                .await
                .context("Failed to read envelope balances")?;
                let committed: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(committed_fen), 0) AS BIGINT) FROM reward_budgets \
                     WHERE period LIKE 'month:%'",
                )
                .fetch_one(&mut *tx)
                .await
                .context("Failed to total the budgets")?;
                tx.rollback().await.context("Failed to end a read")?;

                let mut envelopes = Vec::with_capacity(rows.len());
                for row in &rows {
                    let state: String = row.try_get("state")?;
                    envelopes.push(EnvelopeBalance {
                        envelope_id: row.try_get("id")?,
                        state: parse_stored(&state, EnvelopeState::parse, "envelope state")?,
                        amount_fen: row.try_get("amount_fen")?,
                        budget_fen: row.try_get("budget")?,
                        owed_fen: row.try_get("owed")?,
                        paid_out_fen: row.try_get("paid_out")?,
                    });
                }
                Ok(LedgerState {
                    unbalanced_entries: unbalanced,
                    entry_count: u64::try_from(totals.try_get::<i64, _>("entries")?)?,
                    posting_count: u64::try_from(totals.try_get::<i64, _>("postings")?)?,
                    budget_fen: totals.try_get("budget")?,
                    owed_fen: totals.try_get("owed")?,
                    paid_out_fen: totals.try_get("paid_out")?,
                    committed_fen: committed,
                    envelopes,
                })
            }

            async fn withdraw_envelope(
                &self,
                complaint: ComplaintId,
                reason: &str,
                audit: &AuditDraft,
            ) -> anyhow::Result<Withdrawal> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                // The complaint's row first, as every writer of it does.
                sqlx::query("UPDATE complaints SET version = version WHERE id = $1")
                    .bind(complaint.0)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to lock a complaint")?;
                let outcome = withdraw_in(&mut tx, complaint, reason, audit.occurred_at).await?;
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a withdrawal")?;
                Ok(outcome)
            }

            async fn expire_unclaimed(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
                let due: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM red_envelopes WHERE state = 'granted' AND claim_until <= $1 \
                     ORDER BY id LIMIT 500",
                )
                .bind(to_db(now))
                .fetch_all(&self.pool)
                .await
                .context("Failed to find unclaimed envelopes")?;
                let mut expired = 0;
                for id in due {
                    let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                    let released = release_envelope_in(
                        &mut tx,
                        id,
                        &[EnvelopeState::Granted],
                        EnvelopeState::Expired,
                        "unclaimed",
                        now,
                    )
                    .await?;
                    tx.commit().await.context("Failed to commit an expiry")?;
                    expired += u64::from(released);
                }
                Ok(expired)
            }
        }

        #[async_trait::async_trait]
        impl PayoutStore for $store {
            async fn open_claim(
                &self,
                envelope_id: i64,
                citizen: AccountId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<ClaimStart>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let Some(envelope) = lock_envelope(&mut tx, envelope_id).await? else {
                    return Ok(None);
                };
                if envelope.citizen_id != citizen {
                    return Ok(None);
                }
                let start = match envelope.state {
                    EnvelopeState::Granted if envelope.claim_until <= now => {
                        let states = [EnvelopeState::Granted];
                        release_envelope_in(&mut tx, envelope.id, &states, EnvelopeState::Expired, "unclaimed", now)
                            .await?;
                        ClaimStart::Settled(envelope_in(&mut tx, envelope.id).await?)
                    }
                    EnvelopeState::Granted => {
                        let bill = new_attempt_in(&mut tx, &envelope, now).await?;
                        let envelope = envelope_in(&mut tx, envelope.id).await?;
                        ClaimStart::Open { envelope, bill }
                    }
                    EnvelopeState::Claiming => {
                        let bill = latest_bill_in(&mut tx, envelope.id)
                            .await?
                            .context("a claiming envelope has no bill")?;
                        ClaimStart::Open { envelope, bill }
                    }
                    _ => ClaimStart::Settled(envelope),
                };
                tx.commit().await.context("Failed to commit a claim")?;
                Ok(Some(start))
            }

            async fn lease_bill(
                &self,
                out_bill_no: &str,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<bool> {
                let taken = sqlx::query(
                    "UPDATE payout_bills SET lease_owner = $2, lease_until = $4 \
                     WHERE out_bill_no = $1 \
                       AND (lease_until IS NULL OR lease_until <= $3 OR lease_owner = $2)",
                )
                .bind(out_bill_no)
                .bind(owner)
                .bind(to_db(now))
                .bind(to_db(until))
                .execute(&self.pool)
                .await
                .context("Failed to lease a bill")?;
                Ok(taken.rows_affected() == 1)
            }

            async fn release_bill(&self, out_bill_no: &str, owner: &str) -> anyhow::Result<()> {
                sqlx::query(
                    "UPDATE payout_bills SET lease_owner = NULL, lease_until = NULL \
                     WHERE out_bill_no = $1 AND lease_owner = $2",
                )
                .bind(out_bill_no)
                .bind(owner)
                .execute(&self.pool)
                .await
                .context("Failed to release a bill")?;
                Ok(())
            }

            async fn lease_open_bills(
                &self,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
                idle_since: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> anyhow::Result<Vec<Bill>> {
                // PostgreSQL replicas skip the rows another one is leasing
                // right now; the lease condition keeps each bill with one.
                let skip_locked = match ENGINE {
                    crate::store::Engine::Postgres => " FOR UPDATE SKIP LOCKED",
                    crate::store::Engine::Sqlite => "",
                };
                let sql = format!(
                    concat!(
                        "UPDATE payout_bills SET lease_owner = $1, lease_until = $3 \
                         WHERE out_bill_no IN (SELECT out_bill_no FROM payout_bills \
                           WHERE state IN ('creating', 'waiting', 'cancelling') \
                             AND (lease_until IS NULL OR lease_until <= $2) \
                             AND updated_at <= $4 \
                           ORDER BY updated_at LIMIT $5{}) \
                         RETURNING ",
                        $crate::store::sql_rewards::bill_columns!()
                    ),
                    skip_locked
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(to_db(now))
                    .bind(to_db(until))
                    .bind(to_db(idle_since))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to lease open bills")?;
                rows.iter().map(bill_from_row).collect()
            }

            async fn bill(&self, out_bill_no: &str) -> anyhow::Result<Option<Bill>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_rewards::bill_columns!(),
                    " FROM payout_bills WHERE out_bill_no = $1"
                ))
                .bind(out_bill_no)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a bill")?;
                row.as_ref().map(bill_from_row).transpose()
            }

            async fn update_bill(
                &self,
                out_bill_no: &str,
                update: &BillUpdate,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<()> {
                sqlx::query(
                    "UPDATE payout_bills SET state = $2, \
                       transfer_bill_no = COALESCE($3, transfer_bill_no), \
                       package_info = COALESCE($4, package_info), updated_at = $5 \
                     WHERE out_bill_no = $1 AND state IN ('creating', 'waiting', 'cancelling')",
                )
                .bind(out_bill_no)
                .bind(update.state.as_str())
                .bind(&update.transfer_bill_no)
                .bind(&update.package_info)
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to update a bill")?;
                Ok(())
            }

            async fn settle_bill(
                &self,
                out_bill_no: &str,
                settlement: &BillSettlement,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<Envelope>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let envelope_id: Option<i64> =
                    sqlx::query_scalar("SELECT envelope_id FROM payout_bills WHERE out_bill_no = $1")
                        .bind(out_bill_no)
                        .fetch_optional(&mut *tx)
                        .await
                        .context("Failed to find a bill")?;
                let Some(envelope_id) = envelope_id else {
                    return Ok(None);
                };
                let envelope = lock_envelope(&mut tx, envelope_id).await?.context("a bill without envelope")?;
                let (state, reason) = match settlement {
                    BillSettlement::Paid => (BillState::Success, None),
                    BillSettlement::Closed { reason } => (BillState::Closed, Some(reason.clone())),
                };
                let ended = sqlx::query(
                    "UPDATE payout_bills SET state = $2, fail_reason = $3, updated_at = $4 \
                     WHERE out_bill_no = $1 AND state IN ('creating', 'waiting', 'cancelling')",
                )
                .bind(out_bill_no)
                .bind(state.as_str())
                .bind(&reason)
                .bind(to_db(now))
                .execute(&mut *tx)
                .await
                .context("Failed to end a bill")?;
                if ended.rows_affected() == 0 {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(Some(envelope));
                }

                match settlement {
                    BillSettlement::Paid => {
                        sqlx::query(
                            "UPDATE red_envelopes SET state = 'paid', paid_at = $2, updated_at = $2 \
                             WHERE id = $1 AND state = 'claiming'",
                        )
                        .bind(envelope.id)
                        .bind(to_db(now))
                        .execute(&mut *tx)
                        .await
                        .context("Failed to mark an envelope paid")?;
                        post_in(&mut tx, envelope.id, EntryKind::Payout, envelope.amount_fen, now).await?;
                    }
                    BillSettlement::Closed { reason } => {
                        close_attempt_in(&mut tx, &envelope, reason, now).await?;
                    }
                }
                let envelope = envelope_in(&mut tx, envelope.id).await?;
                tx.commit().await.context("Failed to commit a settled bill")?;
                Ok(Some(envelope))
            }

            async fn record_notification(
                &self,
                id: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<bool> {
                let inserted = sqlx::query(
                    "INSERT INTO payout_notifications (id, received_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to record a notification")?;
                Ok(inserted.rows_affected() == 1)
            }

            async fn bills_of(&self, envelope_id: i64) -> anyhow::Result<Vec<Bill>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_rewards::bill_columns!(),
                    " FROM payout_bills WHERE envelope_id = $1 ORDER BY attempt"
                ))
                .bind(envelope_id)
                .fetch_all(&self.pool)
                .await
                .context("Failed to read an envelope's bills")?;
                rows.iter().map(bill_from_row).collect()
            }
        }

        /// After a bill closed unpaid: the envelope may be claimed again,
        /// unless its window passed (expired) or its attempts ran out
        /// (failed, with the provider's reason for staff).
        async fn close_attempt_in(
            tx: &mut Tx,
            envelope: &Envelope,
            reason: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            let claiming = [EnvelopeState::Claiming];
            if envelope.claim_until <= now {
                release_envelope_in(tx, envelope.id, &claiming, EnvelopeState::Expired, "unclaimed", now).await?;
            } else if envelope.attempts >= red_envelope::MAX_TRANSFER_ATTEMPTS {
                release_envelope_in(tx, envelope.id, &claiming, EnvelopeState::Failed, reason, now).await?;
            } else {
                sqlx::query(
                    "UPDATE red_envelopes SET state = 'granted', updated_at = $2 \
                     WHERE id = $1 AND state = 'claiming'",
                )
                .bind(envelope.id)
                .bind(to_db(now))
                .execute(&mut **tx)
                .await
                .context("Failed to reopen an envelope")?;
            }
            Ok(())
        }
    };
}

pub(crate) use {bill_columns, envelope_columns, reward_store_impl};
