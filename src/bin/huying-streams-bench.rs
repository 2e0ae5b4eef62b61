//! `huying-streams-bench`: what open progress streams cost a replica, and
//! how fast a new event reaches them.
//!
//! Starts two `huying` processes on a fresh PostgreSQL database and one
//! Redis. Replica A holds N `WatchComplaint` streams, each on its own TCP
//! connection as phones hold them; a handler writes progress notes through
//! replica B, so every delivery crosses the Redis fan-out. Prints A's memory
//! and idle CPU with the streams open, then the delivery latency of the
//! notes. Run it through `scripts/bench-streams`, which raises the limit on
//! open files first: client and server share this machine, so N streams
//! take about 2N descriptors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use huying::proto::v1 as pb;
use pb::auth_service_client::AuthServiceClient;
use pb::case_service_client::CaseServiceClient;
use pb::citizen_service_client::CitizenServiceClient;
use pb::watch_complaint_response::Item;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{MissedTickBehavior, sleep};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

const USAGE: &str = "usage: huying-streams-bench [--streams N] [--events-per-second R] \
[--seconds S] [--complaints M] [--database-url URL] [--redis-url URL]";

/// Streams being opened at once: enough to open 10,000 in well under a
/// minute, few enough that connection set-up does not time out.
const OPEN_CONCURRENCY: usize = 200;
/// Complaints filed and dispatched at once during set-up.
const SETUP_CONCURRENCY: usize = 16;
/// Idle time after the last stream opened, so that the opening's bursts of
/// work are over before the idle CPU is measured.
const SETTLE: Duration = Duration::from_secs(5);
/// The servers' heartbeat interval: every stream heartbeats (and polls the
/// store) exactly once in any window this long, whatever its phase. A 10 s
/// window after streams opened within a second or two holds either all of
/// their first heartbeats or none, and so reads 1.5 times too high or low.
const IDLE_CPU_WINDOW: Duration = Duration::from_secs(15);
/// Longer than the servers' 15-second heartbeat: an event the fan-out lost
/// still arrives (at the heartbeat) and shows in the maximum latency.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);
const START_LIMIT: Duration = Duration::from_secs(60);
const LISTENING: &str = "Huying is listening on ";
/// Server warnings echoed per replica; more would bury the figures.
const ECHO_LIMIT: usize = 20;
const HANDLER_UNIT: &str = "sd:pingshan/municipal";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    let database = BenchDatabase::create(&args.database_url).await?;
    let outcome = run(&args, &database).await;
    // The servers died with `run`, so nothing holds the database any more.
    let dropped = database.drop().await;
    outcome?;
    dropped
}

async fn run(args: &Args, database: &BenchDatabase) -> anyhow::Result<()> {
    let env = server_env(&database.url()?, &args.redis_url);
    // One at a time: each migrates the database at start, and only the
    // first finds anything to do.
    let holder = Server::start("A", &env).await?;
    let writer = Server::start("B", &env).await?;
    println!(
        "replica A (streams) on {}, replica B (writes) on {}, database {}",
        holder.address, writer.address, database.name
    );

    let fixture = prepare(&writer.address, args.complaints).await?;
    let mut report = Report::new(args);
    report.rss_without_streams = rss_kib(holder.pid())?;

    let observed = Arc::new(Observed::default());
    let started = Instant::now();
    let held = open_streams(
        &holder.address,
        &fixture.complaints,
        args.streams,
        &observed,
    )
    .await;
    report.open_time = started.elapsed();
    report.streams_held = held.iter().sum();
    sleep(SETTLE).await;
    report.idle_cpu = cpu_percent(holder.pid(), IDLE_CPU_WINDOW).await?;
    // Read after a heartbeat round: a stream's write buffers are touched
    // only once it sends something, so earlier would read low.
    report.rss_with_streams = rss_kib(holder.pid())?;

    measure_load(args, &fixture, &held, &observed, holder.pid(), &mut report).await?;
    report.streams_open_after = observed.open.load(Ordering::Relaxed);
    report.print(&observed);

    let open = report.streams_open_after;
    let stopped_in = holder.stop_gracefully().await?;
    println!(
        "graceful stop of replica A with {open} streams open: {:.2} s",
        stopped_in.as_secs_f64()
    );
    Ok(())
}

