//! Configuration from environment variables. With nothing set, the server
//! runs in its embedded mode: a SQLite file and a master key under
//! `./huying-data`, in-process rate limiting and event fan-out, development
//! sign-in enabled. Production sets `HUYING_DATABASE_URL=postgres://…` and
//! `HUYING_REDIS_URL=redis://…`, and passes its keys explicitly.

mod citizen;
mod notify;
mod payout;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

pub use self::citizen::CitizenSignInConfig;
pub use self::notify::NotificationConfig;
pub use self::payout::PayoutConfig;
use crate::domain::client::TrustedProxies;
use crate::domain::evidence::UploadPolicy;
use crate::domain::geo::{GeoPoint, ServiceArea};
use crate::evidence::{S3Settings, StorageConfig};
use crate::limiter::Policies;
use crate::security::keys::decode_key;
use crate::security::{Algorithm, Keys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    /// Required with PostgreSQL: rate limits must be shared by replicas.
    pub redis_url: Option<String>,
    /// Namespace for every Redis key this deployment writes.
    pub redis_prefix: String,
    pub keys: Keys,
    pub dev_sign_in: bool,
    /// Browser origins allowed to call over gRPC-Web. Mini-programs need none.
    pub cors_origins: Vec<String>,
    /// Replaces the bundled classification standard.
    pub categories_file: Option<PathBuf>,
    pub service_area: ServiceArea,
    /// How often each action may be taken per subject (`HUYING_RATE_LIMITS`).
    pub rate_limits: Policies,
    /// Proxies whose `X-Forwarded-For` names the client (`HUYING_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    /// How often the health service re-checks the database.
    pub health_probe_interval: Duration,
    /// How often the supervision loop runs; `None` runs none (tests drive it).
    pub supervision_interval: Option<Duration>,
    pub supervision: crate::service::supervision::SupervisionPolicy,
    pub duplicates: crate::domain::duplicate::DuplicatePolicy,
    /// How consultations are matched against the knowledge base.
    pub knowledge: crate::domain::knowledge::MatchPolicy,
    pub streams: crate::service::streams::StreamPolicy,
    /// When repeated failed staff sign-ins lock an account, and for how long.
    pub lockout: crate::domain::staff::LockoutPolicy,
    /// How long audit records are kept: at least six months.
    pub audit_retention: chrono::Duration,
    /// Retention of sessions, SMS codes and closed complaints' contact
    /// phones, and the background re-encryption's batches.
    pub personal_data: crate::service::personal_data::PersonalDataPolicy,
    pub log_format: LogFormat,
    pub citizen_sign_in: CitizenSignInConfig,
    /// How often each replica reads sessions revoked elsewhere, in case it
    /// missed the bus's message; `None` reads only at start (tests drive it).
    pub revocation_sync_interval: Option<Duration>,
    /// Where evidence photos are kept.
    pub storage: StorageConfig,
    /// Upload limits, and how long grants, links and orphans last.
    pub uploads: UploadPolicy,
    /// The base URL clients reach this server at, for upload and download
    /// links; `http://<bound address>` when unset.
    pub public_url: Option<String>,
    /// Templates, quiet hours, retries and webhooks of notifications.
    pub notifications: NotificationConfig,
    /// How often each replica's sender looks for notifications to send;
    /// `None` runs none (tests drive it).
    pub notification_interval: Option<Duration>,
    /// Who pays red envelopes.
    pub payout: PayoutConfig,
    /// How often each replica reconciles open transfers and expires
    /// unclaimed envelopes; `None` runs none (tests drive it).
    pub payout_reconcile_interval: Option<Duration>,
}

