//! The block-list SQL, shared by both engines like `sql.rs`, whose helpers
//! (`Row`, `Tx`, `to_db`, …) and `sql_staff.rs`'s `insert_audit` it uses:
//! the macros expand into the same engine module.

macro_rules! abuse_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::block::{Block, BlockKind, BlockTerms, Lifting, NewBlock};
        use crate::store::abuse::{AbuseStore, BlockQuery};

        const BLOCK_COLUMNS: &str = "id, kind, subject_label, reason, created_by, created_at, \
             expires_at, lifted_at, lifted_by, lift_reason";

        fn block_from_row(row: &Row) -> anyhow::Result<Block> {
            let kind: String = row.try_get("kind")?;
            let lifted_at = optional_time(row, "lifted_at")?;
            let lifted_by: Option<i64> = row.try_get("lifted_by")?;
            let lift_reason: Option<String> = row.try_get("lift_reason")?;
            let lifted = match (lifted_at, lifted_by) {
                (Some(lifted_at), Some(by)) => Some(Lifting {
                    lifted_by: AccountId(by),
                    lifted_at,
                    reason: lift_reason.unwrap_or_default(),
                }),
                _ => None,
            };
            Ok(Block {
                id: row.try_get("id")?,
                kind: parse_stored(&kind, BlockKind::parse, "block kind")?,
                subject_label: row.try_get("subject_label")?,
                terms: BlockTerms {
                    reason: row.try_get("reason")?,
                    expires_at: from_db(row.try_get("expires_at")?)?,
                },
                created_by: AccountId(row.try_get("created_by")?),
                created_at: from_db(row.try_get("created_at")?)?,
                lifted,
            })
        }

        async fn block_in(tx: &mut Tx, id: i64) -> anyhow::Result<Option<Block>> {
            let sql = format!("SELECT {BLOCK_COLUMNS} FROM blocks WHERE id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .context("Failed to read a block")?;
            row.as_ref().map(block_from_row).transpose()
        }

        #[async_trait::async_trait]
        impl AbuseStore for $store {
            async fn add_block(
                &self,
                block: &NewBlock,
                audit: &AuditDraft,
            ) -> anyhow::Result<(Block, bool)> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO blocks (kind, subject_key, subject_label, reason, created_by, \
                       request_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (created_by, request_id) DO NOTHING RETURNING id",
                )
                .bind(block.kind.as_str())
                .bind(&block.subject_key)
                .bind(&block.subject_label)
                .bind(&block.terms.reason)
                .bind(block.created_by.0)
                .bind(&block.request_id)
                .bind(to_db(block.created_at))
                .bind(to_db(block.terms.expires_at))
                .fetch_optional(&mut *tx)
                .await
                .context("Failed to add a block")?;

                let id = match inserted {
                    Some(id) => {
                        let audit = audit.clone().detail(format!("block:{id}"));
                        insert_audit(&mut tx, &audit).await?;
                        id
                    }
                    None => sqlx::query_scalar(
                        "SELECT id FROM blocks WHERE created_by = $1 AND request_id = $2",
                    )
                    .bind(block.created_by.0)
                    .bind(&block.request_id)
                    .fetch_one(&mut *tx)
                    .await
                    .context("Failed to read an earlier block")?,
                };
                let stored = block_in(&mut tx, id)
                    .await?
                    .context("a block just written is readable")?;
                tx.commit().await.context("Failed to commit a block")?;
                Ok((stored, inserted.is_some()))
            }

            async fn lift_block(
                &self,
                id: i64,
                lifting: &Lifting,
                audit: &AuditDraft,
            ) -> anyhow::Result<Option<Block>> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let lifted = sqlx::query(
                    "UPDATE blocks SET lifted_at = $2, lifted_by = $3, lift_reason = $4 \
                     WHERE id = $1 AND lifted_at IS NULL AND expires_at > $2",
                )
                .bind(id)
                .bind(to_db(lifting.lifted_at))
                .bind(lifting.lifted_by.0)
                .bind(&lifting.reason)
                .execute(&mut *tx)
                .await
                .context("Failed to lift a block")?;
                if lifted.rows_affected() == 1 {
                    insert_audit(&mut tx, audit).await?;
                }
                let block = block_in(&mut tx, id).await?;
                tx.commit()
                    .await
                    .context("Failed to commit a lifted block")?;
                Ok(block)
            }

            async fn blocks(&self, query: &BlockQuery) -> anyhow::Result<Vec<Block>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {BLOCK_COLUMNS} FROM blocks WHERE 1 = 1"
                ));
                if let Some(kind) = query.kind {
                    sql.push(" AND kind = ").push_bind(kind.as_str());
                }
                if let Some(now) = query.active_at {
                    sql.push(" AND lifted_at IS NULL AND expires_at > ")
                        .push_bind(to_db(now));
                }
                if let Some(before) = query.before {
                    sql.push(" AND id < ").push_bind(before);
                }
                sql.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(i64::from(query.limit));
                let rows = sql
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list blocks")?;
                rows.iter().map(block_from_row).collect()
            }

            async fn active_block(
                &self,
                subjects: &[(BlockKind, String)],
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<Option<Block>> {
                if subjects.is_empty() {
                    return Ok(None);
                }
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {BLOCK_COLUMNS} FROM blocks WHERE lifted_at IS NULL AND expires_at > "
                ));
                sql.push_bind(to_db(now)).push(" AND (");
                for (i, (kind, key)) in subjects.iter().enumerate() {
                    if i > 0 {
                        sql.push(" OR ");
                    }
                    sql.push("(kind = ")
                        .push_bind(kind.as_str())
                        .push(" AND subject_key = ")
                        .push_bind(key.clone())
                        .push(")");
                }
                sql.push(") ORDER BY expires_at DESC LIMIT 1");
                let row = sql
                    .build()
                    .fetch_optional(&self.pool)
                    .await
                    .context("Failed to look up blocks")?;
                row.as_ref().map(block_from_row).transpose()
            }
        }
    };
}

pub(crate) use abuse_store_impl;
