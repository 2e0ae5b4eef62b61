//! Two real server processes on one PostgreSQL and one Redis.

use std::process::Stdio;
use std::time::Duration;

use huying::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_stream::StreamExt;

use crate::helpers::{Bearer, Engine, TestApp, only_events, random_name, redis_url};

const BOUND: Duration = Duration::from_secs(20);
/// Well under the servers' 15-second heartbeat, at which a stream would
/// find the event in the store by itself: only the fan-out is this fast.
const LIVE_BOUND: Duration = Duration::from_secs(5);

/// Starts the `huying` binary on `database_url` and returns it with the
/// address it printed.
async fn start_process(
    database_url: &str,
    prefix: &str,
    data_dir: &std::path::Path,
) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_huying"))
        .env("HUYING_LISTEN", "127.0.0.1:0")
        .env("HUYING_DATABASE_URL", database_url)
        .env("HUYING_DATABASE_MAX_CONNECTIONS", "3")
        .env("HUYING_REDIS_URL", redis_url())
        .env("HUYING_REDIS_PREFIX", prefix)
        .env("HUYING_TOKEN_SECRET", "11".repeat(32))
        .env("HUYING_DATA_KEYS", format!("1:{}", "22".repeat(32)))
        .env("HUYING_DEV_SIGN_IN", "true")
        .env("HUYING_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");

    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = timeout(BOUND, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Huying is listening on ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens in time");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, address)
}

async fn citizen_on(
    address: &str,
    subject: &str,
) -> huying::proto::v1::citizen_service_client::CitizenServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let session = huying::proto::v1::auth_service_client::AuthServiceClient::new(channel.clone())
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                subject: subject.to_owned(),
                role: pb::Role::Citizen.into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner();
    huying::proto::v1::citizen_service_client::CitizenServiceClient::with_interceptor(
        channel,
        Bearer::new(&session.session.unwrap().access_token),
    )
}

#[tokio::test]
async fn an_event_written_on_one_replica_reaches_a_stream_on_another() {
    // The in-process server only provides a fresh, migrated database.
    let database = TestApp::spawn(Engine::Postgres).await;
    let prefix = format!("huying-test:{}:", random_name());
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a, address_a) = start_process(&database.database_url, &prefix, dirs.0.path()).await;
    let (_b, address_b) = start_process(&database.database_url, &prefix, dirs.1.path()).await;

    let mut on_a = citizen_on(&address_a, "alice").await;
    let mut on_b = citizen_on(&address_b, "alice").await;
    let id = crate::helpers::file_one(&mut on_a, "req-replica-01").await;

    let mut stream = only_events(
        on_b.watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner(),
    );
    let first = timeout(BOUND, stream.next()).await.unwrap().unwrap();
    assert_eq!(first.sequence, 1);

    on_a.withdraw_complaint(pb::WithdrawComplaintRequest {
        complaint_id: id,
        reason: String::new(),
    })
    .await
    .unwrap();
    let live = timeout(LIVE_BOUND, stream.next())
        .await
        .expect("the event crosses replicas")
        .unwrap();
    assert_eq!((live.sequence, live.kind()), (2, pb::EventKind::Withdrawn));
}

#[tokio::test]
async fn signing_out_on_one_replica_ends_the_sessions_stream_on_another() {
    let database = TestApp::spawn(Engine::Postgres).await;
    let prefix = format!("huying-test:{}:", random_name());
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a, address_a) = start_process(&database.database_url, &prefix, dirs.0.path()).await;
    let (_b, address_b) = start_process(&database.database_url, &prefix, dirs.1.path()).await;

    let channel_a = tonic::transport::Channel::from_shared(format!("http://{address_a}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth_a =
        huying::proto::v1::auth_service_client::AuthServiceClient::new(channel_a.clone());
    let session = auth_a
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                subject: "alice".to_owned(),
                role: pb::Role::Citizen.into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let bearer = Bearer::new(&session.access_token);
    let mut on_a =
        huying::proto::v1::citizen_service_client::CitizenServiceClient::with_interceptor(
            channel_a,
            bearer.clone(),
        );
    let channel_b = tonic::transport::Channel::from_shared(format!("http://{address_b}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut on_b =
        huying::proto::v1::citizen_service_client::CitizenServiceClient::with_interceptor(
            channel_b, bearer,
        );

    let id = crate::helpers::file_one(&mut on_a, "req-replica-02").await;
    let mut stream = on_b
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    timeout(BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    auth_a
        .sign_out(pb::SignOutRequest {
            refresh_token: session.refresh_token,
        })
        .await
        .unwrap();
    // The next event for the stream on B finds the session revoked. The
    // signed-out token is refused now, so another session writes it.
    let mut elsewhere = citizen_on(&address_a, "alice").await;
    elsewhere
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id,
            reason: String::new(),
        })
        .await
        .unwrap();
    match timeout(LIVE_BOUND, stream.next())
        .await
        .expect("the stream ends in time")
    {
        Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}"),
        other => panic!("expected the stream to end, got {other:?}"),
    }
}
