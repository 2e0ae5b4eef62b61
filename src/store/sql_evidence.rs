//! The evidence SQL, shared by both engines like `sql.rs`, whose helpers
//! (`Row`, `Tx`, `to_db`, …) it uses; `sql.rs`'s filing uses
//! `attach_uploads_in` to attach a complaint's photos in its transaction.

macro_rules! evidence_store_impl {
    ($store:ident, $db:ty) => {
        use crate::domain::evidence::{
            Attachment, ImageType, NewUpload, Stage, StoredFile, Upload, UploadStatus,
        };
        use crate::store::evidence::EvidenceStore;

        const UPLOAD_COLUMNS: &str = "id, owner_id, status, content_type, max_bytes, created_at, \
             expires_at, storage_key, size_bytes, width, height, complaint_id, stage, \
             visible_to_citizen, unit_id, attached_at";

        fn upload_from_row(row: &Row) -> anyhow::Result<Upload> {
            let status: String = row.try_get("status")?;
            let content_type: String = row.try_get("content_type")?;
            let max_bytes: i64 = row.try_get("max_bytes")?;
            let storage_key: Option<String> = row.try_get("storage_key")?;
            let size_bytes: Option<i64> = row.try_get("size_bytes")?;
            let width: Option<i32> = row.try_get("width")?;
            let height: Option<i32> = row.try_get("height")?;
            let file = match (storage_key, size_bytes, width, height) {
                (Some(storage_key), Some(size), Some(width), Some(height)) => Some(StoredFile {
                    storage_key,
                    size_bytes: u64::try_from(size)?,
                    width: u32::try_from(width)?,
                    height: u32::try_from(height)?,
                }),
                _ => None,
            };
            let complaint_id: Option<i64> = row.try_get("complaint_id")?;
            let stage: Option<String> = row.try_get("stage")?;
            let attachment = match (complaint_id, stage, optional_time(row, "attached_at")?) {
                (Some(complaint_id), Some(stage), Some(attached_at)) => Some(Attachment {
                    complaint_id: ComplaintId(complaint_id),
                    stage: parse_stored(&stage, Stage::parse, "stage")?,
                    visible_to_citizen: row.try_get("visible_to_citizen")?,
                    unit_id: row.try_get("unit_id")?,
                    attached_at,
                }),
                _ => None,
            };
            Ok(Upload {
                id: row.try_get("id")?,
                owner_id: AccountId(row.try_get("owner_id")?),
                status: parse_stored(&status, UploadStatus::parse, "upload status")?,
                content_type: parse_stored(&content_type, ImageType::from_mime, "content type")?,
                max_bytes: u64::try_from(max_bytes)?,
                created_at: from_db(row.try_get("created_at")?)?,
                expires_at: from_db(row.try_get("expires_at")?)?,
                file,
                attachment,
            })
        }

        /// Attaches uploads inside a caller's transaction; `false` when any
        /// cannot be (the caller then rolls back).
        async fn attach_uploads_in(
            tx: &mut Tx,
            owner: AccountId,
            ids: &[String],
            attachment: &Attachment,
        ) -> anyhow::Result<bool> {
            for id in ids {
                let attached = sqlx::query(
                    "UPDATE uploads SET complaint_id = $3, stage = $4, visible_to_citizen = $5, \
                       unit_id = $6, attached_at = $7 \
                     WHERE id = $1 AND owner_id = $2 AND status = 'stored' \
                       AND complaint_id IS NULL",
                )
                .bind(id)
                .bind(owner.0)
                .bind(attachment.complaint_id.0)
                .bind(attachment.stage.as_str())
                .bind(attachment.visible_to_citizen)
                .bind(&attachment.unit_id)
                .bind(to_db(attachment.attached_at))
                .execute(&mut **tx)
                .await
                .context("Failed to attach an upload")?;
                if attached.rows_affected() == 1 {
                    continue;
                }
                // A retry finds it where the first attempt put it.
                let already: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM uploads WHERE id = $1 AND owner_id = $2 \
                       AND status = 'stored' AND complaint_id = $3 AND stage = $4",
                )
                .bind(id)
                .bind(owner.0)
                .bind(attachment.complaint_id.0)
                .bind(attachment.stage.as_str())
                .fetch_optional(&mut **tx)
                .await
                .context("Failed to check an attached upload")?;
                if already.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        }

        #[async_trait::async_trait]
        impl EvidenceStore for $store {
            async fn create_upload(&self, upload: &NewUpload) -> anyhow::Result<()> {
                sqlx::query(
                    "INSERT INTO uploads (id, owner_id, status, content_type, max_bytes, \
                       created_at, expires_at) \
                     VALUES ($1, $2, 'granted', $3, $4, $5, $6)",
                )
                .bind(&upload.id)
                .bind(upload.owner_id.0)
                .bind(upload.content_type.mime())
                .bind(i64::try_from(upload.max_bytes)?)
                .bind(to_db(upload.created_at))
                .bind(to_db(upload.expires_at))
                .execute(&self.pool)
                .await
                .context("Failed to store an upload grant")?;
                Ok(())
            }

            async fn upload(&self, id: &str) -> anyhow::Result<Option<Upload>> {
                let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .context("Failed to read an upload")?;
                row.as_ref().map(upload_from_row).transpose()
            }

            async fn record_file(
                &self,
                id: &str,
                file: &StoredFile,
                now: chrono::DateTime<chrono::Utc>,
            ) -> anyhow::Result<bool> {
                let recorded = sqlx::query(
                    "UPDATE uploads SET status = 'stored', storage_key = $2, size_bytes = $3, \
                       width = $4, height = $5, stored_at = $6 \
                     WHERE id = $1 AND status = 'granted' AND expires_at > $6",
                )
                .bind(id)
                .bind(&file.storage_key)
                .bind(i64::try_from(file.size_bytes)?)
                .bind(i32::try_from(file.width)?)
                .bind(i32::try_from(file.height)?)
                .bind(to_db(now))
                .execute(&self.pool)
                .await
                .context("Failed to record an uploaded file")?;
                Ok(recorded.rows_affected() == 1)
            }

            async fn attach_uploads(
                &self,
                owner: AccountId,
                ids: &[String],
                attachment: &Attachment,
            ) -> anyhow::Result<bool> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                if !attach_uploads_in(&mut tx, owner, ids, attachment).await? {
                    tx.rollback().await.context("Failed to roll back")?;
                    return Ok(false);
                }
                tx.commit().await.context("Failed to commit attached uploads")?;
                Ok(true)
            }

            async fn complaint_uploads(&self, id: ComplaintId) -> anyhow::Result<Vec<Upload>> {
                let sql = format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads \
                     WHERE complaint_id = $1 AND status = 'stored' ORDER BY attached_at, id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list a complaint's uploads")?;
                rows.iter().map(upload_from_row).collect()
            }

            async fn purgeable_uploads(
                &self,
                cutoff: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> anyhow::Result<Vec<Upload>> {
                let sql = format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads \
                     WHERE (complaint_id IS NULL AND created_at < $1) OR status = 'deleted' \
                     ORDER BY created_at LIMIT $2"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(to_db(cutoff))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .context("Failed to list purgeable uploads")?;
                rows.iter().map(upload_from_row).collect()
            }

            async fn remove_upload(&self, id: &str) -> anyhow::Result<()> {
                sqlx::query("DELETE FROM uploads WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .context("Failed to remove an upload")?;
                Ok(())
            }

            async fn retire_uploads_of(&self, owner: AccountId) -> anyhow::Result<u64> {
                let mut tx = begin_write(&self.pool).await.context("Failed to begin")?;
                let retired = sqlx::query(
                    "UPDATE uploads SET status = 'deleted' WHERE owner_id = $1 AND status <> 'deleted'",
                )
                .bind(owner.0)
                .execute(&mut *tx)
                .await
                .context("Failed to retire an account's uploads")?;
                sqlx::query("UPDATE complaints SET photo_ids = '[]' WHERE citizen_id = $1")
                    .bind(owner.0)
                    .execute(&mut *tx)
                    .await
                    .context("Failed to empty a citizen's photo references")?;
                tx.commit().await.context("Failed to commit retired uploads")?;
                Ok(retired.rows_affected())
            }
        }
    };
}

pub(crate) use evidence_store_impl;
