//! Rate limits over real gRPC: per citizen, device, address, session and
//! sign-in credential; the client address seen through trusted proxies;
//! and what a Redis outage does. Windows are long (hours), so no token
//! can come back while a test runs, however slow the machine.

use std::time::Duration;

use bytes::Bytes;
use chrono::Duration as Elapsed;
use http_body_util::{BodyExt, Full};
use huying::config::Config;
use huying::proto::v1 as pb;
use huying::proto::v1::citizen_service_client::CitizenServiceClient;
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::citizen_world::World;
use crate::helpers::{Engine, PrivateRedis, TestApp, filing, on_both_engines, random_name};

on_both_engines!(
    filing_is_limited_per_citizen_and_retries_still_answer,
    filing_is_limited_per_device_then_per_address,
    sign_in_is_limited_per_credential_then_per_address,
    reads_are_limited_per_session,
);

/// Adds metadata to every call: a bearer token, a device id, a forwarded
/// address.
#[derive(Clone, Default)]
struct Metadata(Vec<(&'static str, String)>);

impl Metadata {
    fn with(mut self, name: &'static str, value: &str) -> Metadata {
        self.0.push((name, value.to_owned()));
        self
    }
}

impl Interceptor for Metadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (name, value) in &self.0 {
            let value: MetadataValue<_> = value.parse().expect("ascii metadata");
            request.metadata_mut().append(*name, value);
        }
        Ok(request)
    }
}

type Citizen = CitizenServiceClient<InterceptedService<Channel, Metadata>>;

/// A fresh citizen's client that sends `metadata` besides its token.
async fn citizen_with(app: &TestApp, subject: &str, metadata: Metadata) -> Citizen {
    let session = app.sign_in(subject, pb::Role::Citizen, "").await;
    let token = session.session.unwrap().access_token;
    let metadata = metadata.with("authorization", &format!("Bearer {token}"));
    CitizenServiceClient::with_interceptor(app.channel().await, metadata)
}

fn limited(status: &Status) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    status
        .get_details_retry_info()
        .expect("RetryInfo details")
        .retry_delay
        .expect("a retry delay")
}

fn limits(text: &'static str) -> impl FnOnce(&mut Config) {
    move |config| config.rate_limits.apply(text).expect("valid limits")
}

async fn file(
    citizen: &mut Citizen,
    request_id: &str,
) -> Result<pb::FileComplaintResponse, Status> {
    citizen
        .file_complaint(filing(request_id))
        .await
        .map(|r| r.into_inner())
}