impl Config {
    /// Reads `HUYING_*` variables; see the README for the list.
    pub fn from_env() -> anyhow::Result<Config> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());

        let data_dir =
            PathBuf::from(var("HUYING_DATA_DIR").unwrap_or_else(|| "huying-data".into()));
        let database_url = match var("HUYING_DATABASE_URL") {
            Some(url) => url,
            None => {
                std::fs::create_dir_all(&data_dir)
                    .with_context(|| format!("Failed to create {}", data_dir.display()))?;
                format!("sqlite://{}/huying.db", data_dir.display())
            }
        };
        let embedded = database_url.starts_with("sqlite:");

        let keys = match (var("HUYING_TOKEN_SECRET"), var("HUYING_DATA_KEYS")) {
            (Some(token), Some(data)) => {
                let data_keys = parse_data_keys(&data)?;
                let blind_index_key = match var("HUYING_BLIND_INDEX_KEY") {
                    Some(key) => decode_key(&key).context("HUYING_BLIND_INDEX_KEY")?,
                    None => lowest_version(&data_keys)?,
                };
                Keys {
                    token_secret: decode_key(&token).context("HUYING_TOKEN_SECRET")?.to_vec(),
                    data_keys,
                    data_cipher: Algorithm::default(),
                    blind_index_key,
                }
            }
            (None, None) if embedded => Keys::from_master_key_file(&data_dir)?,
            _ => bail!(
                "set both HUYING_TOKEN_SECRET and HUYING_DATA_KEYS (every replica needs the same keys)"
            ),
        };

        let mut config = Config::embedded_defaults(database_url, keys);
        config.storage = storage_from_env(&var, &data_dir)?;
        read_upload_policy(&var, &mut config.uploads)?;
        config.public_url =
            var("HUYING_PUBLIC_URL").map(|url| url.trim_end_matches('/').to_owned());
        if let Some(name) = var("HUYING_DATA_CIPHER") {
            config.keys.data_cipher = Algorithm::parse(&name)
                .context("HUYING_DATA_CIPHER must be aes-256-gcm or sm4-gcm")?;
        }
        config.dev_sign_in = match var("HUYING_DEV_SIGN_IN") {
            Some(flag) => parse_flag("HUYING_DEV_SIGN_IN", &flag)?,
            None => embedded,
        };
        config.redis_url = var("HUYING_REDIS_URL");
        if let Some(prefix) = var("HUYING_REDIS_PREFIX") {
            config.redis_prefix = prefix;
        }
        if let Some(listen) = var("HUYING_LISTEN") {
            config.listen = listen.parse().context("HUYING_LISTEN must be host:port")?;
        }
        if let Some(n) = var("HUYING_DATABASE_MAX_CONNECTIONS") {
            config.database_max_connections =
                n.parse().context("HUYING_DATABASE_MAX_CONNECTIONS")?;
        }
        if let Some(origins) = var("HUYING_CORS_ORIGINS") {
            config.cors_origins = origins.split(',').map(|o| o.trim().to_owned()).collect();
        }
        config.categories_file = var("HUYING_CATEGORIES_FILE").map(PathBuf::from);
        (config.rate_limits, config.trusted_proxies) = limits_from_env(&var)?;
        if let Some(km) = var("HUYING_SERVICE_RADIUS_KM") {
            config.service_area.radius_km = km.parse().context("HUYING_SERVICE_RADIUS_KM")?;
        }
        if let Some(hours) = var("HUYING_DUPLICATE_WINDOW_HOURS") {
            let hours: u64 = hours.parse().context("HUYING_DUPLICATE_WINDOW_HOURS")?;
            config.duplicates.window = Duration::from_secs(hours * 3600);
        }
        if let Some(metres) = var("HUYING_DUPLICATE_RADIUS_M") {
            let metres: f64 = metres.parse().context("HUYING_DUPLICATE_RADIUS_M")?;
            config.duplicates.radius_km = metres / 1000.0;
        }
        if let Some(threshold) = var("HUYING_INSTANT_ANSWER_THRESHOLD") {
            let threshold: f64 = threshold
                .parse()
                .context("HUYING_INSTANT_ANSWER_THRESHOLD")?;
            if !(0.0..=1.0).contains(&threshold) {
                bail!("HUYING_INSTANT_ANSWER_THRESHOLD must be between 0 and 1");
            }
            config.knowledge.threshold = threshold;
        }
        if let Some(n) = var("HUYING_LOCKOUT_FAILURES") {
            config.lockout.max_failures = n.parse().context("HUYING_LOCKOUT_FAILURES")?;
        }
        if let Some(minutes) = var("HUYING_LOCKOUT_MINUTES") {
            let minutes: u32 = minutes.parse().context("HUYING_LOCKOUT_MINUTES")?;
            config.lockout.lock_for = chrono::Duration::minutes(i64::from(minutes));
        }
        if let Some(days) = var("HUYING_AUDIT_RETENTION_DAYS") {
            let days: u32 = days.parse().context("HUYING_AUDIT_RETENTION_DAYS")?;
            config.audit_retention = chrono::Duration::days(i64::from(days));
        }
        read_retention(&var, &mut config.personal_data)?;
        if var("HUYING_LOG_FORMAT").as_deref() == Some("json") {
            config.log_format = LogFormat::Json;
        }
        config.citizen_sign_in = CitizenSignInConfig::from_env(&var, embedded)?;
        config.notifications = NotificationConfig::from_env(&var)?;
        if let Some(secs) = var("HUYING_NOTIFY_INTERVAL_SECS") {
            let secs: u64 = secs.parse().context("HUYING_NOTIFY_INTERVAL_SECS")?;
            config.notification_interval = Some(Duration::from_secs(secs.max(1)));
        }
        let app_id = config
            .citizen_sign_in
            .wechat
            .as_ref()
            .map(|w| w.app_id.as_str());
        config.payout = PayoutConfig::from_env(&var, embedded, app_id)?;
        if let Some(secs) = var("HUYING_PAYOUT_RECONCILE_SECS") {
            let secs: u64 = secs.parse().context("HUYING_PAYOUT_RECONCILE_SECS")?;
            config.payout_reconcile_interval = Some(Duration::from_secs(secs.max(1)));
        }
        if let Some(secs) = var("HUYING_REVOCATION_SYNC_SECS") {
            config.revocation_sync_interval = Some(Duration::from_secs(
                secs.parse().context("HUYING_REVOCATION_SYNC_SECS")?,
            ));
        }

        config.check()?;
        Ok(config)
    }

    /// The defaults, for the given database and keys.
    pub fn embedded_defaults(database_url: String, keys: Keys) -> Config {
        let embedded = database_url.starts_with("sqlite:");
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            dev_sign_in: database_url.starts_with("sqlite:"),
            database_url,
            database_max_connections: 10,
            redis_url: None,
            redis_prefix: "huying:".to_owned(),
            keys,
            cors_origins: Vec::new(),
            categories_file: None,
            service_area: bundled_service_area(),
            rate_limits: Policies::default(),
            trusted_proxies: TrustedProxies::default(),
            access_token_ttl: chrono::Duration::minutes(15),
            refresh_token_ttl: chrono::Duration::days(30),
            health_probe_interval: Duration::from_secs(5),
            supervision_interval: Some(Duration::from_secs(60)),
            supervision: Default::default(),
            duplicates: Default::default(),
            knowledge: Default::default(),
            streams: Default::default(),
            lockout: Default::default(),
            audit_retention: chrono::Duration::days(365),
            personal_data: Default::default(),
            log_format: LogFormat::Text,
            citizen_sign_in: CitizenSignInConfig::embedded(),
            revocation_sync_interval: Some(Duration::from_secs(5)),
            storage: StorageConfig::Local(PathBuf::from("huying-data/files")),
            uploads: UploadPolicy::default(),
            public_url: None,
            notifications: NotificationConfig::default(),
            notification_interval: Some(Duration::from_secs(5)),
            payout: if embedded {
                PayoutConfig::Simulated
            } else {
                PayoutConfig::None
            },
            payout_reconcile_interval: Some(Duration::from_secs(60)),
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    fn check(&self) -> anyhow::Result<()> {
        if !self.is_embedded() && self.redis_url.is_none() {
            bail!("HUYING_REDIS_URL is required with PostgreSQL: replicas must share rate limits");
        }
        // The hash tag of a limiter key is its first {…}: braces in the
        // prefix would put every key in one cluster slot.
        if self.redis_prefix.contains(['{', '}']) {
            bail!("HUYING_REDIS_PREFIX must not contain braces");
        }
        if !self.is_embedded() && matches!(self.payout, PayoutConfig::Simulated) {
            bail!("the simulated payout provider pays nobody; it is refused with PostgreSQL");
        }
        if self.lockout.max_failures == 0 || self.lockout.lock_for <= chrono::Duration::zero() {
            bail!("the staff lock-out needs a failure count and a lock time above zero");
        }
        if self.audit_retention < crate::domain::audit::retention_floor() {
            bail!(
                "HUYING_AUDIT_RETENTION_DAYS must be at least {} (six months)",
                crate::domain::audit::RETENTION_FLOOR_DAYS
            );
        }
        // Replicas remember revoked sessions for a day (see `bus`): an
        // access token must not outlive that memory.
        if self.access_token_ttl >= chrono::Duration::hours(24) {
            bail!("access tokens must expire within a day");
        }
        self.personal_data
            .retention
            .check()
            .map_err(|reason| anyhow::anyhow!("retention settings: {reason}"))?;
        if self.personal_data.reencryption_batch == 0 {
            bail!("HUYING_REENCRYPTION_BATCH must be above zero");
        }
        let uploads = &self.uploads;
        if uploads.max_bytes == 0 || uploads.max_pixels == 0 {
            bail!("HUYING_UPLOAD_MAX_BYTES and HUYING_UPLOAD_MAX_PIXELS must be above zero");
        }
        let positive = chrono::Duration::zero();
        if uploads.grant_ttl <= positive || uploads.link_ttl <= positive {
            bail!("HUYING_UPLOAD_GRANT_MINUTES and HUYING_UPLOAD_LINK_MINUTES must be above zero");
        }
        // A grant must not be purged while it can still be used.
        if uploads.orphan_after <= uploads.grant_ttl {
            bail!("HUYING_UPLOAD_ORPHAN_HOURS must be longer than an upload grant lasts");
        }
        // Object storage signs links for at most seven days.
        if uploads.link_ttl > chrono::Duration::days(7) {
            bail!("HUYING_UPLOAD_LINK_MINUTES must be at most seven days");
        }
        if self
            .revocation_sync_interval
            .is_some_and(|every| every.is_zero())
        {
            bail!("HUYING_REVOCATION_SYNC_SECS must be above zero");
        }
        Ok(())
    }
}

