//! Evidence: the photos a citizen attaches to a complaint and the ones a
//! handler takes before and after the work. An upload starts as a grant
//! (who may upload which type and how many bytes, until when), becomes a
//! stored file once its bytes passed the checks, and is attached to one
//! complaint at most.

use chrono::{DateTime, Duration, Utc};

use super::account::AccountId;
use super::complaint::ComplaintId;
use super::error::{DomainError, Violations};

/// The image types accepted, told apart by their content, never by a name
/// or a header the client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
}

impl ImageType {
    pub const ALL: [ImageType; 2] = [ImageType::Jpeg, ImageType::Png];

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
        }
    }

    pub fn from_mime(mime: &str) -> Option<ImageType> {
        ImageType::ALL
            .into_iter()
            .find(|kind| kind.mime().eq_ignore_ascii_case(mime.trim()))
    }

    /// The type the leading bytes (the "magic number") announce.
    pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
        const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF];
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        if bytes.starts_with(JPEG) {
            Some(ImageType::Jpeg)
        } else if bytes.starts_with(PNG) {
            Some(ImageType::Png)
        } else {
            None
        }
    }
}

/// Where in the case's life a photo belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Sent by the citizen with the complaint.
    Report,
    /// Taken by the handler on arrival.
    Before,
    /// Taken by the handler when the work was done.
    After,
    /// Taken by the handler along the way.
    Progress,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Report => "report",
            Stage::Before => "before",
            Stage::After => "after",
            Stage::Progress => "progress",
        }
    }

    pub fn parse(text: &str) -> Option<Stage> {
        [Stage::Report, Stage::Before, Stage::After, Stage::Progress]
            .into_iter()
            .find(|stage| stage.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// Granted, no bytes yet.
    Granted,
    /// The sanitised file is in storage.
    Stored,
    /// Its owner deleted their account; the file goes at the next purge.
    Deleted,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Granted => "granted",
            UploadStatus::Stored => "stored",
            UploadStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<UploadStatus> {
        [
            UploadStatus::Granted,
            UploadStatus::Stored,
            UploadStatus::Deleted,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// Limits of uploads and their links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPolicy {
    /// The most bytes one file may have.
    pub max_bytes: u64,
    /// The most pixels (width × height) one image may have; a small file
    /// can decode to a huge image.
    pub max_pixels: u64,
    /// How long a grant may be used.
    pub grant_ttl: Duration,
    /// How long an upload that was never attached is kept.
    pub orphan_after: Duration,
    /// How long a download link works.
    pub link_ttl: Duration,
}

impl Default for UploadPolicy {
    fn default() -> UploadPolicy {
        UploadPolicy {
            max_bytes: 10 * 1024 * 1024,
            max_pixels: 40_000_000,
            grant_ttl: Duration::minutes(10),
            orphan_after: Duration::hours(24),
            link_ttl: Duration::minutes(5),
        }
    }
}

/// What a client asks for when it wants to upload.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub content_type: String,
    pub size_bytes: u64,
}

impl UploadRequest {
    /// The declared type and size, if the policy allows them.
    pub fn parse(&self, policy: &UploadPolicy) -> Result<(ImageType, u64), DomainError> {
        let mut violations = Violations::default();
        let kind = ImageType::from_mime(&self.content_type);
        if kind.is_none() {
            violations.push("content_type", "must be image/jpeg or image/png");
        }
        if self.size_bytes == 0 || self.size_bytes > policy.max_bytes {
            violations.push(
                "size_bytes",
                format!("must be from 1 to {} bytes", policy.max_bytes),
            );
        }
        violations.into_result()?;
        Ok((kind.expect("checked above"), self.size_bytes))
    }
}

/// A grant about to be stored.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: String,
    pub owner_id: AccountId,
    pub content_type: ImageType,
    pub max_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A file that passed the checks, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub storage_key: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// Where an upload is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub complaint_id: ComplaintId,
    pub stage: Stage,
    pub visible_to_citizen: bool,
    /// The handler's unit, for handling photos.
    pub unit_id: Option<String>,
    pub attached_at: DateTime<Utc>,
}

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub owner_id: AccountId,
    pub status: UploadStatus,
    pub content_type: ImageType,
    pub max_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub file: Option<StoredFile>,
    pub attachment: Option<Attachment>,
}

impl Upload {
    /// Why the grant cannot take bytes now, if it cannot.
    pub fn refuse_bytes(&self, now: DateTime<Utc>) -> Option<UploadRefusal> {
        if self.status != UploadStatus::Granted {
            Some(UploadRefusal::AlreadyUsed)
        } else if self.expires_at <= now {
            Some(UploadRefusal::Expired)
        } else {
            None
        }
    }

    /// Whether it can be attached now: stored and not yet attached.
    pub fn attachable(&self) -> bool {
        self.status == UploadStatus::Stored && self.attachment.is_none()
    }
}

/// Why the upload endpoint refused a file. Each has an HTTP status and a
/// stable code, since the mini-program receives plain HTTP answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRefusal {
    /// No signed-in caller, or one whose session ended.
    Unauthenticated,
    /// No such grant, or another account's.
    NotFound,
    Expired,
    /// The grant already took a file: grants are single use.
    AlreadyUsed,
    /// The form had no file part, or a malformed body.
    BadForm(String),
    TooLarge {
        max_bytes: u64,
    },
    /// The content is not a JPEG or PNG image, whatever it was called.
    NotAnImage,
    /// The content is an image of another type than the grant's.
    WrongType {
        declared: ImageType,
        actual: ImageType,
    },
    TooManyPixels {
        max_pixels: u64,
    },
    /// It starts like an image but does not decode.
    Undecodable,
}

