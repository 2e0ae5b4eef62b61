//! The citizen-identity SQL, shared by both engines like `sql.rs`, whose
//! helpers (`account_in`, `account_from_row`, `Row`, `Tx`, …) it uses: the
//! macros expand into the same engine module.

macro_rules! identity_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::citizen::{CodeCheck, LinkOutcome};
        use crate::store::IdentityStore;
        use crate::store::identity::{
            CitizenRecord, NewSmsCode, NoticeAcceptance, PresentedCode, StoredPhone,
            WeChatIdentity,
        };

        const CITIZEN_COLUMNS: &str = "id, role, unit_id, display_name, phone_cipher, \
             phone_index, privacy_notice_version, privacy_notice_accepted_at";

        async fn citizen_where(
            pool: &sqlx::Pool<$db>,
            condition: &'static str,
            value: impl sqlx::Encode<'_, $db> + sqlx::Type<$db> + Send,
        ) -> anyhow::Result<Option<CitizenRecord>> {
            let sql = format!(
                "SELECT {CITIZEN_COLUMNS} FROM accounts WHERE role = 'citizen' AND {condition}"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(pool)
                .await
                .context("Failed to read a citizen")?;
            let Some(row) = row else {
                return Ok(None);
            };

            let id: i64 = row.try_get("id")?;
            let app_ids: Vec<String> = sqlx::query_scalar(
                "SELECT app_id FROM citizen_wechat WHERE account_id = $1 ORDER BY app_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await
            .context("Failed to read a citizen's WeChat links")?;
            let version: Option<String> = row.try_get("privacy_notice_version")?;
            let accepted_at = optional_time(&row, "privacy_notice_accepted_at")?;
            Ok(Some(CitizenRecord {
                account: account_from_row(&row)?,
                phone_cipher: row.try_get("phone_cipher")?,
                phone_index: row.try_get("phone_index")?,
                wechat_app_ids: app_ids,
                privacy_notice: version.zip(accepted_at).map(|(version, accepted_at)| {
                    NoticeAcceptance {
                        version,
                        accepted_at,
                    }
                }),
            }))
        }

        async fn insert_citizen(
            tx: &mut Tx,
            provider: &str,
            subject: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<i64> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts \
                   (provider, subject, role, unit_id, display_name, created_at, updated_at) \
                 VALUES ($1, $2, 'citizen', NULL, '', $3, $3) RETURNING id",
            )
            .bind(provider)
            .bind(subject)
            .bind(to_db(now))
            .fetch_one(&mut **tx)
            .await
            .context("Failed to create a citizen")?;
            Ok(id)
        }

        async fn record_notice(
            tx: &mut Tx,
            id: i64,
            notice: Option<&NoticeAcceptance>,
        ) -> anyhow::Result<()> {
            let Some(notice) = notice else {
                return Ok(());
            };
            sqlx::query(
                "UPDATE accounts SET privacy_notice_version = $2, \
                   privacy_notice_accepted_at = $3, updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(&notice.version)
            .bind(to_db(notice.accepted_at))
            .execute(&mut **tx)
            .await
            .context("Failed to record a privacy notice acceptance")?;
            Ok(())
        }

        /// Deletes the phone's code if the presented one is it and still
        /// usable; whether it did.
        async fn use_up_code(tx: &mut Tx, presented: &PresentedCode) -> anyhow::Result<bool> {
            let used = sqlx::query(
                "DELETE FROM sms_codes WHERE phone_index = $1 AND code_hash = $2 \
                   AND expires_at > $3 AND failed_attempts < $4",
            )
            .bind(&presented.phone_index)
            .bind(&presented.code_hash)
            .bind(to_db(presented.now))
            .bind(i32::try_from(presented.max_attempts)?)
            .execute(&mut **tx)
            .await
            .context("Failed to use up an SMS code")?;
            Ok(used.rows_affected() == 1)
        }

        async fn wechat_holder(
            tx: &mut Tx,
            identity: &WeChatIdentity,
        ) -> anyhow::Result<Option<(i64, Option<String>)>> {
            let row = sqlx::query(
                "SELECT account_id, unionid FROM citizen_wechat WHERE app_id = $1 AND openid = $2",
            )
            .bind(&identity.app_id)
            .bind(&identity.openid)
            .fetch_optional(&mut **tx)
            .await
            .context("Failed to look up a WeChat identity")?;
            row.map(|row| Ok((row.try_get("account_id")?, row.try_get("unionid")?)))
                .transpose()
        }

        /// Adds the unionid once WeChat tells it (it does not always).
        async fn keep_unionid(
            tx: &mut Tx,
            identity: &WeChatIdentity,
            stored: Option<String>,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<()> {
            if identity.unionid.is_none() || identity.unionid == stored {
                return Ok(());
            }
            sqlx::query(
                "UPDATE citizen_wechat SET unionid = $3, updated_at = $4 \
                 WHERE app_id = $1 AND openid = $2",
            )
            .bind(&identity.app_id)
            .bind(&identity.openid)
            .bind(&identity.unionid)
            .bind(to_db(now))
            .execute(&mut **tx)
            .await
            .context("Failed to keep a unionid")?;
            Ok(())
        }

        /// Links a WeChat identity to an account; false when another
        /// transaction linked the identity first.
        async fn insert_wechat(
            tx: &mut Tx,
            id: i64,
            identity: &WeChatIdentity,
            now: chrono::DateTime<chrono::Utc>,
        ) -> anyhow::Result<bool> {
            let inserted = sqlx::query(
                "INSERT INTO citizen_wechat \
                   (app_id, openid, account_id, unionid, linked_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&identity.app_id)
            .bind(&identity.openid)
            .bind(id)
            .bind(&identity.unionid)
            .bind(to_db(now))
            .execute(&mut **tx)
            .await
            .context("Failed to link a WeChat identity")?;
            Ok(inserted.rows_affected() == 1)
        }

        #[async_trait::async_trait]
        impl IdentityStore for $store {
            async fn citizen(&self, id: AccountId) -> anyhow::Result<Option<CitizenRecord>> {
                citizen_where(&self.pool, "id = $1", id.0).await
            }

            async fn citizen_by_wechat(
                &self,
                app_id: &str,
                openid: &str,
            ) -> anyhow::Result<Option<CitizenRecord>> {
                let Some(id) = self.wechat_holder_of(app_id, openid).await? else {
                    return Ok(None);
                };
                self.citizen(AccountId(id)).await
            }

            async fn citizen_by_phone(
                &self,
                phone_index: &str,
            ) -> anyhow::Result<Option<CitizenRecord>> {
                citizen_where(&self.pool, "phone_index = $1", phone_index.to_owned()).await
            }

            async fn wechat_identity(
                &self,
                citizen: AccountId,
                app_id: &str,
            ) -> anyhow::Result<Option<WeChatIdentity>> {
                let row = sqlx::query(
                    "SELECT openid, unionid FROM citizen_wechat \
                     WHERE account_id = $1 AND app_id = $2",
                )
                .bind(citizen.0)
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to read a citizen's WeChat identity")?;
                row.map(|row| {
                    Ok(WeChatIdentity {
                        app_id: app_id.to_owned(),
                        openid: row.try_get("openid")?,
                        unionid: row.try_get("unionid")?,
                    })
                })
                .transpose()
            }

            async fn sign_in_wechat(
                &self,
                identity: &WeChatIdentity,
                notice: Option<&NoticeAcceptance>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Account> {
                // Two first sign-ins of one person may race: the loser of the
                // insert starts over and finds the winner's account.
                for _ in 0..2 {
                    let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                    let id = match wechat_holder(&mut tx, identity).await? {
                        Some((id, unionid)) => {
                            keep_unionid(&mut tx, identity, unionid, now).await?;
                            id
                        }
                        None => {
                            let subject = format!("{}/{}", identity.app_id, identity.openid);
                            let id = insert_citizen(&mut tx, "wechat", &subject, now).await?;
                            if !insert_wechat(&mut tx, id, identity, now).await? {
                                tx.rollback().await.context("Failed to roll back")?;
                                continue;
                            }
                            id
                        }
                    };
                    record_notice(&mut tx, id, notice).await?;
                    let account = account_in(&mut tx, id).await?;
                    tx.commit().await.context("Failed to commit a WeChat sign-in")?;
                    return Ok(account);
                }
                anyhow::bail!("a WeChat identity kept changing hands during sign-in")
            }

            async fn save_sms_code(&self, code: &NewSmsCode) -> anyhow::Result<()> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                // Dead codes are of no use to anyone; clear them as we go.
                sqlx::query("DELETE FROM sms_codes WHERE expires_at <= $1")
                    .bind(to_db(code.created_at))
                    .execute(&mut *tx)
                    .await
                    .context("Failed to clear expired SMS codes")?;
                sqlx::query(
                    "INSERT INTO sms_codes \
                       (phone_index, code_hash, created_at, expires_at, failed_attempts) \
                     VALUES ($1, $2, $3, $4, 0) \
                     ON CONFLICT (phone_index) DO UPDATE SET code_hash = excluded.code_hash, \
                       created_at = excluded.created_at, expires_at = excluded.expires_at, \
                       failed_attempts = 0",
                )
                .bind(&code.phone_index)
                .bind(&code.code_hash)
                .bind(to_db(code.created_at))
                .bind(to_db(code.expires_at))
                .execute(&mut *tx)
                .await
                .context("Failed to store an SMS code")?;
                tx.commit().await.context("Failed to commit an SMS code")?;
                Ok(())
            }

            async fn check_sms_code(
                &self,
                presented: &PresentedCode,
            ) -> anyhow::Result<CodeCheck> {
                // One statement compares and counts under the row's lock, so
                // concurrent guesses cannot exceed the attempts between them.
                let row = sqlx::query(
                    "UPDATE sms_codes SET failed_attempts = failed_attempts + \
                       CASE WHEN code_hash = $2 THEN 0 ELSE 1 END \
                     WHERE phone_index = $1 AND expires_at > $3 AND failed_attempts < $4 \
                     RETURNING failed_attempts, \
                       CASE WHEN code_hash = $2 THEN 1 ELSE 0 END AS matched",
                )
                .bind(&presented.phone_index)
                .bind(&presented.code_hash)
                .bind(to_db(presented.now))
                .bind(i32::try_from(presented.max_attempts)?)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to check an SMS code")?;
                let Some(row) = row else {
                    return Ok(CodeCheck::Unusable);
                };
                let matched: i32 = row.try_get("matched")?;
                let failed: i32 = row.try_get("failed_attempts")?;
                Ok(if matched == 1 {
                    CodeCheck::Matched
                } else {
                    let failed = u32::try_from(failed)?;
                    CodeCheck::Wrong {
                        attempts_left: presented.max_attempts.saturating_sub(failed),
                    }
                })
            }

            async fn sign_in_phone(
                &self,
                presented: &PresentedCode,
                phone: &StoredPhone,
                notice: Option<&NoticeAcceptance>,
            ) -> anyhow::Result<Option<Account>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                if !use_up_code(&mut tx, presented).await? {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }
                let holder: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM accounts WHERE phone_index = $1")
                        .bind(&phone.index)
                        .fetch_optional(&mut *tx)
                        .await
                        .context("Failed to look up a phone")?;
                let id = match holder {
                    Some(id) => id,
                    None => {
                        let id =
                            insert_citizen(&mut tx, "phone", &phone.index, presented.now).await?;
                        sqlx::query(
                            "UPDATE accounts SET phone_cipher = $2, phone_index = $3 \
                             WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&phone.cipher)
                        .bind(&phone.index)
                        .execute(&mut *tx)
                        .await
                        .context("Failed to store a citizen's phone")?;
                        id
                    }
                };
                record_notice(&mut tx, id, notice).await?;
                let account = account_in(&mut tx, id).await?;
                tx.commit().await.context("Failed to commit a phone sign-in")?;
                Ok(Some(account))
            }

            // TODO(identity): a phone sign-in that creates an account while
            // another account links the same phone loses on the unique index
            // and answers INTERNAL; retrying the loser as a refusal would
            // need the engines' unique-violation codes told apart.
            async fn link_phone(
                &self,
                citizen: AccountId,
                presented: &PresentedCode,
                phone: &StoredPhone,
            ) -> anyhow::Result<Option<LinkOutcome>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let holder: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM accounts WHERE phone_index = $1")
                        .bind(&phone.index)
                        .fetch_optional(&mut *tx)
                        .await
                        .context("Failed to look up a phone")?;
                let own: Option<String> =
                    sqlx::query_scalar("SELECT phone_index FROM accounts WHERE id = $1")
                        .bind(citizen.0)
                        .fetch_one(&mut *tx)
                        .await
                        .context("Failed to read a citizen's phone")?;
                let refusal = match (holder, own) {
                    (Some(id), _) if id == citizen.0 => None,
                    (Some(_), _) => Some(LinkOutcome::HeldByAnother),
                    (None, Some(_)) => Some(LinkOutcome::AccountHasAnother),
                    (None, None) => None,
                };
                if let Some(refusal) = refusal {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(Some(refusal));
                }

                if !use_up_code(&mut tx, presented).await? {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE accounts SET phone_cipher = $2, phone_index = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(citizen.0)
                .bind(&phone.cipher)
                .bind(&phone.index)
                .bind(to_db(presented.now))
                .execute(&mut *tx)
                .await
                .context("Failed to link a phone")?;
                tx.commit().await.context("Failed to commit a phone link")?;
                Ok(Some(LinkOutcome::Linked))
            }

            async fn link_wechat(
                &self,
                citizen: AccountId,
                identity: &WeChatIdentity,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<LinkOutcome> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let outcome = match wechat_holder(&mut tx, identity).await? {
                    Some((id, unionid)) if id == citizen.0 => {
                        keep_unionid(&mut tx, identity, unionid, now).await?;
                        LinkOutcome::Linked
                    }
                    Some(_) => LinkOutcome::HeldByAnother,
                    None => {
                        let own: Option<String> = sqlx::query_scalar(
                            "SELECT openid FROM citizen_wechat \
                             WHERE account_id = $1 AND app_id = $2",
                        )
                        .bind(citizen.0)
                        .bind(&identity.app_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .context("Failed to read a citizen's openid")?;
                        if own.is_some() {
                            LinkOutcome::AccountHasAnother
                        } else if insert_wechat(&mut tx, citizen.0, identity, now).await? {
                            LinkOutcome::Linked
                        } else {
                            LinkOutcome::HeldByAnother
                        }
                    }
                };
                tx.commit().await.context("Failed to commit a WeChat link")?;
                Ok(outcome)
            }

            async fn revoked_sessions_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Vec<String>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT family_id FROM sessions WHERE revoked_at > $1",
                )
                .bind(to_db(since))
                .fetch_all(&self.pool)
                .await
                .context("Failed to read recent revocations")?;
                Ok(ids)
            }
        }

        impl $store {
            async fn wechat_holder_of(
                &self,
                app_id: &str,
                openid: &str,
            ) -> anyhow::Result<Option<i64>> {
                let id: Option<i64> = sqlx::query_scalar(
                    "SELECT account_id FROM citizen_wechat WHERE app_id = $1 AND openid = $2",
                )
                .bind(app_id)
                .bind(openid)
                .fetch_optional(&self.pool)
                .await
                .context("Failed to look up a WeChat identity")?;
                Ok(id)
            }
        }
    };
}

pub(crate) use identity_store_impl;