async fn complaints_of(citizen: &mut Citizen) -> usize {
    let page = citizen
        .list_my_complaints(pb::ListMyComplaintsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("lists the citizen's complaints");
    page.into_inner().complaints.len()
}

// On PostgreSQL the limiter is Redis, on its own clock; on SQLite it is
// in-process, on the test's clock.
async fn filing_is_limited_per_citizen_and_retries_still_answer(engine: Engine) {
    // Ten minutes, not hours: access tokens live fifteen, and the clock moves.
    let app = TestApp::spawn_with(engine, limits("file.citizen=2/10m")).await;
    let mut alice = citizen_with(&app, "alice", Metadata::default()).await;
    let mut bob = citizen_with(&app, "bob", Metadata::default()).await;

    file(&mut alice, "req-limit-0001").await.unwrap();
    file(&mut alice, "req-limit-0002").await.unwrap();
    let refused = file(&mut alice, "req-limit-0003").await.unwrap_err();
    let replay = file(&mut alice, "req-limit-0001").await.unwrap();
    bob.file_complaint(filing("req-limit-bob1")).await.unwrap();

    let wait = limited(&refused);
    assert!(wait <= Duration::from_secs(300), "{wait:?}");
    assert!(wait > Duration::from_secs(200), "{wait:?}");
    assert!(replay.replayed, "a retry of a filed request is answered");
    assert_eq!(
        complaints_of(&mut alice).await,
        2,
        "the refused one is not stored"
    );

    app.clock.advance(Elapsed::minutes(5));
    let later = file(&mut alice, "req-limit-0003").await;
    match engine {
        Engine::Sqlite => {
            later.expect("the in-process limiter follows the injected clock");
        }
        // The caller's clock moves nothing: Redis counts on its own.
        Engine::Postgres => {
            limited(&later.unwrap_err());
        }
    }
}

#[tokio::test]
async fn concurrent_filings_by_one_citizen_pass_exactly_the_quota() {
    let app = TestApp::spawn_with(Engine::Postgres, limits("file.citizen=5/1h")).await;
    let citizen = citizen_with(&app, "hasty", Metadata::default()).await;

    let attempts = (0..20).map(|n| {
        let mut citizen = citizen.clone();
        async move { file(&mut citizen, &format!("req-burst-{n:04}")).await }
    });
    let results = futures_util::future::join_all(attempts).await;

    let passed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(passed, 5, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        let wait = limited(refused);
        assert!(wait > Duration::from_secs(600), "{wait:?}");
    }
    assert_eq!(complaints_of(&mut citizen.clone()).await, 5);
}

async fn filing_is_limited_per_device_then_per_address(engine: Engine) {
    let app = TestApp::spawn_with(engine, limits("file.device=3/1h,file.ip=5/1h")).await;
    let phone = Metadata::default().with("x-huying-device-id", "device-0001-shared");
    let mut alice = citizen_with(&app, "alice", phone.clone()).await;
    let mut bob = citizen_with(&app, "bob", phone).await;
    let other = Metadata::default().with("x-huying-device-id", "device-0002-bobs");
    let mut bob_elsewhere = citizen_with(&app, "bob", other).await;

    file(&mut alice, "req-device-a1").await.unwrap();
    file(&mut alice, "req-device-a2").await.unwrap();
    file(&mut bob, "req-device-b1").await.unwrap();
    let device_spent = file(&mut bob, "req-device-b2").await.unwrap_err();
    file(&mut bob_elsewhere, "req-device-b3").await.unwrap();

    limited(&device_spent);
    assert_eq!(complaints_of(&mut bob).await, 2);

    // Four from 127.0.0.1 so far: the device's refusal spent nothing of
    // the address's budget. One more passes, then the address is spent.
    let mut carol = citizen_with(&app, "carol", Metadata::default()).await;
    let mut dave = citizen_with(&app, "dave", Metadata::default()).await;
    file(&mut carol, "req-address-c1").await.unwrap();
    let address_spent = file(&mut dave, "req-address-d1").await.unwrap_err();

    limited(&address_spent);
    assert_eq!(complaints_of(&mut dave).await, 0);
}

#[tokio::test]
async fn a_malformed_device_id_is_refused_with_its_field() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let bad = Metadata::default().with("x-huying-device-id", "not a device id");
    let mut citizen = citizen_with(&app, "alice", bad).await;

    let refused = file(&mut citizen, "req-bad-device").await.unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let violations = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(violations[0].field, "x-huying-device-id");
    let mut plain = citizen_with(&app, "alice", Metadata::default()).await;
    assert_eq!(complaints_of(&mut plain).await, 0);
}

