//! Signing out ends a session's access tokens on every replica within
//! seconds: through the bus, or, when its message is lost, through the
//! store that each replica reads. Tampered and expired tokens are refused
//! as well.

use std::net::SocketAddr;
use std::time::Duration;

use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{
    Bearer, CitizenClient, Engine, TestApp, code_of, on_both_engines, random_name,
};

on_both_engines!(
    tampered_expired_and_signed_out_tokens_are_unauthenticated,
    a_replica_that_missed_the_sign_out_refuses_once_it_reads_the_store
);

async fn citizen_at(address: SocketAddr, token: &str) -> CitizenClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::citizen_service_client::CitizenServiceClient::with_interceptor(channel, Bearer::new(token))
}

async fn list(citizen: &mut CitizenClient) -> Result<(), tonic::Status> {
    citizen
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .map(|_| ())
}

async fn sign_out(app: &TestApp, session: &pb::Session) {
    app.auth()
        .await
        .sign_out(pb::SignOutRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .expect("signs out");
}

async fn session_of(app: &TestApp, subject: &str) -> pb::Session {
    app.sign_in(subject, pb::Role::Citizen, "")
        .await
        .session
        .unwrap()
}

/// The token with the first character of its signature changed.
fn tampered(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    format!("{signed}.{first}{}", &signature[1..])
}

async fn tampered_expired_and_signed_out_tokens_are_unauthenticated(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = session_of(&app, "alice").await;
    let bob = session_of(&app, "bob").await;
    let mut as_alice = app.citizen_with_token(&alice.access_token).await;
    list(&mut as_alice).await.expect("a fresh token works");

    let mut forged = app.citizen_with_token(&tampered(&alice.access_token)).await;
    assert_eq!(code_of(list(&mut forged).await), Code::Unauthenticated);

    // Refused at once on the replica that signed the session out.
    sign_out(&app, &alice).await;
    let refused = list(&mut as_alice).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("ended"), "{refused:?}");

    let mut as_bob = app.citizen_with_token(&bob.access_token).await;
    list(&mut as_bob)
        .await
        .expect("another session is unaffected");
    app.clock.advance(chrono::Duration::minutes(15));
    let expired = list(&mut as_bob).await.unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{expired:?}");
}

async fn a_replica_that_missed_the_sign_out_refuses_once_it_reads_the_store(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    // A bus channel of its own (on SQLite each server has its own bus
    // anyway): this replica never hears the other's sign-outs.
    let deaf = app
        .replica_with(|config| config.redis_prefix = format!("huying-test:{}:", random_name()))
        .await;
    let session = session_of(&app, "alice").await;
    let mut on_deaf = citizen_at(deaf.address(), &session.access_token).await;
    list(&mut on_deaf).await.expect("works before signing out");

    sign_out(&app, &session).await;
    list(&mut on_deaf)
        .await
        .expect("the message was lost: the replica does not know yet");
    let learned = deaf.learn_revocations().await.unwrap();

    assert_eq!(learned, 1);
    assert_eq!(code_of(list(&mut on_deaf).await), Code::Unauthenticated);
    // A replica that starts later reads recent revocations first.
    let late = app.replica().await;
    let mut on_late = citizen_at(late.address(), &session.access_token).await;
    assert_eq!(code_of(list(&mut on_late).await), Code::Unauthenticated);
    deaf.stop().await.unwrap();
    late.stop().await.unwrap();
}

/// PostgreSQL only: replicas share a bus through Redis.
#[tokio::test]
async fn signing_out_on_one_replica_refuses_the_token_on_another_through_the_bus() {
    let app = TestApp::spawn(Engine::Postgres).await;
    // Tests read no revocations from the store unless told: only the bus
    // can tell this replica.
    let replica = app.replica().await;
    let session = session_of(&app, "alice").await;
    let mut on_replica = citizen_at(replica.address(), &session.access_token).await;
    list(&mut on_replica)
        .await
        .expect("works before signing out");

    sign_out(&app, &session).await;

    // The message crosses Redis pub/sub on its own time; a generous bound.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match list(&mut on_replica).await {
                Err(status) => return status,
                Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the replica hears of the sign-out");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    replica.stop().await.unwrap();
}
