//! The personal-data SQL, shared by both engines like `sql.rs`, whose
//! helpers it uses, as it does `sql_staff.rs`'s `insert_audit`,
//! `revoke_sessions_in` and `is_postgres`: the macros expand into the same
//! engine module.

macro_rules! personal_data_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::personal_data::{PurgeCutoffs, PurgeReport};
        use crate::store::personal_data::{
            CipherCensus, CipherColumn, CitizenDeletion, LinkedWeChat, PersonalDataStore, Reseal,
        };

        /// The values of a column not under the current key, claimed for
        /// this transaction. PostgreSQL skips rows another replica's batch
        /// holds; SQLite's BEGIN IMMEDIATE already admits one writer.
        async fn claim_stale(
            tx: &mut Tx,
            column: CipherColumn,
            current_prefix: &str,
            limit: u32,
        ) -> anyhow::Result<Vec<(i64, String)>> {
            let (table, key, field) = column.parts();
            let lock = if is_postgres() { " FOR UPDATE SKIP LOCKED" } else { "" };
            let sql = format!(
                "SELECT {key} AS id, {field} AS value FROM {table} \
                 WHERE {field} IS NOT NULL AND {field} NOT LIKE $1 \
                 ORDER BY {key} LIMIT $2{lock}"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(format!("{current_prefix}%"))
                .bind(i64::from(limit))
                .fetch_all(&mut **tx)
                .await
                .with_context(|| format!("Failed to claim values of {}", column.name()))?;
            rows.iter()
                .map(|row| Ok((row.try_get("id")?, row.try_get("value")?)))
                .collect()
        }

        /// Writes a re-encrypted value, unless the row changed meanwhile.
        async fn replace_cipher(
            tx: &mut Tx,
            column: CipherColumn,
            id: i64,
            old: &str,
            new: &str,
        ) -> anyhow::Result<u64> {
            let (table, key, field) = column.parts();
            let sql = format!("UPDATE {table} SET {field} = $3 WHERE {key} = $1 AND {field} = $2");
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(old)
                .bind(new)
                .execute(&mut **tx)
                .await
                .with_context(|| format!("Failed to re-encrypt a value of {}", column.name()))?;
            Ok(done.rows_affected())
        }

        /// Empties every identifying column of a citizen's account and
        /// frees its sign-in subject for a new account.
        async fn blank_citizen(tx: &mut Tx, id: i64, now: DbTime) -> anyhow::Result<()> {
            sqlx::query(
                "DELETE FROM sms_codes WHERE phone_index = \
                   (SELECT phone_index FROM accounts WHERE id = $1)",
            )
            .bind(id)
            .execute(&mut **tx)
            .await
            .context("Failed to delete a citizen's SMS code")?;
            sqlx::query("DELETE FROM citizen_wechat WHERE account_id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await
                .context("Failed to unlink a citizen's WeChat")?;
            sqlx::query(
                "UPDATE accounts SET provider = 'deleted', subject = $2, display_name = '', \
                   phone_cipher = NULL, phone_index = NULL, privacy_notice_version = NULL, \
                   privacy_notice_accepted_at = NULL, deleted_at = $3, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(format!("deleted:{id}"))
            .bind(now)
            .execute(&mut **tx)
            .await
            .context("Failed to blank a citizen's account")?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl PersonalDataStore for $store {
            async fn reencrypt_batch(
                &self,
                column: CipherColumn,
                current_prefix: &str,
                limit: u32,
                reseal: Reseal<'_>,
                audit: &AuditDraft,
            ) -> anyhow::Result<u64> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let stale = claim_stale(&mut tx, column, current_prefix, limit).await?;
                let mut changed = 0;
                for (id, old) in &stale {
                    let new = reseal(old).with_context(|| {
                        format!("Failed to re-encrypt {} of row {id}", column.name())
                    })?;
                    changed += replace_cipher(&mut tx, column, *id, old, &new).await?;
                }
                if changed > 0 {
                    let audit = audit.clone().detail(format!("{changed} values re-encrypted"));
                    insert_audit(&mut tx, &audit).await?;
                }
                tx.commit().await.context("Failed to commit a re-encryption batch")?;
                Ok(changed)
            }

            async fn cipher_census(
                &self,
                column: CipherColumn,
                current_prefix: &str,
            ) -> anyhow::Result<CipherCensus> {
                let (table, _, field) = column.parts();
                let sql = format!(
                    "SELECT COUNT(*) AS total, \
                       COUNT(CASE WHEN {field} LIKE $1 THEN 1 END) AS current \
                     FROM {table} WHERE {field} IS NOT NULL"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(format!("{current_prefix}%"))
                    .fetch_one(&self.pool)
                    .await
                    .with_context(|| format!("Failed to count values of {}", column.name()))?;
                let total: i64 = row.try_get("total")?;
                let current: i64 = row.try_get("current")?;
                Ok(CipherCensus {
                    total: u64::try_from(total)?,
                    current: u64::try_from(current)?,
                })
            }

            async fn linked_wechat(
                &self,
                citizen: AccountId,
            ) -> anyhow::Result<Vec<LinkedWeChat>> {
                let rows = sqlx::query(
                    "SELECT app_id, openid, unionid, linked_at FROM citizen_wechat \
                     WHERE account_id = $1 ORDER BY app_id",
                )
                .bind(citizen.0)
                .fetch_all(&self.pool)
                .await
                .context("Failed to read a citizen's WeChat identities")?;
                rows.iter()
                    .map(|row| {
                        Ok(LinkedWeChat {
                            app_id: row.try_get("app_id")?,
                            openid: row.try_get("openid")?,
                            unionid: row.try_get("unionid")?,
                            linked_at: from_db(row.try_get("linked_at")?)?,
                        })
                    })
                    .collect()
            }

            async fn contact_ciphers(
                &self,
                citizen: AccountId,
            ) -> anyhow::Result<Vec<(ComplaintId, String)>> {
                let rows = sqlx::query(
                    "SELECT id, contact_phone_cipher FROM complaints \
                     WHERE citizen_id = $1 AND contact_phone_cipher IS NOT NULL",
                )
                .bind(citizen.0)
                .fetch_all(&self.pool)
                .await
                .context("Failed to read a citizen's contact phones")?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            ComplaintId(row.try_get("id")?),
                            row.try_get("contact_phone_cipher")?,
                        ))
                    })
                    .collect()
            }

            async fn delete_citizen(
                &self,
                citizen: AccountId,
                now: chrono::DateTime<chrono::Utc>,
                audit: &AuditDraft,
            ) -> anyhow::Result<Option<CitizenDeletion>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let live: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM accounts \
                     WHERE id = $1 AND role = 'citizen' AND deleted_at IS NULL",
                )
                .bind(citizen.0)
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to read a citizen")?;
                if live.is_none() {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }

                let revoked_families = revoke_sessions_in(&mut tx, citizen, to_db(now)).await?;
                blank_citizen(&mut tx, citizen.0, to_db(now)).await?;
                let kept = sqlx::query(
                    "UPDATE complaints SET contact_phone_cipher = NULL, \
                       contact_phone_masked = NULL WHERE citizen_id = $1",
                )
                .bind(citizen.0)
                .execute(&mut *tx)
                .await
                .context("Failed to remove contact phones from complaints")?
                .rows_affected();
                let audit = audit.clone().detail(format!("{kept} complaints kept"));
                insert_audit(&mut tx, &audit).await?;
                tx.commit().await.context("Failed to commit an account deletion")?;
                Ok(Some(CitizenDeletion {
                    revoked_families,
                    complaints_kept: kept,
                }))
            }

            async fn purge_personal_data(
                &self,
                cutoffs: &PurgeCutoffs,
                audit: &AuditDraft,
            ) -> anyhow::Result<PurgeReport> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                    .bind(to_db(cutoffs.sessions_expired_before))
                    .execute(&mut *tx)
                    .await
                    .context("Failed to purge sessions")?
                    .rows_affected();
                let sms_codes = sqlx::query("DELETE FROM sms_codes WHERE expires_at < $1")
                    .bind(to_db(cutoffs.sms_codes_expired_before))
                    .execute(&mut *tx)
                    .await
                    .context("Failed to purge SMS codes")?
                    .rows_affected();
                let complaint_contacts = sqlx::query(
                    "UPDATE complaints SET contact_phone_cipher = NULL, \
                       contact_phone_masked = NULL \
                     WHERE (contact_phone_cipher IS NOT NULL OR contact_phone_masked IS NOT NULL) \
                       AND status IN ('closed', 'rejected', 'withdrawn') AND updated_at < $1",
                )
                .bind(to_db(cutoffs.contacts_closed_before))
                .execute(&mut *tx)
                .await
                .context("Failed to purge closed complaints' contact phones")?
                .rows_affected();

                let report = PurgeReport {
                    sessions,
                    sms_codes,
                    complaint_contacts,
                };
                if !report.is_empty() {
                    insert_audit(&mut tx, &audit.clone().detail(report.summary())).await?;
                }
                tx.commit().await.context("Failed to commit a retention purge")?;
                Ok(report)
            }
        }
    };
}

pub(crate) use personal_data_store_impl;
