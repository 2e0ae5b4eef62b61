//! Files in a local folder: the embedded default, or a folder every
//! replica mounts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;

use super::{FileStore, valid_key};

pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    pub async fn open(root: PathBuf) -> anyhow::Result<LocalFiles> {
        tokio::fs::create_dir_all(&root)
            .await
            .with_context(|| format!("Failed to create the file folder {}", root.display()))?;
        Ok(LocalFiles { root })
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        if !valid_key(key) {
            bail!("bad storage key {key:?}");
        }
        Ok(self.root.join(key))
    }
}

async fn ensure_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("Failed to create {}", parent.display()))?;
    }
    Ok(())
}

#[async_trait]
impl FileStore for LocalFiles {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        ensure_parent(&path).await?;
        // Written beside and renamed, so a reader never sees half a file.
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, bytes)
            .await
            .with_context(|| format!("Failed to write {}", partial.display()))?;
        tokio::fs::rename(&partial, &path)
            .await
            .with_context(|| format!("Failed to move a file into {}", path.display()))
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("Failed to read {}", path.display())),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => {
                Err(error).with_context(|| format!("Failed to delete {}", path.display()))
            }
        }
    }

    async fn presigned_get(&self, _key: &str, _ttl: Duration) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
}
