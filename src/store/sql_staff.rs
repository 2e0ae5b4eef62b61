//! The SQL of staff credentials and the audit log, shared by both engines
//! like `sql.rs`, whose helpers (row decoders, `Tx`, time conversion) and
//! `sql_cases.rs`'s transaction helpers it uses: all three macros expand
//! into the same engine module.

/// The columns of a credential with its account, as
/// `credential_from_row` reads them.
macro_rules! credential_columns {
    () => {
        "a.id, a.role, a.unit_id, a.display_name, c.username, c.password_hash, \
         c.password_is_initial, c.failed_attempts, c.locked_until, c.disabled_at, \
         c.totp_secret_cipher, c.totp_confirmed_at, c.totp_last_step, c.last_sign_in_at, \
         c.created_at \
         FROM staff_credentials c JOIN accounts a ON a.id = c.account_id"
    };
}

macro_rules! staff_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::audit::{AuditAction, AuditDraft, AuditQuery, AuditRecord};
        use crate::domain::staff::{LockoutPolicy, SecondFactor, StaffCredential};
        use crate::store::staff::{CredentialChange, NewStaffAccount, StaffCreation, StaffStore};

        fn credential_from_row(row: &Row) -> anyhow::Result<StaffCredential> {
            let failed_attempts: i32 = row.try_get("failed_attempts")?;
            let secret_cipher: Option<String> = row.try_get("totp_secret_cipher")?;
            let last_step: Option<i64> = row.try_get("totp_last_step")?;
            let factor = match (secret_cipher, optional_time(row, "totp_confirmed_at")?) {
                (Some(secret_cipher), Some(_)) => SecondFactor::Active {
                    secret_cipher,
                    last_step: last_step.map(u64::try_from).transpose()?,
                },
                (Some(secret_cipher), None) => SecondFactor::Pending { secret_cipher },
                (None, _) => SecondFactor::None,
            };
            Ok(StaffCredential {
                account: account_from_row(row)?,
                username: row.try_get("username")?,
                password_hash: row.try_get("password_hash")?,
                password_is_initial: row.try_get("password_is_initial")?,
                failed_attempts: u32::try_from(failed_attempts)?,
                locked_until: optional_time(row, "locked_until")?,
                disabled: optional_time(row, "disabled_at")?.is_some(),
                factor,
                last_sign_in_at: optional_time(row, "last_sign_in_at")?,
                created_at: from_db(row.try_get("created_at")?)?,
            })
        }

        fn audit_from_row(row: &Row) -> anyhow::Result<AuditRecord> {
            let action: String = row.try_get("action")?;
            let actor_id: Option<i64> = row.try_get("actor_id")?;
            Ok(AuditRecord {
                id: row.try_get("id")?,
                draft: AuditDraft {
                    occurred_at: from_db(row.try_get("occurred_at")?)?,
                    actor_id: actor_id.map(AccountId),
                    actor_role: row.try_get("actor_role")?,
                    actor_unit_id: row.try_get("actor_unit_id")?,
                    action: parse_stored(&action, AuditAction::parse, "audit action")?,
                    target: row.try_get("target")?,
                    reason: row.try_get("reason")?,
                    detail: row.try_get("detail")?,
                },
            })
        }

        async fn insert_audit(tx: &mut Tx, draft: &AuditDraft) -> anyhow::Result<()> {
            sqlx::query(
                "INSERT INTO audit_records \
                   (occurred_at, actor_id, actor_role, actor_unit_id, action, target, reason, \
                    detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(to_db(draft.occurred_at))
            .bind(draft.actor_id.map(|id| id.0))
            .bind(&draft.actor_role)
            .bind(&draft.actor_unit_id)
            .bind(draft.action.as_str())
            .bind(&draft.target)
            .bind(&draft.reason)
            .bind(&draft.detail)
            .execute(&mut **tx)
            .await
            .context("Failed to write an audit record")?;
            Ok(())
        }

        /// Ends every open sign-in session of an account; returns their
        /// families, for the bus to end their streams.
        async fn revoke_sessions_in(
            tx: &mut Tx,
            id: AccountId,
            now: DbTime,
        ) -> anyhow::Result<Vec<String>> {
            let mut families: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $2 \
                 WHERE account_id = $1 AND revoked_at IS NULL RETURNING family_id",
            )
            .bind(id.0)
            .bind(now)
            .fetch_all(&mut **tx)
            .await
            .context("Failed to revoke an account's sessions")?;
            families.sort();
            families.dedup();
            Ok(families)
        }

        /// True when the PostgreSQL engine is in use: it needs an explicit
        /// table lock where SQLite's BEGIN IMMEDIATE already serialises.
        fn is_postgres() -> bool {
            ENGINE == crate::store::Engine::Postgres
        }

        /// The database's own retention floor, on its own clock: a purge
        /// asks for no row the audit triggers would refuse.
        fn audit_floor_condition() -> String {
            let days = crate::domain::audit::RETENTION_FLOOR_DAYS;
            if is_postgres() {
                format!(" AND occurred_at < now() - interval '{days} days'")
            } else {
                format!(
                    " AND occurred_at < \
                     (CAST(strftime('%s', 'now') AS INTEGER) - {days} * 86400) * 1000000"
                )
            }
        }

        /// Adds the assignments of one credential change to an UPDATE.
        fn push_change(
            sql: &mut sqlx::QueryBuilder<$db>,
            change: &CredentialChange,
            now: DbTime,
        ) {
            match change {
                CredentialChange::ResetPassword { password_hash, new_factor_cipher } => {
                    sql.push(", password_hash = ").push_bind(password_hash.clone());
                    sql.push(", password_is_initial = TRUE, failed_attempts = 0");
                    sql.push(", locked_until = NULL");
                    sql.push(", password_changed_at = ").push_bind(now);
                    if let Some(cipher) = new_factor_cipher {
                        sql.push(", totp_secret_cipher = ").push_bind(cipher.clone());
                        sql.push(", totp_confirmed_at = ").push_bind(now);
                        sql.push(", totp_last_step = NULL");
                    }
                }
                CredentialChange::ChangePassword { password_hash } => {
                    sql.push(", password_hash = ").push_bind(password_hash.clone());
                    sql.push(", password_is_initial = FALSE");
                    sql.push(", password_changed_at = ").push_bind(now);
                }
                CredentialChange::Unlock => {
                    sql.push(", failed_attempts = 0, locked_until = NULL");
                }
                CredentialChange::Disable => {
                    sql.push(", disabled_at = ").push_bind(now);
                }
                CredentialChange::Enable => {
                    sql.push(", disabled_at = NULL, failed_attempts = 0, locked_until = NULL");
                }
                CredentialChange::EnrollFactor { secret_cipher } => {
                    sql.push(", totp_secret_cipher = ").push_bind(secret_cipher.clone());
                    sql.push(", totp_confirmed_at = NULL, totp_last_step = NULL");
                }
                CredentialChange::ConfirmFactor { step, .. } => {
                    sql.push(", totp_confirmed_at = ").push_bind(now);
                    let step = i64::try_from(*step).unwrap_or(i64::MAX);
                    sql.push(", totp_last_step = ").push_bind(step);
                }
            }
        }

        /// The guard a change needs besides the account id.
        fn push_change_guard(sql: &mut sqlx::QueryBuilder<$db>, change: &CredentialChange) {
            match change {
                CredentialChange::EnrollFactor { .. } => {
                    sql.push(" AND totp_confirmed_at IS NULL");
                }
                CredentialChange::ConfirmFactor { secret_cipher, .. } => {
                    // The secret the code was checked against, still pending.
                    sql.push(" AND totp_confirmed_at IS NULL AND totp_secret_cipher = ")
                        .push_bind(secret_cipher.clone());
                }
                _ => {}
            }
        }

        #[async_trait::async_trait]
        impl StaffStore for $store {
            async fn staff_credential(
                &self,
                username: &str,
            ) -> anyhow::Result<Option<StaffCredential>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_staff::credential_columns!(),
                    " WHERE c.username = $1"
                ))
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a staff credential")?;
                row.as_ref().map(credential_from_row).transpose()
            }

            async fn staff_credential_of(
                &self,
                id: AccountId,
            ) -> anyhow::Result<Option<StaffCredential>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::store::sql_staff::credential_columns!(),
                    " WHERE c.account_id = $1"
                ))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a staff credential")?;
                row.as_ref().map(credential_from_row).transpose()
            }

            async fn staff_credentials(
                &self,
                unit_id: Option<&str>,
            ) -> anyhow::Result<Vec<StaffCredential>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    $crate::store::sql_staff::credential_columns!(),
                    " WHERE 1 = 1"
                ));
                if let Some(unit_id) = unit_id {
                    sql.push(" AND a.unit_id = ").push_bind(unit_id.to_owned());
                }
                sql.push(" ORDER BY a.id");
                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list staff credentials")?;
                rows.iter().map(credential_from_row).collect()
            }

            async fn create_staff_account(
                &self,
                new: &NewStaffAccount,
                first_admin_only: bool,
                audit: &AuditDraft,
            ) -> anyhow::Result<StaffCreation> {
                let now = to_db(audit.occurred_at);
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                if first_admin_only {
                    if is_postgres() {
                        // Self-conflicting: a second bootstrap waits, then sees the first.
                        sqlx::query("LOCK TABLE staff_credentials IN SHARE ROW EXCLUSIVE MODE")
                            .execute(&mut *tx)
                            .await
                            .context("Failed to lock staff credentials")?;
                    }
                    let existing: Option<i64> = sqlx::query_scalar(
                        "SELECT a.id FROM staff_credentials c \
                         JOIN accounts a ON a.id = c.account_id \
                         WHERE a.role = 'system_admin' AND c.disabled_at IS NULL LIMIT 1",
                    )
                    .fetch_optional(&mut *tx)
                    .await
                    .context("Failed to look for an administrator")?;
                    if existing.is_some() {
                        tx.rollback().await.context("Failed to roll back")?;
                        return Ok(StaffCreation::AdminExists);
                    }
                }

                let row = sqlx::query(
                    "INSERT INTO accounts \
                       (provider, subject, role, unit_id, display_name, created_at, updated_at) \
                     VALUES ('password', $1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (provider, subject) DO NOTHING \
                     RETURNING id, role, unit_id, display_name",
                )
                .bind(new.username.as_str())
                .bind(new.role.as_str())
                .bind(&new.unit_id)
                .bind(&new.display_name)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to insert a staff account")?;
                let Some(row) = row else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(StaffCreation::UsernameTaken);
                };
                let account = account_from_row(&row)?;

                sqlx::query(
                    "INSERT INTO staff_credentials \
                       (account_id, username, password_hash, password_is_initial, \
                        password_changed_at, totp_secret_cipher, totp_confirmed_at, created_at, \
                        updated_at) \
                     VALUES ($1, $2, $3, TRUE, $4, $5, $6, $4, $4)",
                )
                .bind(account.id.0)
                .bind(new.username.as_str())
                .bind(&new.password_hash)
                .bind(now)
                .bind(&new.factor_cipher)
                .bind(new.factor_cipher.as_ref().map(|_| now))
                .execute(&mut *tx)
                .await
                .context("Failed to store a staff credential")?;
                let mut audit = audit.clone();
                audit.target = crate::domain::audit::account_target(account.id);
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await.context("Failed to commit a new staff account")?;
                Ok(StaffCreation::Created(account))
            }

            async fn change_staff_credential(
                &self,
                id: AccountId,
                change: &CredentialChange,
                audit: &AuditDraft,
            ) -> anyhow::Result<Option<Vec<String>>> {
                let now = to_db(audit.occurred_at);
                let mut sql =
                    sqlx::QueryBuilder::<$db>::new("UPDATE staff_credentials SET updated_at = ");
                sql.push_bind(now);
                push_change(&mut sql, change, now);
                sql.push(" WHERE account_id = ").push_bind(id.0);
                push_change_guard(&mut sql, change);

                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let updated = sql
                    .build()
                    .execute(&mut *tx)
                    .await
                    .context("Failed to change a staff credential")?
                    .rows_affected();
                if updated != 1 {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }
                let families = if change.ends_sessions() {
                    revoke_sessions_in(&mut tx, id, now).await?
                } else {
                    Vec::new()
                };
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a credential change")?;
                Ok(Some(families))
            }

            async fn record_sign_in_failure(
                &self,
                id: AccountId,
                policy: &LockoutPolicy,
                lockout: &AuditDraft,
            ) -> anyhow::Result<bool> {
                let now = lockout.occurred_at;
                let max_failures = i32::try_from(policy.max_failures).unwrap_or(i32::MAX);
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                // One statement reads and writes the count, so concurrent
                // failures are all counted.
                let count: Option<i32> = sqlx::query_scalar(
                    "UPDATE staff_credentials SET \
                       failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 \
                                              ELSE failed_attempts + 1 END, \
                       locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $3 \
                                           ELSE locked_until END, \
                       updated_at = $4 \
                     WHERE account_id = $1 RETURNING failed_attempts",
                )
                .bind(id.0)
                .bind(max_failures)
                .bind(to_db(now + policy.lock_for))
                .bind(to_db(now))
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to count a failed sign-in")?;
                let locked = count == Some(0);
                if locked {
                    insert_audit(&mut tx, lockout).await?;
                }
                tx.commit().await.context("Failed to commit a failed sign-in")?;
                Ok(locked)
            }

            async fn record_sign_in_success(
                &self,
                id: AccountId,
                factor_step: Option<u64>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<bool> {
                let query = match factor_step {
                    // The step guard makes a replay lose even against a
                    // concurrent sign-in with the same code.
                    Some(step) => sqlx::query(
                        "UPDATE staff_credentials SET failed_attempts = 0, last_sign_in_at = $2, \
                           updated_at = $2, totp_last_step = $3 \
                         WHERE account_id = $1 AND disabled_at IS NULL \
                           AND (totp_last_step IS NULL OR totp_last_step < $3)",
                    )
                    .bind(id.0)
                    .bind(to_db(now))
                    .bind(i64::try_from(step)?),
                    None => sqlx::query(
                        "UPDATE staff_credentials SET failed_attempts = 0, last_sign_in_at = $2, \
                           updated_at = $2 \
                         WHERE account_id = $1 AND disabled_at IS NULL",
                    )
                    .bind(id.0)
                    .bind(to_db(now)),
                };
                let updated = query
                    .execute(&self.pool)
                    .await
                    .context("Failed to record a sign-in")?
                    .rows_affected();
                Ok(updated == 1)
            }

            async fn update_staff_audited(
                &self,
                account: &Account,
                audit: &AuditDraft,
            ) -> anyhow::Result<Option<Account>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let updated = update_staff_in(&mut tx, account, audit.occurred_at).await?;
                let Some(updated) = updated else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                };
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a staff change")?;
                Ok(Some(updated))
            }

            async fn save_unit_audited(
                &self,
                unit: &crate::domain::directory::Unit,
                audit: &AuditDraft,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                save_units_in(&mut tx, std::slice::from_ref(unit), audit.occurred_at).await?;
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a unit")?;
                Ok(())
            }

            async fn save_calendar_year_audited(
                &self,
                year: i32,
                exceptions: &[(chrono::NaiveDate, crate::domain::calendar::DayKind)],
                audit: &AuditDraft,
            ) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                save_calendar_year_in(&mut tx, year, exceptions, audit.occurred_at).await?;
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a calendar year")?;
                Ok(())
            }

            async fn reveal_contact(
                &self,
                id: ComplaintId,
                audit: &AuditDraft,
            ) -> anyhow::Result<Option<String>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let cipher: Option<Option<String>> =
                    sqlx::query_scalar("SELECT contact_phone_cipher FROM complaints WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .context("Failed to read a contact phone")?;
                let Some(cipher) = cipher.flatten() else {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                };
                insert_audit(&mut tx, audit).await?;
                tx.commit().await.context("Failed to commit a contact reveal")?;
                Ok(Some(cipher))
            }

            async fn audit_records(&self, query: &AuditQuery) -> anyhow::Result<Vec<AuditRecord>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, occurred_at, actor_id, actor_role, actor_unit_id, action, target, \
                     reason, detail FROM audit_records WHERE 1 = 1",
                );
                if let Some(actor) = query.actor_id {
                    sql.push(" AND actor_id = ").push_bind(actor.0);
                }
                if let Some(action) = query.action {
                    sql.push(" AND action = ").push_bind(action.as_str());
                }
                if let Some(target) = &query.target {
                    sql.push(" AND target = ").push_bind(target.clone());
                }
                if let Some(since) = query.since {
                    sql.push(" AND occurred_at >= ").push_bind(to_db(since));
                }
                if let Some(until) = query.until {
                    sql.push(" AND occurred_at < ").push_bind(to_db(until));
                }
                if let Some(before) = query.before_id {
                    sql.push(" AND id < ").push_bind(before);
                }
                sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to read the audit log")?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn purge_audit_records(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                audit: &AuditDraft,
            ) -> anyhow::Result<u64> {
                let mut sql = sqlx::QueryBuilder::<$db>::new("DELETE FROM audit_records");
                sql.push(" WHERE occurred_at < ").push_bind(to_db(before));
                sql.push(audit_floor_condition());

                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let deleted = sql
                    .build()
                    .execute(&mut *tx)
                    .await
                    .context("Failed to purge the audit log")?
                    .rows_affected();
                if deleted > 0 {
                    let audit = audit.clone().detail(format!("{deleted} records deleted"));
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await.context("Failed to commit a purge")?;
                Ok(deleted)
            }
        }
    };
}

pub(crate) use {credential_columns, staff_store_impl};