/// `HUYING_RATE_LIMITS` over the default policies, and the trusted proxies.
fn limits_from_env(
    var: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(Policies, TrustedProxies)> {
    for replaced in ["HUYING_FILING_BURST", "HUYING_FILING_PERIOD_SECS"] {
        if var(replaced).is_some() {
            bail!("{replaced} is replaced by HUYING_RATE_LIMITS, e.g. file.citizen=10/1h");
        }
    }
    let mut policies = Policies::default();
    if let Some(limits) = var("HUYING_RATE_LIMITS") {
        policies.apply(&limits).context("HUYING_RATE_LIMITS")?;
    }
    let proxies = match var("HUYING_TRUSTED_PROXIES") {
        Some(proxies) => TrustedProxies::parse(&proxies).context("HUYING_TRUSTED_PROXIES")?,
        None => TrustedProxies::default(),
    };
    Ok((policies, proxies))
}

/// Object storage when `HUYING_S3_BUCKET` is set, else a local folder
/// (`HUYING_FILES_DIR`, or `files` in the data dir).
fn storage_from_env(
    var: &dyn Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
) -> anyhow::Result<StorageConfig> {
    let Some(bucket) = var("HUYING_S3_BUCKET") else {
        let dir = var("HUYING_FILES_DIR").map_or_else(|| data_dir.join("files"), PathBuf::from);
        return Ok(StorageConfig::Local(dir));
    };
    let required =
        |name: &str| var(name).with_context(|| format!("{name} is required with HUYING_S3_BUCKET"));
    let path_style = match var("HUYING_S3_PATH_STYLE") {
        Some(flag) => parse_flag("HUYING_S3_PATH_STYLE", &flag)?,
        None => true,
    };
    Ok(StorageConfig::S3(S3Settings {
        endpoint: required("HUYING_S3_ENDPOINT")?,
        region: var("HUYING_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        bucket,
        access_key: required("HUYING_S3_ACCESS_KEY")?,
        secret_key: crate::security::Secret::new(required("HUYING_S3_SECRET_KEY")?),
        prefix: var("HUYING_S3_PREFIX").unwrap_or_default(),
        path_style,
    }))
}

/// `HUYING_UPLOAD_*`: limits of uploads and how long things last.
fn read_upload_policy(
    var: &dyn Fn(&str) -> Option<String>,
    policy: &mut UploadPolicy,
) -> anyhow::Result<()> {
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        var(name)
            .map(|text| {
                text.parse()
                    .with_context(|| format!("{name} must be a whole number"))
            })
            .transpose()
    };
    if let Some(bytes) = number("HUYING_UPLOAD_MAX_BYTES")? {
        policy.max_bytes = bytes;
    }
    if let Some(pixels) = number("HUYING_UPLOAD_MAX_PIXELS")? {
        policy.max_pixels = pixels;
    }
    let minutes = |n: u64| chrono::Duration::minutes(i64::try_from(n).unwrap_or(i64::MAX / 60_000));
    if let Some(n) = number("HUYING_UPLOAD_GRANT_MINUTES")? {
        policy.grant_ttl = minutes(n);
    }
    if let Some(n) = number("HUYING_UPLOAD_LINK_MINUTES")? {
        policy.link_ttl = minutes(n);
    }
    if let Some(n) = number("HUYING_UPLOAD_ORPHAN_HOURS")? {
        policy.orphan_after = minutes(n.saturating_mul(60));
    }
    Ok(())
}

/// "1:<64 hex digits>,2:<64 hex digits>"; the highest version encrypts.
fn parse_data_keys(text: &str) -> anyhow::Result<Vec<(u32, [u8; 32])>> {
    text.split(',')
        .map(|entry| {
            let (version, key) = entry
                .trim()
                .split_once(':')
                .context("HUYING_DATA_KEYS entries look like 1:<64 hex digits>")?;
            let version = version.parse().context("HUYING_DATA_KEYS: bad version")?;
            Ok((version, decode_key(key).context("HUYING_DATA_KEYS")?))
        })
        .collect()
}

/// `HUYING_*_RETENTION_*` and the re-encryption batch size.
fn read_retention(
    var: &dyn Fn(&str) -> Option<String>,
    policy: &mut crate::service::personal_data::PersonalDataPolicy,
) -> anyhow::Result<()> {
    let days = |name: &str| -> anyhow::Result<Option<chrono::Duration>> {
        var(name)
            .map(|text| {
                let days: u32 = text.parse().with_context(|| format!("{name} is in days"))?;
                Ok(chrono::Duration::days(i64::from(days)))
            })
            .transpose()
    };
    if let Some(period) = days("HUYING_SESSION_RETENTION_DAYS")? {
        policy.retention.sessions = period;
    }
    if let Some(period) = days("HUYING_SMS_CODE_RETENTION_DAYS")? {
        policy.retention.sms_codes = period;
    }
    if let Some(period) = days("HUYING_CLOSED_CONTACT_RETENTION_DAYS")? {
        policy.retention.closed_complaint_contact = period;
    }
    if let Some(size) = var("HUYING_REENCRYPTION_BATCH") {
        policy.reencryption_batch = size.parse().context("HUYING_REENCRYPTION_BATCH")?;
    }
    Ok(())
}

/// The key blind indexes were always keyed from when none is set apart.
fn lowest_version(keys: &[(u32, [u8; 32])]) -> anyhow::Result<[u8; 32]> {
    keys.iter()
        .min_by_key(|(version, _)| *version)
        .map(|(_, key)| *key)
        .context("HUYING_DATA_KEYS needs at least one key")
}

fn parse_flag(name: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => bail!("{name} must be true or false"),
    }
}