/// Writes the notes and waits for their deliveries, timing both.
async fn measure_load(
    args: &Args,
    fixture: &Fixture,
    held: &[usize],
    observed: &Arc<Observed>,
    holder: u32,
    report: &mut Report,
) -> anyhow::Result<()> {
    let cpu_before = cpu_seconds(holder)?;
    let started = Instant::now();
    let written = write_notes(fixture, args.events_per_second, args.seconds, observed).await;
    report.write_time = started.elapsed();
    report.load_cpu = percent(cpu_seconds(holder)? - cpu_before, started.elapsed());

    report.events_written = written.iter().sum();
    report.deliveries_expected = written.iter().zip(held).map(|(w, h)| w * h).sum();
    wait_for_deliveries(observed, report.deliveries_expected).await;
    Ok(())
}

// ---------------------------------------------------------------- options

struct Args {
    streams: usize,
    events_per_second: u32,
    seconds: u32,
    complaints: usize,
    database_url: String,
    redis_url: String,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut args = Args {
            streams: 10_000,
            events_per_second: 20,
            seconds: 20,
            complaints: 200,
            database_url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
        };
        let mut words = std::env::args().skip(1);
        while let Some(name) = words.next() {
            if name == "--help" || name == "-h" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = words
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            args.set(&name, value)?;
        }
        if args.streams == 0 || args.complaints == 0 || args.events_per_second == 0 {
            bail!("--streams, --complaints and --events-per-second must be at least 1");
        }
        Ok(args)
    }

    fn set(&mut self, name: &str, value: String) -> anyhow::Result<()> {
        match name {
            "--streams" => self.streams = number(name, &value)?,
            "--events-per-second" => self.events_per_second = number(name, &value)?,
            "--seconds" => self.seconds = number(name, &value)?,
            "--complaints" => self.complaints = number(name, &value)?,
            "--database-url" => self.database_url = value,
            "--redis-url" => self.redis_url = value,
            _ => bail!("unknown option {name}\n{USAGE}"),
        }
        Ok(())
    }
}

fn number<T>(name: &str, value: &str) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .with_context(|| format!("{name} takes a whole number, not {value:?}"))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

// -------------------------------------------------------------- processes

/// A database created for one run and dropped after it.
struct BenchDatabase {
    admin_url: String,
    name: String,
}

