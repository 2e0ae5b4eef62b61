//! Storage of upload grants and the files' records. The bytes themselves
//! live in a `FileStore` (see `crate::evidence`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::complaint::ComplaintId;
use crate::domain::evidence::{Attachment, NewUpload, StoredFile, Upload};

#[async_trait]
pub trait EvidenceStore: Send + Sync + 'static {
    async fn create_upload(&self, upload: &NewUpload) -> anyhow::Result<()>;

    async fn upload(&self, id: &str) -> anyhow::Result<Option<Upload>>;

    /// Records the file a grant received, if the grant is still unused and
    /// valid at `now`; `false` when another request used it first or it
    /// expired.
    async fn record_file(
        &self,
        id: &str,
        file: &StoredFile,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Attaches `owner`'s stored uploads to a complaint, all or none;
    /// uploads already attached there at the same stage count as attached
    /// (a retry). `false`, with nothing changed, when any of them is not
    /// `owner`'s, not stored, or attached elsewhere.
    async fn attach_uploads(
        &self,
        owner: AccountId,
        ids: &[String],
        attachment: &Attachment,
    ) -> anyhow::Result<bool>;

    /// The uploads attached to a complaint, oldest first.
    async fn complaint_uploads(&self, id: ComplaintId) -> anyhow::Result<Vec<Upload>>;

    /// Uploads to remove: never attached and created before `cutoff`, or
    /// retired with their owner's account; at most `limit`.
    async fn purgeable_uploads(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<Upload>>;

    /// Forgets an upload whose file is gone.
    async fn remove_upload(&self, id: &str) -> anyhow::Result<()>;

    /// Retires every upload of an account (they stop being shown at once
    /// and their files go at the next purge) and empties the photo
    /// references of its complaints; returns how many were retired.
    async fn retire_uploads_of(&self, owner: AccountId) -> anyhow::Result<u64>;
}