/// The district centre from the bundled directory, with a radius generous
/// enough for the whole district (166 km², about 20 km across) and its edge.
fn bundled_service_area() -> ServiceArea {
    #[derive(Deserialize)]
    struct Directory {
        district: District,
    }
    #[derive(Deserialize)]
    struct District {
        centre_wgs84: Centre,
    }
    #[derive(Deserialize)]
    struct Centre {
        lat: f64,
        lon: f64,
    }

    let directory: Directory =
        serde_json::from_str(include_str!("../reference/pingshan-directory.json"))
            .expect("the bundled directory names the district centre");
    ServiceArea {
        centre: GeoPoint {
            latitude: directory.district.centre_wgs84.lat,
            longitude: directory.district.centre_wgs84.lon,
        },
        radius_km: 25.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_parse_with_versions() {
        let keys =
            parse_data_keys(&format!("1:{},2:{}", "00".repeat(32), "ff".repeat(32))).unwrap();
        assert_eq!(keys.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 2]);
        assert!(parse_data_keys("1:abc").is_err());
    }

    #[test]
    fn audit_retention_under_six_months_is_refused() {
        let mut config = Config::embedded_defaults(
            "sqlite://huying-data/huying.db".to_owned(),
            Keys::derived_from(b"k"),
        );
        config.audit_retention = chrono::Duration::days(182);
        assert!(config.check().is_err());
        config.audit_retention = chrono::Duration::days(183);
        assert!(config.check().is_ok());
    }

    fn limits_from(pairs: &[(&str, &str)]) -> anyhow::Result<(Policies, TrustedProxies)> {
        let var = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        limits_from_env(&var)
    }

    #[test]
    fn rate_limits_and_proxies_come_from_the_environment_with_named_errors() {
        let (policies, proxies) = limits_from(&[
            ("HUYING_RATE_LIMITS", "file.citizen=3/1h"),
            ("HUYING_TRUSTED_PROXIES", "10.0.0.0/8"),
        ])
        .unwrap();
        assert_eq!(policies.quota(crate::limiter::Policy::FileCitizen).burst, 3);
        assert!(!proxies.is_empty());
        assert_eq!(limits_from(&[]).unwrap().0, Policies::default());

        for (name, value) in [
            ("HUYING_RATE_LIMITS", "file.citizen=3"),
            ("HUYING_TRUSTED_PROXIES", "10.0.0.0/40"),
            ("HUYING_FILING_BURST", "10"),
        ] {
            let error = format!("{:#}", limits_from(&[(name, value)]).unwrap_err());
            assert!(error.starts_with(name), "{error}");
        }
    }

    #[test]
    fn a_redis_prefix_with_braces_is_refused() {
        let mut config = Config::embedded_defaults(
            "sqlite://huying-data/huying.db".to_owned(),
            Keys::derived_from(b"k"),
        );
        config.redis_prefix = "huying:{a}:".to_owned();
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("HUYING_REDIS_PREFIX"), "{error}");
    }

    #[test]
    fn object_storage_needs_its_endpoint_and_keys_and_defaults_to_a_folder() {
        let storage = |pairs: &[(&str, &str)]| {
            let var = |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            };
            storage_from_env(&var, std::path::Path::new("data"))
        };
        let Ok(StorageConfig::Local(dir)) = storage(&[]) else {
            panic!("a local folder by default");
        };
        assert_eq!(dir, PathBuf::from("data/files"));

        let error = format!("{:#}", storage(&[("HUYING_S3_BUCKET", "b")]).unwrap_err());
        assert!(error.contains("HUYING_S3_ENDPOINT"), "{error}");
        let s3 = storage(&[
            ("HUYING_S3_BUCKET", "b"),
            ("HUYING_S3_ENDPOINT", "https://cos.example"),
            ("HUYING_S3_ACCESS_KEY", "id"),
            ("HUYING_S3_SECRET_KEY", "secret"),
            ("HUYING_S3_PATH_STYLE", "false"),
        ]);
        let Ok(StorageConfig::S3(settings)) = s3 else {
            panic!("object storage");
        };
        assert!(!settings.path_style);
        assert!(!format!("{settings:?}").contains("secret\""));
    }

    #[test]
    fn upload_settings_that_cannot_work_are_refused() {
        let mut config = Config::embedded_defaults(
            "sqlite://huying-data/huying.db".to_owned(),
            Keys::derived_from(b"k"),
        );
        config.uploads.orphan_after = config.uploads.grant_ttl;
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("HUYING_UPLOAD_ORPHAN_HOURS"), "{error}");
    }

    #[test]
    fn postgres_without_redis_is_refused() {
        let mut config = Config::embedded_defaults(
            "postgres://localhost/huying".to_owned(),
            Keys::derived_from(b"k"),
        );
        assert!(config.check().is_err());
        config.redis_url = Some("redis://127.0.0.1".to_owned());
        assert!(config.check().is_ok());
        assert!(!config.dev_sign_in);
    }
}
