//! Starting a server for one test, and talking to it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use huying::clock::ManualClock;
use huying::config::Config;
use huying::proto::v1 as pb;
use huying::proto::v1::auth_service_client::AuthServiceClient;
use huying::proto::v1::citizen_service_client::CitizenServiceClient;
use huying::security::Keys;
use huying::startup::Application;
use huying::store::Store;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::Mutex;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Runs a test body once per engine, as two tests named after the engine.
macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Engine::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::helpers::Engine::Postgres).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_engines;

/// Runs a test body on each engine with each evidence storage: four tests.
macro_rules! on_both_engines_and_storages {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Engine, Storage};

                #[tokio::test]
                async fn sqlite_local() {
                    super::$name(Engine::Sqlite, Storage::Local).await;
                }

                #[tokio::test]
                async fn sqlite_s3() {
                    super::$name(Engine::Sqlite, Storage::S3).await;
                }

                #[tokio::test]
                async fn postgres_local() {
                    super::$name(Engine::Postgres, Storage::Local).await;
                }

                #[tokio::test]
                async fn postgres_s3() {
                    super::$name(Engine::Postgres, Storage::S3).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_engines_and_storages;

/// Where a test server keeps evidence photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A folder of the test's own.
    Local,
    /// A real S3-compatible server of the test's own (see `s3_server`).
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// 10:00 in Shenzhen on a Thursday.
pub fn test_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 2, 0, 0).unwrap()
}

pub struct TestApp {
    pub app: Option<Application>,
    /// The configuration the server started with, for replicas.
    pub config: Config,
    pub address: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    /// Where stored photos land on disk: the local folder, or the S3 test
    /// server's bucket folder.
    pub files_dir: std::path::PathBuf,
    _s3: Option<crate::s3_server::S3Server>,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> TestApp {
        TestApp::spawn_with(engine, |_| {}).await
    }

    /// Starts a server on a fresh database; `adjust` may change the config.
    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let clock = Arc::new(ManualClock::new(test_start()));
        TestApp::spawn_on_clock(engine, clock, adjust).await
    }

    /// As `spawn_with`, on a clock the test made (and may share with fakes).
    pub async fn spawn_on_clock(
        engine: Engine,
        clock: Arc<ManualClock>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database_url = match engine {
            Engine::Sqlite => format!("sqlite://{}/huying.db", data_dir.path().display()),
            Engine::Postgres => fresh_postgres_database().await,
        };

        let mut master = [0u8; 32];
        rand::fill(&mut master);
        let mut config =
            Config::embedded_defaults(database_url.clone(), Keys::derived_from(&master));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.dev_sign_in = true;
        // Small pools keep parallel tests under PostgreSQL's connection limit.
        config.database_max_connections = 3;
        // Tests probe health explicitly; the background probe stays out of the way.
        config.health_probe_interval = Duration::from_secs(3600);
        // Tests drive supervision with the manual clock, and say when a
        // replica reads revocations from the store.
        config.supervision_interval = None;
        config.revocation_sync_interval = None;
        config.notification_interval = None;
        // Every test client connects from 127.0.0.1 and many sign in over
        // and over: the shared budgets would refuse them. Tests of those
        // limits set their own.
        config
            .rate_limits
            .apply("signin.account=1000/1h,signin.ip=10000/1h,file.ip=10000/1h")
            .expect("valid test limits");
        let files_dir = data_dir.path().join("files");
        config.storage = huying::evidence::StorageConfig::Local(files_dir.clone());
        config.payout_reconcile_interval = None;
        if engine == Engine::Postgres {
            config.redis_url = Some(redis_url());
            config.redis_prefix = format!("huying-test:{}:", random_name());
        }
        adjust(&mut config);

        let app = Application::start(config.clone(), clock.clone())
            .await
            .expect("the server starts");
        TestApp {
            config,
            address: app.address(),
            app: Some(app),
            clock,
            database_url,
            files_dir,
            _s3: None,
            _data_dir: data_dir,
        }
    }

    /// As `spawn_with`, keeping photos in `storage`.
    pub async fn spawn_storing(
        engine: Engine,
        storage: Storage,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let s3 = match storage {
            Storage::Local => None,
            Storage::S3 => Some(crate::s3_server::S3Server::start().await),
        };
        let settings = s3.as_ref().map(|server| server.settings());
        let mut app = TestApp::spawn_with(engine, |config| {
            if let Some(settings) = settings {
                config.storage = huying::evidence::StorageConfig::S3(settings);
            }
            adjust(config);
        })
        .await;
        if let Some(server) = s3 {
            app.files_dir = server.bucket_dir();
            app._s3 = Some(server);
        }
        app
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.app.as_ref().expect("running").store()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connects to the test server")
    }

    pub async fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel().await)
    }

    /// Signs in through the development provider.
    pub async fn sign_in(
        &self,
        subject: &str,
        role: pb::Role,
        unit_id: &str,
    ) -> pb::SignInResponse {
        self.auth()
            .await
            .sign_in(pb::SignInRequest {
                credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                    subject: subject.to_owned(),
                    role: role.into(),
                    unit_id: unit_id.to_owned(),
                    display_name: subject.to_owned(),
                })),
            })
            .await
            .expect("signs in")
            .into_inner()
    }

    /// A citizen client carrying a fresh citizen's access token.
    pub async fn citizen(&self, subject: &str) -> CitizenClient {
        let session = self.sign_in(subject, pb::Role::Citizen, "").await;
        self.citizen_with_token(&session.session.unwrap().access_token)
            .await
    }

    pub async fn citizen_with_token(&self, token: &str) -> CitizenClient {
        CitizenServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }
}