impl BenchDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("huying_bench_{}", random_hex(6));
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("Failed to connect to PostgreSQL at {admin_url}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("Failed to create the database {name}"))?;
        Ok(BenchDatabase {
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    fn url(&self) -> anyhow::Result<String> {
        let (server, _) = self
            .admin_url
            .rsplit_once('/')
            .context("the database URL names no database")?;
        Ok(format!("{server}/{}", self.name))
    }

    async fn drop(&self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("Failed to reconnect to PostgreSQL to drop the bench database")?;
        // FORCE: a server killed mid-query may leave a backend behind briefly.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .with_context(|| format!("Failed to drop the database {}", self.name))?;
        Ok(())
    }
}

/// The configuration both replicas share: same database, Redis namespace
/// and keys, as replicas of one deployment must.
fn server_env(database_url: &str, redis_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HUYING_LISTEN", "127.0.0.1:0".to_owned()),
        ("HUYING_DATABASE_URL", database_url.to_owned()),
        ("HUYING_DATABASE_MAX_CONNECTIONS", "8".to_owned()),
        ("HUYING_REDIS_URL", redis_url.to_owned()),
        (
            "HUYING_REDIS_PREFIX",
            format!("huying-bench:{}:", random_hex(6)),
        ),
        ("HUYING_TOKEN_SECRET", random_hex(32)),
        ("HUYING_DATA_KEYS", format!("1:{}", random_hex(32))),
        ("HUYING_DEV_SIGN_IN", "true".to_owned()),
        // Every simulated phone signs in and files from 127.0.0.1.
        (
            "HUYING_RATE_LIMITS",
            "signin.ip=1000000/1m,file.ip=1000000/1m".to_owned(),
        ),
        ("RUST_LOG", "warn".to_owned()),
        // The echoed warnings go to a terminal or a file, not through a pipe
        // that understands colour codes.
        ("NO_COLOR", "1".to_owned()),
    ]
}

/// A `huying` process, killed when dropped so that no server outlives the
/// bench, whichever way it ends. (`tokio::process` and its `kill_on_drop`
/// are not among the crate's features outside tests.)
struct Server {
    child: Child,
    address: String,
}

impl Server {
    async fn start(label: &'static str, env: &[(&'static str, String)]) -> anyhow::Result<Server> {
        let program = std::env::current_exe()
            .context("Failed to find the bench's own executable")?
            .with_file_name("huying");
        let mut child = Command::new(&program)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("Failed to start {}", program.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is piped")?;
        let mut server = Server {
            child,
            address: String::new(),
        };

        let (listening, address) = oneshot::channel();
        std::thread::spawn(move || drain_output(label, stdout, listening));
        server.address = tokio::time::timeout(START_LIMIT, address)
            .await
            .with_context(|| format!("Replica {label} did not listen within {START_LIMIT:?}"))?
            .with_context(|| format!("Replica {label} exited before listening"))?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as an orchestrator would, and times the exit: every
    /// open stream must end promptly for the server to stop.
    async fn stop_gracefully(mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("Failed to run kill")?;
        anyhow::ensure!(signalled.success(), "kill -TERM failed");
        while self
            .child
            .try_wait()
            .context("Failed to wait for replica A")?
            .is_none()
        {
            anyhow::ensure!(
                started.elapsed() < START_LIMIT * 4,
                "replica A did not stop"
            );
            sleep(Duration::from_millis(20)).await;
        }
        Ok(started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a server's stdout to its end: the listening line gives the
/// address, an unread pipe would eventually block the server's logging, and
/// its first warnings help explain bad figures.
fn drain_output(label: &str, stdout: ChildStdout, listening: oneshot::Sender<String>) {
    let mut listening = Some(listening);
    let mut echoed = 0;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if let Some(rest) = line.strip_prefix(LISTENING) {
            let address = rest.split_whitespace().next().unwrap_or_default();
            if let Some(sender) = listening.take() {
                let _ = sender.send(address.to_owned());
            }
        } else if echoed < ECHO_LIMIT && (line.contains("WARN") || line.contains("ERROR")) {
            eprintln!("replica {label}: {line}");
            echoed += 1;
        }
    }
}

/// Resident memory of a process, from the kernel's own accounting.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("Failed to read {path}"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .with_context(|| format!("{path} has no VmRSS line"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    number("VmRSS", kib)
}

/// User plus system CPU time a process has used so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("Failed to read {path}"))?;
    // The command name may hold spaces; the fields after it do not.
    let (_, fields) = stat
        .rsplit_once(')')
        .with_context(|| format!("{path} is not in the expected format"))?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; state (3) is first here.
    let ticks = |index: usize| -> anyhow::Result<u64> {
        let field = fields.get(index).context("/proc stat line too short")?;
        number("a /proc stat field", field)
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // No libc binding here; getconf answers the same question, and 100 is
    // what Linux uses everywhere in practice.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn cpu_percent(pid: u32, window: Duration) -> anyhow::Result<f64> {
    let before = cpu_seconds(pid)?;
    let started = Instant::now();
    sleep(window).await;
    Ok(percent(cpu_seconds(pid)? - before, started.elapsed()))
}

/// CPU seconds over wall time, as percent of one core.
fn percent(cpu_seconds: f64, wall: Duration) -> f64 {
    100.0 * cpu_seconds / wall.as_secs_f64()
}

// ----------------------------------------------------------------- set-up

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    fn new(token: &str) -> anyhow::Result<Bearer> {
        let value = format!("Bearer {token}")
            .parse()
            .context("an access token is plain ASCII")?;
        Ok(Bearer(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type CaseClient = CaseServiceClient<InterceptedService<Channel, Bearer>>;

/// A complaint the streams follow, as the set-up left it.
struct Followed {
    id: String,
    citizen_token: String,
    /// Its newest event before the load: streams start after it.
    last_sequence: u64,
    /// The case version the first note names.
    version: u64,
}

struct Fixture {
    complaints: Vec<Followed>,
    handler: CaseClient,
}

/// Files `count` complaints through B, one citizen each (the filing quota
/// is per citizen), and dispatches them to the handler's unit.
async fn prepare(address: &str, count: usize) -> anyhow::Result<Fixture> {
    let channel = connect(address).await?;
    let dispatcher = staff(&channel, "bench-dispatcher", pb::Role::Dispatcher, "centre").await?;
    let handler = staff(&channel, "bench-handler", pb::Role::Handler, HANDLER_UNIT).await?;

    let started = Instant::now();
    let complaints: Vec<anyhow::Result<Followed>> = futures_util::stream::iter(0..count)
        .map(|index| file_and_dispatch(&channel, dispatcher.clone(), index))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let complaints = complaints.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    println!(
        "set-up: {count} complaints filed, accepted and dispatched in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Fixture {
        complaints,
        handler,
    })
}

async fn connect(address: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{address}"))
        .context("the server printed an unusable address")?
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("Failed to connect to {address}"))
}

/// Signs in through the development provider; returns the access token.
async fn sign_in(
    channel: &Channel,
    subject: &str,
    role: pb::Role,
    unit_id: &str,
) -> anyhow::Result<String> {
    let credential = pb::DevCredential {
        subject: subject.to_owned(),
        role: role.into(),
        unit_id: unit_id.to_owned(),
        display_name: subject.to_owned(),
    };
    let response = AuthServiceClient::new(channel.clone())
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(credential)),
        })
        .await
        .with_context(|| format!("Failed to sign in as {subject}"))?;
    let session = response
        .into_inner()
        .session
        .context("a sign-in returns a session")?;
    Ok(session.access_token)
}

