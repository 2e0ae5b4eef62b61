//! Evidence photos: upload grants, receiving and sanitising the bytes,
//! attaching them to complaints and cases, short-lived download links, and
//! the purge of uploads nobody attached.
//!
//! TODO(evidence): uploads always pass through the server, which must see
//! the bytes to strip EXIF before anyone else can fetch them. Uploading
//! straight to object storage with a presigned POST would spare the
//! server the traffic, but needs a quarantine prefix and a step that
//! sanitises each object before it is attached.
//! TODO(evidence): WeChat's content-safety check (`mediaCheckAsync`) is not
//! called yet; it would hold an image for review until WeChat's callback
//! clears it, and only then let it be shown to anyone but its uploader.
//! TODO(evidence): ExportMyData does not include the citizen's photos yet;
//! it could list them with download links.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::{AccountId, Principal};
use crate::domain::complaint::{ComplaintId, ComplaintStatus};
use crate::domain::error::{DomainError, Violations};
use crate::domain::evidence::{
    Attachment, HandlingPhotos, ImageType, NewUpload, Stage, StoredFile, Upload, UploadPolicy,
    UploadRefusal, UploadRequest, check_upload_ids,
};
use crate::evidence::sanitize::sanitize;
use crate::evidence::{FileStore, LinkSigner};

/// The multipart form field that carries the file.
pub const FILE_FIELD: &str = "file";

/// Uploads purged per batch.
const PURGE_BATCH: u32 = 100;

/// Everything the evidence use cases need besides the store.
pub struct Evidence {
    pub files: Arc<dyn FileStore>,
    pub policy: UploadPolicy,
    /// Where clients reach this server, e.g. `https://api.example.gov.cn`.
    pub public_url: String,
    pub links: LinkSigner,
}

/// What a client needs to upload.
#[derive(Debug, Clone)]
pub struct UploadGrant {
    pub upload_id: String,
    pub upload_url: String,
    pub expires_at: DateTime<Utc>,
    pub max_bytes: u64,
    pub content_type: ImageType,
}

/// An attached photo and a link to fetch it.
#[derive(Debug, Clone)]
pub struct PhotoView {
    pub upload: Upload,
    pub download_url: String,
    pub download_expires_at: DateTime<Utc>,
}

/// Why an upload or a download failed: refused (the client's fault), or
/// an unexpected failure of ours.
#[derive(Debug)]
pub enum TransferError {
    Refused(UploadRefusal),
    Failed(DomainError),
}

impl From<UploadRefusal> for TransferError {
    fn from(refusal: UploadRefusal) -> Self {
        TransferError::Refused(refusal)
    }
}

impl From<DomainError> for TransferError {
    fn from(error: DomainError) -> Self {
        TransferError::Failed(error)
    }
}

impl From<anyhow::Error> for TransferError {
    fn from(error: anyhow::Error) -> Self {
        TransferError::Failed(error.into())
    }
}

/// A downloaded file.
#[derive(Debug)]
pub struct Download {
    pub bytes: Vec<u8>,
    pub content_type: ImageType,
}

/// The answer when photos named in a filing were attached elsewhere
/// between the check and the write.
pub fn photos_moved() -> DomainError {
    DomainError::Conflict("a photo was attached elsewhere meanwhile; check photo_ids".to_owned())
}

fn new_upload_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("up_{hex}")
}

impl Services {
    /// A single-use grant for the caller to upload one image.
    pub async fn create_upload(
        &self,
        owner: &Principal,
        request: &UploadRequest,
    ) -> Result<UploadGrant, DomainError> {
        let evidence = &self.evidence;
        let (content_type, max_bytes) = request.parse(&evidence.policy)?;
        let now = self.clock.now();
        let upload = NewUpload {
            id: new_upload_id(),
            owner_id: owner.account_id,
            content_type,
            max_bytes,
            created_at: now,
            expires_at: now + evidence.policy.grant_ttl,
        };
        self.store.create_upload(&upload).await?;
        tracing::info!(upload.id = %upload.id, account.id = %owner.account_id, "upload granted");
        Ok(UploadGrant {
            upload_url: format!("{}/uploads/{}", evidence.public_url, upload.id),
            upload_id: upload.id,
            expires_at: upload.expires_at,
            max_bytes,
            content_type,
        })
    }