pub type CitizenClient = CitizenServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Bearer {
        Bearer(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ))
    }

    pub fn none() -> Bearer {
        Bearer(None)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A valid filing request for the bundled standard, in the district.
pub fn filing(request_id: &str) -> pb::FileComplaintRequest {
    pb::FileComplaintRequest {
        request_id: request_id.to_owned(),
        kind: pb::ComplaintKind::Complaint.into(),
        channel: pb::Channel::MiniProgram.into(),
        text: "坪山大道旁的垃圾堆了三天没人清理，气味很大。".to_owned(),
        category_code: "010102".to_owned(),
        location: Some(pb::Location {
            address: "坪山街道坪山大道1号".to_owned(),
            coordinates: Some(pb::Coordinates {
                latitude: 22.690,
                longitude: 114.345,
                datum: pb::Datum::Gcj02.into(),
            }),
        }),
        contact_phone: "13812345678".to_owned(),
        photo_ids: Vec::new(),
    }
}

pub fn random_name() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn admin_database_url() -> String {
    std::env::var("HUYING_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("HUYING_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
}

/// One migrated template per test run's schema; each test clones it.
/// The advisory lock makes concurrent test processes build it only once.
async fn template_database() -> String {
    static TEMPLATE: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    let mut template = TEMPLATE.get_or_init(|| Mutex::new(None)).lock().await;
    if let Some(name) = template.as_ref() {
        return name.clone();
    }

    let admin = admin_database_url();
    let mut connection = PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL for tests");
    sqlx::query("SELECT pg_advisory_lock(4870001)")
        .execute(&mut connection)
        .await
        .unwrap();

    let name = format!("huying_template_{}", schema_digest());
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut connection)
        .await
        .unwrap();
    if exists.is_none() {
        let staging = format!("{name}_staging");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {staging}"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {staging}")))
            .execute(&mut connection)
            .await
            .unwrap();
        let store = huying::store::postgres::PgStore::connect(&with_database(&admin, &staging), 1)
            .await
            .expect("migrates the template");
        store.pool().close().await;
        // Renamed only once complete, so a half-built template is never cloned.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {staging} RENAME TO {name}"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
    }

    sqlx::query("SELECT pg_advisory_unlock(4870001)")
        .execute(&mut connection)
        .await
        .unwrap();
    *template = Some(name.clone());
    name
}

/// Changes whenever a migration changes, so a stale template is never used.
fn schema_digest() -> String {
    use sha2::{Digest, Sha256};
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .expect("reads the migrations folder")
        .map(|entry| entry.expect("lists a migration").path())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(std::fs::read(&file).expect("reads a migration"));
    }
    let digest = hasher.finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn fresh_postgres_database() -> String {
    let template = template_database().await;
    let name = format!("huying_test_{}", random_name());
    let admin = admin_database_url();
    let mut connection = PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL for tests");

    // Cloning fails while another session is connected to the template;
    // that only happens for a moment while another process creates it.
    for attempt in 0.. {
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .execute(&mut connection)
        .await;
        match created {
            Ok(_) => break,
            Err(error) if attempt < 20 && error.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("failed to create a test database: {error}"),
        }
    }
    with_database(&admin, &name)
}

/// The code of a failed call, with its message for assertion output.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, Status>) -> tonic::Code {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(status) => status.code(),
    }
}