async fn staff(
    channel: &Channel,
    subject: &str,
    role: pb::Role,
    unit_id: &str,
) -> anyhow::Result<CaseClient> {
    let token = sign_in(channel, subject, role, unit_id).await?;
    Ok(CaseServiceClient::with_interceptor(
        channel.clone(),
        Bearer::new(&token)?,
    ))
}

async fn file_and_dispatch(
    channel: &Channel,
    mut dispatcher: CaseClient,
    index: usize,
) -> anyhow::Result<Followed> {
    let subject = format!("bench-citizen-{index}");
    let token = sign_in(channel, &subject, pb::Role::Citizen, "").await?;
    let bearer = Bearer::new(&token)?;
    let mut citizen = CitizenServiceClient::with_interceptor(channel.clone(), bearer);
    let filed = citizen
        .file_complaint(filing(&format!("bench-filing-{index:06}")))
        .await
        .context("Failed to file a complaint")?;
    let id = filed
        .into_inner()
        .complaint
        .context("a filing returns the complaint")?
        .id;

    let case = dispatcher
        .get_case(pb::GetCaseRequest {
            complaint_id: id.clone(),
        })
        .await
        .context("Failed to read a new case")?
        .into_inner();
    let case = accept_and_dispatch(&mut dispatcher, &id, case.version).await?;
    let complaint = case.complaint.context("a case carries its complaint")?;
    Ok(Followed {
        id,
        citizen_token: token,
        last_sequence: complaint.last_sequence,
        version: case.version,
    })
}

