//! A real S3-compatible server for the tests: `s3s-fs`, a Rust server from
//! crates.io that keeps objects as files and checks AWS Signature Version 4
//! on every request and presigned link. Each test starts its own on a free
//! port, in a temporary folder, and it dies with the test.
//!
//! `scripts/test` installs it when missing (`cargo install --locked
//! s3s-fs --features binary`) and passes its path in `HUYING_TEST_S3_BIN`;
//! plain `cargo test` finds it there too.

use std::path::PathBuf;
use std::time::Duration;

use huying::evidence::S3Settings;
use huying::security::Secret;

/// The version `scripts/test` installs; keep the two in step.
const S3S_FS_VERSION: &str = "0.14.1";
const BUCKET: &str = "huying-test";
const ACCESS_KEY: &str = "huying-test-access";

pub struct S3Server {
    _child: tokio::process::Child,
    port: u16,
    secret_key: String,
    root: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("HUYING_TEST_S3_BIN") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
        });
    let cached = cache
        .join("huying-test-tools")
        .join(format!("s3s-fs-{S3S_FS_VERSION}"))
        .join("bin/s3s-fs");
    if cached.exists() {
        cached
    } else {
        PathBuf::from("s3s-fs")
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("creates the bucket folder");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let secret_key = crate::helpers::random_name();
        let binary = binary();
        let child = tokio::process::Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", &secret_key])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start the S3 test server {} ({error}); run scripts/test once, or \
                     `cargo install --locked s3s-fs@{S3S_FS_VERSION} --features binary` and set \
                     HUYING_TEST_S3_BIN",
                    binary.display()
                )
            });
        let started = tokio::time::timeout(Duration::from_secs(15), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        started.await.expect("the S3 test server answers");
        S3Server {
            _child: child,
            port,
            secret_key,
            root,
        }
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            region: "us-east-1".to_owned(),
            bucket: BUCKET.to_owned(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: Secret::new(self.secret_key.clone()),
            prefix: String::new(),
            path_style: true,
        }
    }

    /// Where the server keeps the bucket's objects, as files.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(BUCKET)
    }
}