impl UploadRefusal {
    pub fn http_status(&self) -> u16 {
        match self {
            UploadRefusal::Unauthenticated => 401,
            UploadRefusal::NotFound => 404,
            UploadRefusal::AlreadyUsed => 409,
            UploadRefusal::Expired => 410,
            UploadRefusal::BadForm(_) => 400,
            UploadRefusal::TooLarge { .. } => 413,
            UploadRefusal::NotAnImage | UploadRefusal::WrongType { .. } => 415,
            UploadRefusal::TooManyPixels { .. } | UploadRefusal::Undecodable => 422,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            UploadRefusal::Unauthenticated => "UNAUTHENTICATED",
            UploadRefusal::NotFound => "UPLOAD_NOT_FOUND",
            UploadRefusal::Expired => "UPLOAD_EXPIRED",
            UploadRefusal::AlreadyUsed => "UPLOAD_ALREADY_USED",
            UploadRefusal::BadForm(_) => "BAD_FORM",
            UploadRefusal::TooLarge { .. } => "FILE_TOO_LARGE",
            UploadRefusal::NotAnImage => "NOT_AN_IMAGE",
            UploadRefusal::WrongType { .. } => "WRONG_IMAGE_TYPE",
            UploadRefusal::TooManyPixels { .. } => "TOO_MANY_PIXELS",
            UploadRefusal::Undecodable => "IMAGE_UNDECODABLE",
        }
    }

    pub fn message(&self) -> String {
        match self {
            UploadRefusal::Unauthenticated => {
                "send `authorization: Bearer <access token>` of the grant's owner".to_owned()
            }
            UploadRefusal::NotFound => "no upload grant of yours has this id".to_owned(),
            UploadRefusal::Expired => "the upload grant expired; ask for a new one".to_owned(),
            UploadRefusal::AlreadyUsed => {
                "the upload grant was already used; ask for a new one".to_owned()
            }
            UploadRefusal::BadForm(reason) => reason.clone(),
            UploadRefusal::TooLarge { max_bytes } => {
                format!("the file is larger than the {max_bytes} bytes granted")
            }
            UploadRefusal::NotAnImage => "the file is not a JPEG or PNG image".to_owned(),
            UploadRefusal::WrongType { declared, actual } => format!(
                "the grant is for {} but the file is {}",
                declared.mime(),
                actual.mime()
            ),
            UploadRefusal::TooManyPixels { max_pixels } => {
                format!("the image has more than {max_pixels} pixels")
            }
            UploadRefusal::Undecodable => "the image is damaged and cannot be read".to_owned(),
        }
    }
}

/// A handler's request to attach photos to a case.
#[derive(Debug, Clone)]
pub struct HandlingPhotos {
    pub complaint_id: ComplaintId,
    pub upload_ids: Vec<String>,
    pub stage: Stage,
    pub visible_to_citizen: bool,
}

/// The most photos attached in one call, as for a complaint.
pub const MAX_PHOTOS_PER_CALL: usize = 9;

/// Checks a list of upload ids named in a request.
pub fn check_upload_ids(field: &str, ids: &[String]) -> Result<(), DomainError> {
    let mut violations = Violations::default();
    if ids.is_empty() {
        violations.push(field, "name at least one upload");
    }
    if ids.len() > MAX_PHOTOS_PER_CALL {
        violations.push(field, format!("at most {MAX_PHOTOS_PER_CALL} uploads"));
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            violations.push(format!("{field}[{i}]"), "appears twice");
        }
    }
    violations.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_told_by_content_not_by_name() {
        assert_eq!(
            ImageType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageType::Png)
        );
        assert_eq!(ImageType::sniff(b"GIF89a"), None);
        assert_eq!(ImageType::sniff(b"<html>"), None);
        assert_eq!(ImageType::from_mime("IMAGE/JPEG"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::from_mime("image/gif"), None);
    }

    #[test]
    fn an_upload_request_names_an_allowed_type_and_size() {
        let policy = UploadPolicy::default();
        let ok = UploadRequest {
            content_type: "image/png".into(),
            size_bytes: 1000,
        };
        assert_eq!(ok.parse(&policy).unwrap(), (ImageType::Png, 1000));

        let bad = UploadRequest {
            content_type: "application/pdf".into(),
            size_bytes: policy.max_bytes + 1,
        };
        let Err(DomainError::InvalidInput(violations)) = bad.parse(&policy) else {
            panic!("refused");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["content_type", "size_bytes"]);
    }

    #[test]
    fn a_grant_takes_bytes_once_and_only_before_it_expires() {
        let now = Utc::now();
        let mut upload = Upload {
            id: "up_1".into(),
            owner_id: AccountId(1),
            status: UploadStatus::Granted,
            content_type: ImageType::Jpeg,
            max_bytes: 10,
            created_at: now,
            expires_at: now + Duration::minutes(10),
            file: None,
            attachment: None,
        };
        assert_eq!(upload.refuse_bytes(now), None);
        assert_eq!(
            upload.refuse_bytes(now + Duration::minutes(10)),
            Some(UploadRefusal::Expired)
        );
        upload.status = UploadStatus::Stored;
        assert_eq!(upload.refuse_bytes(now), Some(UploadRefusal::AlreadyUsed));
    }
}