async fn accept_and_dispatch(
    dispatcher: &mut CaseClient,
    id: &str,
    version: u64,
) -> anyhow::Result<pb::Case> {
    let accepted = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: staff_request_id(),
            complaint_id: id.to_owned(),
            expected_version: version,
        })
        .await
        .context("Failed to accept a complaint for filing")?
        .into_inner();
    let dispatched = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: staff_request_id(),
            complaint_id: id.to_owned(),
            expected_version: accepted.version,
            lead_unit_id: HANDLER_UNIT.to_owned(),
            co_unit_ids: Vec::new(),
        })
        .await
        .context("Failed to dispatch a case")?;
    Ok(dispatched.into_inner())
}

fn staff_request_id() -> String {
    format!("bench-{}", random_hex(8))
}

/// A valid filing in the district, in the bundled category standard.
fn filing(request_id: &str) -> pb::FileComplaintRequest {
    pb::FileComplaintRequest {
        request_id: request_id.to_owned(),
        kind: pb::ComplaintKind::Complaint.into(),
        channel: pb::Channel::App.into(),
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

// ---------------------------------------------------------------- streams

/// Failures counted by gRPC code, each with the first message seen.
#[derive(Default)]
struct Failures(Mutex<BTreeMap<String, (usize, String)>>);

impl Failures {
    fn add(&self, kind: String, message: String) {
        let mut failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        failures.entry(kind).or_insert((0, message)).0 += 1;
    }

    fn status(&self, status: &Status) {
        self.add(format!("{:?}", status.code()), status.message().to_owned());
    }

    fn snapshot(&self) -> BTreeMap<String, (usize, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the streams and the writer saw, shared by their tasks.
#[derive(Default)]
struct Observed {
    open: AtomicUsize,
    /// Streams the server ended with OK, which it should not do here.
    ended: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
    stream_failures: Failures,
    write_failures: Failures,
}

impl Observed {
    fn delivered(&self, event: &pb::ComplaintEvent) {
        let Some(at) = event.occurred_at.as_ref() else {
            return;
        };
        let Some(at) = chrono::DateTime::from_timestamp(at.seconds, at.nanos.max(0) as u32) else {
            return;
        };
        // Same machine, same clock; a negative difference is rounding.
        let latency = (chrono::Utc::now() - at).to_std().unwrap_or_default();
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(latency);
    }

    fn deliveries(&self) -> usize {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// One stream to open: the complaint, as its citizen.
struct Watcher {
    address: String,
    complaint: usize,
    id: String,
    token: String,
    after_sequence: u64,
}

/// Opens `count` streams on A spread over the complaints; returns how many
/// opened on each complaint. The streams stay open in their own tasks.
async fn open_streams(
    address: &str,
    complaints: &[Followed],
    count: usize,
    observed: &Arc<Observed>,
) -> Vec<usize> {
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let (opened, mut outcomes) = mpsc::unbounded_channel();
    for index in 0..count {
        let complaint = index % complaints.len();
        let followed = &complaints[complaint];
        let watcher = Watcher {
            address: address.to_owned(),
            complaint,
            id: followed.id.clone(),
            token: followed.citizen_token.clone(),
            after_sequence: followed.last_sequence,
        };
        let (gate, observed, opened) = (gate.clone(), observed.clone(), opened.clone());
        tokio::spawn(follow(watcher, gate, observed, opened));
    }
    drop(opened);

    let mut held = vec![0; complaints.len()];
    let mut answered = 0;
    while let Some(outcome) = outcomes.recv().await {
        answered += 1;
        if let Some(complaint) = outcome {
            held[complaint] += 1;
        }
        if answered % 2_000 == 0 {
            println!("  {answered} of {count} streams answered");
        }
    }
    held
}

/// Opens one stream and reads it until it ends, reporting the opening
/// (the complaint's index, or `None` on failure) through `opened`.
async fn follow(
    watcher: Watcher,
    gate: Arc<Semaphore>,
    observed: Arc<Observed>,
    opened: mpsc::UnboundedSender<Option<usize>>,
) {
    let permit = gate.acquire_owned().await;
    let stream = watch(&watcher).await;
    drop(permit);
    let mut stream = match stream {
        Ok(stream) => stream,
        Err((kind, message)) => {
            observed.stream_failures.add(kind, message);
            let _ = opened.send(None);
            return;
        }
    };
    observed.open.fetch_add(1, Ordering::Relaxed);
    let _ = opened.send(Some(watcher.complaint));
    drop(opened);

    read(&mut stream, &observed).await;
    observed.open.fetch_sub(1, Ordering::Relaxed);
}

/// A stream on a connection of its own, as each phone has one.
async fn watch(
    watcher: &Watcher,
) -> Result<Streaming<pb::WatchComplaintResponse>, (String, String)> {
    let channel = connect(&watcher.address)
        .await
        .map_err(|error| ("connection failed".to_owned(), format!("{error:#}")))?;
    let bearer = Bearer::new(&watcher.token)
        .map_err(|error| ("bad token".to_owned(), format!("{error:#}")))?;
    let request = pb::WatchComplaintRequest {
        complaint_id: watcher.id.clone(),
        after_sequence: watcher.after_sequence,
    };
    CitizenServiceClient::with_interceptor(channel, bearer)
        .watch_complaint(request)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| (format!("{:?}", status.code()), status.message().to_owned()))
}

async fn read(stream: &mut Streaming<pb::WatchComplaintResponse>, observed: &Observed) {
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                if let Some(Item::Event(event)) = response.item {
                    observed.delivered(&event);
                }
            }
            Ok(None) => {
                observed.ended.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(status) => {
                observed.stream_failures.status(&status);
                return;
            }
        }
    }
}

// ------------------------------------------------------------------- load

/// A complaint's case as the writer tracks it.
struct Target {
    id: String,
    version: tokio::sync::Mutex<u64>,
}

/// Adds `rate` citizen-visible notes a second for `seconds` through B,
/// round-robin over the complaints; returns the notes written on each.
async fn write_notes(
    fixture: &Fixture,
    rate: u32,
    seconds: u32,
    observed: &Arc<Observed>,
) -> Vec<usize> {
    let targets: Vec<Arc<Target>> = fixture
        .complaints
        .iter()
        .map(|c| {
            Arc::new(Target {
                id: c.id.clone(),
                version: c.version.into(),
            })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    // A stall must not turn into a burst that the latencies would blame on
    // the fan-out.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let total = rate as usize * seconds as usize;
    let mut writes = Vec::with_capacity(total);
    for index in 0..total {
        tick.tick().await;
        let complaint = index % targets.len();
        let note = note(
            fixture.handler.clone(),
            targets[complaint].clone(),
            observed.clone(),
        );
        writes.push((complaint, tokio::spawn(note)));
    }

    let mut written = vec![0; targets.len()];
    for (complaint, write) in writes {
        if matches!(write.await, Ok(true)) {
            written[complaint] += 1;
        }
    }
    written
}

/// Adds one note; true when it was written. A failed note re-reads the
/// case, so that one stale version does not fail every later note.
async fn note(mut handler: CaseClient, target: Arc<Target>, observed: Arc<Observed>) -> bool {
    // Round-robin makes overlapping notes on one case rare; the lock makes
    // them wait rather than fail as ABORTED.
    let mut version = target.version.lock().await;
    let request = pb::AddProgressNoteRequest {
        request_id: staff_request_id(),
        complaint_id: target.id.clone(),
        expected_version: *version,
        note: "清运车辆已出发，预计一小时内到达现场。".to_owned(),
        visible_to_citizen: true,
    };
    match handler.add_progress_note(request).await {
        Ok(case) => {
            *version = case.into_inner().version;
            true
        }
        Err(status) => {
            observed.write_failures.status(&status);
            let reread = pb::GetCaseRequest {
                complaint_id: target.id.clone(),
            };
            if let Ok(case) = handler.get_case(reread).await {
                *version = case.into_inner().version;
            }
            false
        }
    }
}

async fn wait_for_deliveries(observed: &Observed, expected: usize) {
    let started = Instant::now();
    while observed.deliveries() < expected && started.elapsed() < DRAIN_LIMIT {
        sleep(Duration::from_millis(100)).await;
    }
}

// ----------------------------------------------------------------- report

#[derive(Default)]
struct Report {
    streams_wanted: usize,
    complaints: usize,
    events_wanted: usize,
    streams_held: usize,
    open_time: Duration,
    rss_without_streams: u64,
    rss_with_streams: u64,
    idle_cpu: f64,
    events_written: usize,
    write_time: Duration,
    load_cpu: f64,
    deliveries_expected: usize,
    streams_open_after: usize,
}

impl Report {
    fn new(args: &Args) -> Report {
        Report {
            streams_wanted: args.streams,
            complaints: args.complaints,
            events_wanted: args.events_per_second as usize * args.seconds as usize,
            ..Report::default()
        }
    }

    fn kib_per_stream(&self) -> f64 {
        let grown = self
            .rss_with_streams
            .saturating_sub(self.rss_without_streams);
        grown as f64 / self.streams_held.max(1) as f64
    }

    fn print(&self, observed: &Observed) {
        let mut latencies = observed
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        latencies.sort_unstable();
        self.print_streams();
        self.print_load(&latencies, observed);
        print_failures("stream errors", &observed.stream_failures);
        print_failures("write errors", &observed.write_failures);
        self.print_summary(&latencies);
    }

    fn print_streams(&self) {
        println!();
        println!(
            "streams held: {} of {} over {} complaints (opened in {:.1} s)",
            self.streams_held,
            self.streams_wanted,
            self.complaints,
            self.open_time.as_secs_f64()
        );
        println!(
            "server RSS idle without streams: {} KiB",
            self.rss_without_streams
        );
        println!("server RSS with streams: {} KiB", self.rss_with_streams);
        println!("KiB per stream: {:.1}", self.kib_per_stream());
        println!(
            "idle CPU of replica A over {} s: {:.1} % of one core",
            IDLE_CPU_WINDOW.as_secs(),
            self.idle_cpu
        );
    }

    fn print_load(&self, latencies: &[Duration], observed: &Observed) {
        println!(
            "events written: {} of {} in {:.1} s",
            self.events_written,
            self.events_wanted,
            self.write_time.as_secs_f64()
        );
        println!(
            "CPU of replica A while writing: {:.1} % of one core",
            self.load_cpu
        );
        println!(
            "deliveries received: {} (expected {})",
            latencies.len(),
            self.deliveries_expected
        );
        println!(
            "delivery latency ms: p50 {} p90 {} p99 {} max {}",
            millis(percentile(latencies, 50.0)),
            millis(percentile(latencies, 90.0)),
            millis(percentile(latencies, 99.0)),
            millis(latencies.last().copied()),
        );
        println!(
            "streams still open at the end: {}; ended by the server with OK: {}",
            self.streams_open_after,
            observed.ended.load(Ordering::Relaxed)
        );
    }

    fn print_summary(&self, latencies: &[Duration]) {
        println!();
        println!("streams held: {}", self.streams_held);
        println!("memory per idle stream: {:.1} KiB", self.kib_per_stream());
        println!("idle CPU: {:.1} % of one core", self.idle_cpu);
        println!(
            "delivery latency p50/p99: {}/{} ms",
            millis(percentile(latencies, 50.0)),
            millis(percentile(latencies, 99.0)),
        );
    }
}

fn print_failures(what: &str, failures: &Failures) {
    let failures = failures.snapshot();
    if failures.is_empty() {
        println!("{what}: none");
        return;
    }
    println!("{what}:");
    for (kind, (count, first)) in failures {
        println!("  {kind}: {count} (first: {first})");
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

fn millis(value: Option<Duration>) -> String {
    match value {
        Some(value) => format!("{:.1}", value.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
}