    /// The grant an upload request names, if its caller may send bytes to
    /// it now. Checked before the body is read.
    pub async fn open_upload(
        &self,
        upload_id: &str,
        authorization: Option<&str>,
    ) -> Result<Upload, TransferError> {
        let token = authorization
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(UploadRefusal::Unauthenticated)?;
        let caller = self
            .authenticate(token)
            .map_err(|_| UploadRefusal::Unauthenticated)?;
        let upload = match self.store.upload(upload_id).await? {
            Some(upload) if upload.owner_id == caller.account_id => upload,
            _ => return Err(UploadRefusal::NotFound.into()),
        };
        match upload.refuse_bytes(self.clock.now()) {
            Some(refusal) => Err(refusal.into()),
            None => Ok(upload),
        }
    }

    /// Checks, sanitises and stores the bytes sent to an open grant.
    pub async fn receive_upload(
        &self,
        grant: &Upload,
        bytes: Vec<u8>,
    ) -> Result<Upload, TransferError> {
        if bytes.len() as u64 > grant.max_bytes {
            return Err(UploadRefusal::TooLarge {
                max_bytes: grant.max_bytes,
            }
            .into());
        }
        let declared = grant.content_type;
        let max_pixels = self.evidence.policy.max_pixels;
        let clean = tokio::task::spawn_blocking(move || sanitize(&bytes, declared, max_pixels))
            .await
            .map_err(|error| {
                DomainError::Unexpected(anyhow::anyhow!("sanitising panicked: {error}"))
            })??;

        // A fresh key per attempt: a concurrent attempt at the same grant
        // never overwrites the file of the one that wins.
        let key = format!(
            "evidence/{}-{}.{}",
            grant.id,
            &new_upload_id()[3..15],
            declared.extension()
        );
        let file = StoredFile {
            storage_key: key.clone(),
            size_bytes: clean.bytes.len() as u64,
            width: clean.width,
            height: clean.height,
        };
        let files = &self.evidence.files;
        files.put(&key, clean.bytes, declared.mime()).await?;
        if !self
            .store
            .record_file(&grant.id, &file, self.clock.now())
            .await?
        {
            files.delete(&key).await?;
            return Err(UploadRefusal::AlreadyUsed.into());
        }
        tracing::info!(
            upload.id = %grant.id,
            upload.bytes = file.size_bytes,
            storage = files.kind(),
            "upload stored"
        );
        let stored = self.store.upload(&grant.id).await?;
        Ok(stored.ok_or_else(|| anyhow::anyhow!("a stored upload vanished"))?)
    }

    /// Refuses, field by field, uploads that `owner` cannot attach: unknown,
    /// another account's, not uploaded yet, or attached already.
    pub async fn check_photos(
        &self,
        owner: AccountId,
        ids: &[String],
        field: &str,
    ) -> Result<(), DomainError> {
        self.check_attachable(owner, ids, field, None).await
    }

    /// As `check_photos`, except that uploads attached to `here` at the
    /// same stage pass (a retry).
    async fn check_attachable(
        &self,
        owner: AccountId,
        ids: &[String],
        field: &str,
        here: Option<(ComplaintId, Stage)>,
    ) -> Result<(), DomainError> {
        let mut violations = Violations::default();
        for (i, id) in ids.iter().enumerate() {
            let reason = match self.store.upload(id).await? {
                Some(upload) if upload.owner_id == owner => {
                    let again = upload
                        .attachment
                        .as_ref()
                        .is_some_and(|a| Some((a.complaint_id, a.stage)) == here);
                    if upload.attachable() || (again && upload.file.is_some()) {
                        continue;
                    }
                    match (&upload.file, &upload.attachment) {
                        (None, _) => "has not been uploaded yet",
                        (Some(_), Some(_)) => "is already attached to a complaint",
                        (Some(_), None) => "was deleted",
                    }
                }
                _ => "no upload of yours has this id",
            };
            violations.push(format!("{field}[{i}]"), reason);
        }
        violations.into_result()
    }

    /// Attaches a handler's photos to a case in their scope.
    pub async fn attach_handling_photos(
        &self,
        staff: &Principal,
        photos: HandlingPhotos,
    ) -> Result<Vec<PhotoView>, DomainError> {
        if photos.stage == Stage::Report {
            return Err(DomainError::invalid(
                "stage",
                "must be BEFORE, AFTER or PROGRESS",
            ));
        }
        check_upload_ids("upload_ids", &photos.upload_ids)?;
        let case = self.get_case(staff, photos.complaint_id).await?;
        let status = case.complaint.status;
        if !matches!(
            status,
            ComplaintStatus::Dispatched | ComplaintStatus::InProgress | ComplaintStatus::Resolved
        ) {
            return Err(DomainError::FailedPrecondition(format!(
                "handling photos are attached while a case is dispatched, in progress or \
                 resolved; this one is {}",
                status.as_str()
            )));
        }
        let here = Some((photos.complaint_id, photos.stage));
        self.check_attachable(staff.account_id, &photos.upload_ids, "upload_ids", here)
            .await?;

        let attachment = Attachment {
            complaint_id: photos.complaint_id,
            stage: photos.stage,
            visible_to_citizen: photos.visible_to_citizen,
            unit_id: staff.unit_id.clone(),
            attached_at: self.clock.now(),
        };
        let attached = self
            .store
            .attach_uploads(staff.account_id, &photos.upload_ids, &attachment)
            .await?;
        if !attached {
            return Err(photos_moved());
        }
        tracing::info!(
            complaint.id = %photos.complaint_id,
            photos = photos.upload_ids.len(),
            stage = photos.stage.as_str(),
            "handling photos attached"
        );
        self.photo_views(photos.complaint_id, |_| true).await
    }

