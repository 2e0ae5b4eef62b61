//! S3-compatible object storage through the `rust-s3` crate, which signs
//! requests and presigned links (AWS Signature Version 4). Path-style
//! addressing (`<endpoint>/<bucket>/<key>`) works with every S3-compatible
//! server, MinIO included; virtual-host style is for providers that require
//! it (Tencent COS, Aliyun OSS).

use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use s3::creds::Credentials;
use s3::{Bucket, Region};

use super::{FileStore, valid_key};
use crate::security::Secret;

#[derive(Debug, Clone)]
pub struct S3Settings {
    /// For example `https://cos.ap-guangzhou.myqcloud.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: Secret,
    /// Prepended to every key, e.g. `huying/`.
    pub prefix: String,
    pub path_style: bool,
}

pub struct S3Files {
    bucket: Box<Bucket>,
    prefix: String,
}

impl S3Files {
    pub fn connect(settings: &S3Settings) -> anyhow::Result<S3Files> {
        let region = Region::Custom {
            region: settings.region.clone(),
            endpoint: settings.endpoint.trim_end_matches('/').to_owned(),
        };
        let credentials = Credentials::new(
            Some(&settings.access_key),
            Some(settings.secret_key.expose()),
            None,
            None,
            None,
        )
        .context("Failed to build object storage credentials")?;
        let bucket = Bucket::new(&settings.bucket, region, credentials)
            .context("Failed to configure the object storage bucket")?;
        let bucket = if settings.path_style {
            bucket.with_path_style()
        } else {
            bucket
        };
        let bucket = bucket
            .with_request_timeout(Duration::from_secs(30))
            .context("Failed to set the object storage timeout")?;
        Ok(S3Files {
            bucket,
            prefix: settings.prefix.clone(),
        })
    }

    fn object(&self, key: &str) -> anyhow::Result<String> {
        if !valid_key(key) {
            bail!("bad storage key {key:?}");
        }
        Ok(format!("{}{key}", self.prefix))
    }
}

fn check(status: u16, what: &str) -> anyhow::Result<()> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        bail!("object storage answered {status} to {what}")
    }
}

#[async_trait]
impl FileStore for S3Files {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> anyhow::Result<()> {
        let object = self.object(key)?;
        let response = self
            .bucket
            .put_object_with_content_type(&object, &bytes, content_type)
            .await
            .context("Failed to store a file in object storage")?;
        check(response.status_code(), "a PUT")
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let object = self.object(key)?;
        let response = self
            .bucket
            .get_object(&object)
            .await
            .context("Failed to read a file from object storage")?;
        if response.status_code() == 404 {
            return Ok(None);
        }
        check(response.status_code(), "a GET")?;
        Ok(Some(response.to_vec()))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let object = self.object(key)?;
        let response = self
            .bucket
            .delete_object(&object)
            .await
            .context("Failed to delete a file from object storage")?;
        // S3 answers 204 whether or not the key existed; some servers 404.
        if response.status_code() == 404 {
            return Ok(());
        }
        check(response.status_code(), "a DELETE")
    }

    async fn presigned_get(&self, key: &str, ttl: Duration) -> anyhow::Result<Option<String>> {
        let object = self.object(key)?;
        let seconds = u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX);
        let url = self
            .bucket
            .presign_get(&object, seconds, None)
            .await
            .context("Failed to presign a download link")?;
        Ok(Some(url))
    }
}