/// Files the standard test complaint and returns its id.
pub async fn file_one(citizen: &mut CitizenClient, request_id: &str) -> String {
    citizen
        .file_complaint(filing(request_id))
        .await
        .expect("files a complaint")
        .into_inner()
        .complaint
        .expect("the response carries the complaint")
        .id
}

pub type CaseClient =
    huying::proto::v1::case_service_client::CaseServiceClient<InterceptedService<Channel, Bearer>>;

impl TestApp {
    /// A staff client for `role` in `unit`.
    pub async fn staff(&self, subject: &str, role: pb::Role, unit: &str) -> CaseClient {
        let session = self.sign_in(subject, role, unit).await;
        let token = session.session.unwrap().access_token;
        huying::proto::v1::case_service_client::CaseServiceClient::with_interceptor(
            self.channel().await,
            Bearer::new(&token),
        )
    }

    pub async fn dispatcher(&self) -> CaseClient {
        self.staff("dispatcher-1", pb::Role::Dispatcher, "centre")
            .await
    }

    pub async fn handler(&self, unit: &str) -> CaseClient {
        self.staff(&format!("handler-{unit}"), pb::Role::Handler, unit)
            .await
    }
}

/// A fresh request id for a staff action.
pub fn rid() -> String {
    format!("req-{}", random_name())
}

pub async fn get_case(client: &mut CaseClient, id: &str) -> pb::Case {
    client
        .get_case(pb::GetCaseRequest {
            complaint_id: id.to_owned(),
        })
        .await
        .expect("reads the case")
        .into_inner()
}

/// Accepts a complaint for filing at its current version.
pub async fn accept(dispatcher: &mut CaseClient, id: &str) -> pb::Case {
    let case = get_case(dispatcher, id).await;
    dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
        })
        .await
        .expect("accepts")
        .into_inner()
}

/// Accepts, dispatches to `lead` and resolves a complaint through the
/// staff API.
pub async fn resolve_through_staff(app: &TestApp, id: &str, lead: &str) {
    let mut dispatcher = app.dispatcher().await;
    let mut handler = app.handler(lead).await;
    let case = get_case(&mut dispatcher, id).await;
    let case = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
        })
        .await
        .unwrap()
        .into_inner();
    let case = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            lead_unit_id: lead.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    handler
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            summary: "已清理完毕".to_owned(),
        })
        .await
        .unwrap();
}

impl TestApp {
    /// A second server on the same database, Redis and keys: another replica.
    pub async fn replica(&self) -> Application {
        self.replica_with(|_| {}).await
    }

    /// A replica whose configuration `adjust` changed.
    pub async fn replica_with(&self, adjust: impl FnOnce(&mut Config)) -> Application {
        let mut config = self.config.clone();
        adjust(&mut config);
        Application::start(config, self.clock.clone())
            .await
            .expect("the replica starts")
    }

    pub async fn supervise(&self) -> huying::service::supervision::TickReport {
        use huying::clock::Clock;
        let app = self.app.as_ref().expect("running");
        app.supervise(self.clock.now())
            .await
            .expect("a supervision tick")
    }

    pub async fn directory(&self, subject: &str, role: pb::Role) -> DirectoryClient {
        let session = self.sign_in(subject, role, "centre").await;
        let token = session.session.unwrap().access_token;
        huying::proto::v1::directory_service_client::DirectoryServiceClient::with_interceptor(
            self.channel().await,
            Bearer::new(&token),
        )
    }
}

pub type DirectoryClient = huying::proto::v1::directory_service_client::DirectoryServiceClient<
    InterceptedService<Channel, Bearer>,
>;

/// The events of a progress stream, without heartbeats. Panics on an error
/// status, which a test that expects one reads from the raw stream instead.
pub type Events = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = pb::ComplaintEvent> + Send>>;

pub fn only_events(stream: tonic::Streaming<pb::WatchComplaintResponse>) -> Events {
    use tokio_stream::StreamExt;
    Box::pin(
        stream.filter_map(|item| match item.expect("a stream item").item {
            Some(pb::watch_complaint_response::Item::Event(event)) => Some(event),
            _ => None,
        }),
    )
}

/// A Redis server of this test's own, on a free port, that the test may
/// stop without disturbing the shared one.
pub struct PrivateRedis {
    child: tokio::process::Child,
    port: u16,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let started = tokio::time::timeout(Duration::from_secs(15), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        started.await.expect("the private Redis answers");
        PrivateRedis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}