/// Files once for a fresh citizen whose requests carry `forwarded_for`.
async fn file_from(app: &TestApp, subject: &str, forwarded_for: &str) -> Result<(), Status> {
    let metadata = Metadata::default().with("x-forwarded-for", forwarded_for);
    let mut citizen = citizen_with(app, subject, metadata).await;
    file(&mut citizen, &format!("req-from-{subject}"))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let behind_proxy = TestApp::spawn_with(Engine::Sqlite, |config| {
        limits("file.ip=2/1h")(config);
        config.trusted_proxies =
            huying::domain::client::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let direct = TestApp::spawn_with(Engine::Sqlite, limits("file.ip=2/1h")).await;

    // Through the trusted proxy, each forwarded client has its own budget;
    // what a client writes left of the proxy's entry proves nothing.
    file_from(&behind_proxy, "a", "203.0.113.7").await.unwrap();
    file_from(&behind_proxy, "b", "203.0.113.7").await.unwrap();
    let forged = file_from(&behind_proxy, "c", "198.51.100.1, 203.0.113.7").await;
    file_from(&behind_proxy, "d", "203.0.113.8").await.unwrap();
    limited(&forged.unwrap_err());

    // Straight from a client, the header is ignored: all are 127.0.0.1.
    file_from(&direct, "a", "203.0.113.7").await.unwrap();
    file_from(&direct, "b", "203.0.113.8").await.unwrap();
    let shared = file_from(&direct, "c", "203.0.113.9").await;
    limited(&shared.unwrap_err());
}

/// Asks for a sign-in code over gRPC-Web (HTTP/1.1, as a mini-program
/// does) through a proxy that forwarded `forwarded_for`; the grpc-status.
async fn sms_code_over_grpc_web(app: &TestApp, phone: &str, forwarded_for: &str) -> String {
    let mut sender = crate::grpc_web::http1_sender(app).await;
    let message = pb::RequestSmsCodeRequest {
        phone: phone.to_owned(),
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let request = http::Request::post("/huying.v1.AuthService/RequestSmsCode")
        .header("host", app.address.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-forwarded-for", forwarded_for)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();

    // A refusal comes as headers only; an answer ends with a trailer frame.
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().unwrap().to_owned();
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let frames = crate::grpc_web::frames(&body);
    let (_, trailers) = frames.iter().find(|(flags, _)| *flags == 0x80).unwrap();
    let trailers = String::from_utf8_lossy(trailers).to_ascii_lowercase();
    let status = trailers
        .lines()
        .find_map(|line| line.trim().strip_prefix("grpc-status:"))
        .expect("a grpc-status trailer");
    status.trim().to_owned()
}

#[tokio::test]
async fn grpc_web_calls_are_counted_by_their_forwarded_address() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        limits("sms.ip=1/1h")(config);
        config.trusted_proxies =
            huying::domain::client::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;

    let first = sms_code_over_grpc_web(&app, "13900000101", "203.0.113.7").await;
    let same_client = sms_code_over_grpc_web(&app, "13900000102", "203.0.113.7").await;
    let other_client = sms_code_over_grpc_web(&app, "13900000103", "203.0.113.8").await;

    assert_eq!(first, "0");
    assert_eq!(same_client, (Code::ResourceExhausted as i32).to_string());
    assert_eq!(other_client, "0");
}

#[tokio::test]
async fn sms_limits_hold_on_redis() {
    let world = World::spawn_with(Engine::Postgres, limits("sms.phone=1/1h,sms.ip=3/1h")).await;

    world.request_code("13900000201").await.unwrap();
    let too_soon = world.request_code("13900000201").await.unwrap_err();
    world.request_code("13900000202").await.unwrap();
    world.request_code("13900000203").await.unwrap();
    let address_spent = world.request_code("13900000204").await.unwrap_err();

    let wait = limited(&too_soon);
    assert!(wait > Duration::from_secs(3500), "{wait:?}");
    limited(&address_spent);
    assert_eq!(world.sms.sent().len(), 3, "nothing was texted when refused");
}

async fn dev_sign_in(app: &TestApp, subject: &str) -> Result<(), Status> {
    let credential = pb::DevCredential {
        subject: subject.to_owned(),
        role: pb::Role::Citizen.into(),
        unit_id: String::new(),
        display_name: subject.to_owned(),
    };
    let request = pb::SignInRequest {
        credential: Some(pb::sign_in_request::Credential::Dev(credential)),
    };
    app.auth().await.sign_in(request).await.map(|_| ())
}

async fn staff_sign_in(app: &TestApp, username: &str) -> Status {
    let credential = pb::StaffPasswordCredential {
        username: username.to_owned(),
        password: "not the password".to_owned(),
        totp_code: String::new(),
    };
    let request = pb::SignInRequest {
        credential: Some(pb::sign_in_request::Credential::Staff(credential)),
    };
    app.auth().await.sign_in(request).await.unwrap_err()
}

async fn sign_in_is_limited_per_credential_then_per_address(engine: Engine) {
    let app = TestApp::spawn_with(engine, limits("signin.account=2/1h,signin.ip=5/1h")).await;

    dev_sign_in(&app, "alice").await.unwrap();
    dev_sign_in(&app, "alice").await.unwrap();
    let alice_again = dev_sign_in(&app, "alice").await.unwrap_err();
    let wrong_password = staff_sign_in(&app, "Clerk").await;
    staff_sign_in(&app, "clerk").await;
    // Usernames are case-insensitive, and so is their budget; the refusal
    // comes before any password is checked.
    let staff_again = staff_sign_in(&app, "CLERK").await;

    limited(&alice_again);
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    limited(&staff_again);

    // Four attempts from 127.0.0.1 counted (the refused ones stopped at
    // their credential's limit); one more, then the address is spent.
    dev_sign_in(&app, "bob").await.unwrap();
    let address_spent = dev_sign_in(&app, "carol").await.unwrap_err();
    limited(&address_spent);
}

async fn reads_are_limited_per_session(engine: Engine) {
    let app = TestApp::spawn_with(engine, limits("read.session=3/1h")).await;
    let mut first = citizen_with(&app, "reader", Metadata::default()).await;
    let mut second = citizen_with(&app, "reader", Metadata::default()).await;
    let mut dispatcher = app.dispatcher().await;

    for _ in 0..3 {
        complaints_of(&mut first).await;
    }
    let fourth = first
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: "1".to_owned(),
        })
        .await
        .unwrap_err();
    let other_session = second
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await;
    for _ in 0..3 {
        dispatcher
            .list_queue(pb::ListQueueRequest::default())
            .await
            .unwrap();
    }
    let staff_fourth = dispatcher
        .list_queue(pb::ListQueueRequest::default())
        .await
        .unwrap_err();

    limited(&fourth);
    other_session.expect("another session has its own budget");
    limited(&staff_fourth);
}

/// Lines of the captured log that contain every one of `needles`.
fn log_lines(logs: &std::sync::Mutex<Vec<u8>>, needles: &[&str]) -> usize {
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    logs.lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .count()
}

#[tokio::test]
async fn without_redis_filing_falls_back_and_sms_fails_closed() {
    let logs = crate::privacy::captured_logs();
    let redis = PrivateRedis::start().await;
    let prefix = format!("huying-test:{}:", random_name());
    let world = World::spawn_with(Engine::Sqlite, |config| {
        config.redis_url = Some(redis.url());
        config.redis_prefix = prefix.clone();
        limits("file.citizen=2/1h")(config);
    })
    .await;
    world
        .request_code("13900000301")
        .await
        .expect("sends while Redis answers");
    let mut citizen = citizen_with(&world.app, "filer", Metadata::default()).await;
    file(&mut citizen, "req-outage-01").await.unwrap();

    redis.stop().await;
    let refused = world.request_code("13900000302").await.unwrap_err();
    let refused_again = world.request_code("13900000303").await.unwrap_err();
    // The in-process fallback starts afresh: two more, then limited.
    file(&mut citizen, "req-outage-02").await.unwrap();
    file(&mut citizen, "req-outage-03").await.unwrap();
    let over = file(&mut citizen, "req-outage-04").await.unwrap_err();
    let replay = file(&mut citizen, "req-outage-02").await.unwrap();

    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(refused_again.code(), Code::Unavailable);
    assert_eq!(
        world.sms.sent().len(),
        1,
        "nothing was texted without limits"
    );
    limited(&over);
    assert!(replay.replayed);
    let fallback = ["counting in this process meanwhile", prefix.as_str()];
    let refusal = ["refusing what it must guard", prefix.as_str()];
    assert_eq!(log_lines(&logs, &fallback), 1, "one warning per interval");
    assert_eq!(log_lines(&logs, &refusal), 1);

    world.app.clock.advance(Elapsed::seconds(61));
    file(&mut citizen, "req-outage-05").await.unwrap_err();
    assert_eq!(
        log_lines(&logs, &fallback),
        2,
        "warned again after the interval"
    );
}