    /// A citizen's photos of their own complaint, and the handling photos
    /// made visible to them.
    pub async fn citizen_photos(
        &self,
        citizen: &Principal,
        id: ComplaintId,
    ) -> Result<Vec<PhotoView>, DomainError> {
        self.get_own_complaint(citizen, id).await?;
        self.photo_views(id, |attachment| {
            attachment.stage == Stage::Report || attachment.visible_to_citizen
        })
        .await
    }

    /// Every photo of a case in the staff member's scope.
    pub async fn case_photos(
        &self,
        staff: &Principal,
        id: ComplaintId,
    ) -> Result<Vec<PhotoView>, DomainError> {
        self.get_case(staff, id).await?;
        self.photo_views(id, |_| true).await
    }

    async fn photo_views(
        &self,
        id: ComplaintId,
        shown: impl Fn(&Attachment) -> bool,
    ) -> Result<Vec<PhotoView>, DomainError> {
        let mut views = Vec::new();
        for upload in self.store.complaint_uploads(id).await? {
            if !upload.attachment.as_ref().is_some_and(&shown) {
                continue;
            }
            let Some(file) = &upload.file else { continue };
            let (download_url, download_expires_at) =
                self.download_link(&upload.id, &file.storage_key).await?;
            views.push(PhotoView {
                upload,
                download_url,
                download_expires_at,
            });
        }
        Ok(views)
    }

    async fn download_link(
        &self,
        upload_id: &str,
        key: &str,
    ) -> Result<(String, DateTime<Utc>), DomainError> {
        let evidence = &self.evidence;
        let ttl = evidence.policy.link_ttl;
        let expires = self.clock.now() + ttl;
        let std_ttl = ttl.to_std().unwrap_or_default();
        if let Some(url) = evidence.files.presigned_get(key, std_ttl).await? {
            return Ok((url, expires));
        }
        let query = evidence.links.query(upload_id, expires);
        Ok((
            format!("{}/files/{upload_id}?{query}", evidence.public_url),
            expires,
        ))
    }

    /// The file a link signed by this server names, while the link is valid.
    pub async fn download(
        &self,
        upload_id: &str,
        expires: i64,
        signature: &str,
    ) -> Result<Download, TransferError> {
        let now = self.clock.now();
        if now.timestamp() >= expires {
            return Err(UploadRefusal::Expired.into());
        }
        if !self
            .evidence
            .links
            .verify(upload_id, expires, signature, now)
        {
            return Err(UploadRefusal::NotFound.into());
        }
        let upload = self
            .store
            .upload(upload_id)
            .await?
            .filter(|upload| upload.attachment.is_some())
            .ok_or(UploadRefusal::NotFound)?;
        let key = match (&upload.file, upload.status) {
            (Some(file), crate::domain::evidence::UploadStatus::Stored) => &file.storage_key,
            _ => return Err(UploadRefusal::NotFound.into()),
        };
        let bytes = self
            .evidence
            .files
            .get(key)
            .await?
            .ok_or(UploadRefusal::NotFound)?;
        Ok(Download {
            bytes,
            content_type: upload.content_type,
        })
    }

    /// Deletes uploads never attached within the configured time, and the
    /// retired ones of deleted accounts: files first, then their records, so
    /// that a purge that stops half-way leaves records the next one finds.
    pub async fn purge_uploads(&self) -> Result<u64, DomainError> {
        let cutoff = self.clock.now() - self.evidence.policy.orphan_after;
        let mut purged = 0;
        loop {
            let batch = self.store.purgeable_uploads(cutoff, PURGE_BATCH).await?;
            for upload in &batch {
                if let Some(file) = &upload.file {
                    self.evidence.files.delete(&file.storage_key).await?;
                }
                self.store.remove_upload(&upload.id).await?;
            }
            purged += batch.len() as u64;
            if batch.len() < PURGE_BATCH as usize {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(
                purged.uploads = purged,
                "unattached and retired uploads purged"
            );
        }
        Ok(purged)
    }
}
