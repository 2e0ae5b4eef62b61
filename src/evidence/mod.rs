//! Where evidence files live, behind one trait: a local folder in the
//! embedded default, S3-compatible object storage (Tencent COS, Aliyun OSS,
//! MinIO, AWS S3) in production. Files are never public: object storage
//! hands out presigned links, and the local folder is served by the
//! server's own endpoint behind links this module signs.

pub mod local;
pub mod s3;
pub mod sanitize;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use local::LocalFiles;
pub use s3::{S3Files, S3Settings};

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// For logs: "local" or "s3".
    fn kind(&self) -> &'static str;

    /// Stores `bytes` under `key`, replacing nothing that other keys hold.
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> anyhow::Result<()>;

    /// The file's bytes; `None` when there is no such key.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// Removes the file; a key already gone is not an error, so that a
    /// purge that stopped half-way can run again.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;

    /// A link the storage itself signs, valid for `ttl`; `None` when the
    /// storage has none and downloads go through the server.
    async fn presigned_get(&self, key: &str, ttl: Duration) -> anyhow::Result<Option<String>>;
}

/// Which storage the server uses.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    Local(PathBuf),
    S3(S3Settings),
}

pub async fn connect(config: &StorageConfig) -> anyhow::Result<Arc<dyn FileStore>> {
    Ok(match config {
        StorageConfig::Local(root) => Arc::new(LocalFiles::open(root.clone()).await?),
        StorageConfig::S3(settings) => Arc::new(S3Files::connect(settings)?),
    })
}

/// Storage keys are made by the server: letters, digits, '_', '-' and '.',
/// with an optional prefix of such segments separated by '/'.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        })
}

/// Signs and checks the server's own download links, for storage that
/// cannot sign its own: `/files/<upload id>?expires=<unix seconds>&signature=<hex>`.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

impl LinkSigner {
    /// `secret` is the token secret; the signing key is derived from it, so
    /// links and access tokens never share a key.
    pub fn new(secret: &[u8]) -> LinkSigner {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"huying file links v1");
        LinkSigner {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    fn mac(&self, upload_id: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(upload_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The query string of a link to `upload_id` that works until `expires`.
    pub fn query(&self, upload_id: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let signature = self.mac(upload_id, expires).finalize().into_bytes();
        let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
        format!("expires={expires}&signature={hex}")
    }

    /// Whether the link was signed here and is still valid at `now`.
    pub fn verify(
        &self,
        upload_id: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(bytes) = decode_hex(signature) else {
            return false;
        };
        now.timestamp() < expires && self.mac(upload_id, expires).verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_climb_out_of_the_folder() {
        assert!(valid_key("evidence/up_1-abc.jpg"));
        for bad in ["", "../x", "a//b", "a/./b", "/abs", "a b", "a\\b"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn links_work_until_they_expire_and_only_for_their_file() {
        let signer = LinkSigner::new(b"secret");
        let now = chrono::Utc::now();
        let expires = now + chrono::Duration::minutes(5);
        let query = signer.query("up_1", expires);
        let signature = query.rsplit_once("signature=").unwrap().1;
        let at = expires.timestamp();

        assert!(signer.verify("up_1", at, signature, now));
        assert!(!signer.verify("up_2", at, signature, now));
        assert!(!signer.verify("up_1", at + 60, signature, now));
        assert!(!signer.verify("up_1", at, signature, expires));
        assert!(!LinkSigner::new(b"other").verify("up_1", at, signature, now));
    }
}
