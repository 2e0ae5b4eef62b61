//! Progress streams: live delivery, resuming, slow readers, shutdown.

use std::time::Duration;

use chrono::Duration as Elapsed;
use huying::proto::v1 as pb;
use tokio::time::timeout;
use tokio_stream::StreamExt;

use crate::helpers::{CitizenClient, TestApp, file_one, on_both_engines, only_events};

on_both_engines!(
    a_stream_delivers_an_event_written_after_it_opened,
    a_stream_resumes_after_a_sequence
);

/// Upper bound for an event already committed to arrive; never a wait for
/// time to pass.
const DELIVERY_BOUND: Duration = Duration::from_secs(10);

/// The next event of an events-only stream, within the delivery bound.
async fn next_event(events: &mut crate::helpers::Events) -> pb::ComplaintEvent {
    timeout(DELIVERY_BOUND, events.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

async fn watch(
    citizen: &mut CitizenClient,
    id: &str,
    after: u64,
) -> tonic::Streaming<pb::WatchComplaintResponse> {
    citizen
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.to_owned(),
            after_sequence: after,
        })
        .await
        .expect("the stream opens")
        .into_inner()
}

async fn withdraw(citizen: &mut CitizenClient, id: &str) {
    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id.to_owned(),
            reason: "已自行解决".to_owned(),
        })
        .await
        .unwrap();
}

async fn a_stream_delivers_an_event_written_after_it_opened(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-watch-0001").await;

    let mut stream = only_events(watch(&mut citizen, &id, 0).await);
    let received = next_event(&mut stream).await;
    assert_eq!(
        (received.sequence, received.kind()),
        (1, pb::EventKind::Received)
    );

    // The stream has caught up, so this event is written while it is open.
    app.clock.advance(Elapsed::minutes(5));
    withdraw(&mut citizen, &id).await;

    let live = next_event(&mut stream).await;
    assert_eq!(live.sequence, 2);
    assert_eq!(live.kind(), pb::EventKind::Withdrawn);
    assert_eq!(live.status(), pb::ComplaintStatus::Withdrawn);
    assert_eq!(live.complaint_id, id);
}

async fn a_stream_resumes_after_a_sequence(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-resume-001").await;
    withdraw(&mut citizen, &id).await;

    let mut stream = only_events(watch(&mut citizen, &id, 1).await);

    let first = next_event(&mut stream).await;
    assert_eq!(
        first.sequence, 2,
        "the event the client already had is not sent again"
    );
}

#[tokio::test]
async fn stopping_the_server_ends_open_streams_with_a_retryable_status() {
    let mut app = TestApp::spawn(crate::helpers::Engine::Sqlite).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-stop-00001").await;
    let mut stream = watch(&mut citizen, &id, 0).await;
    timeout(DELIVERY_BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let server = app.app.take().unwrap();
    timeout(DELIVERY_BOUND, server.stop())
        .await
        .expect("a held stream does not block shutdown")
        .unwrap();
    match timeout(DELIVERY_BOUND, stream.next()).await.unwrap() {
        Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        other => panic!("expected a retryable end, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reader_that_never_reads_is_told_to_resume() {
    let app = TestApp::spawn_with(crate::helpers::Engine::Sqlite, |config| {
        config.streams.buffer = 4;
    })
    .await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-slow-00001").await;

    // A client with a tiny HTTP/2 window stops the server from sending
    // after a few events; it then reads nothing while many are written.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.address))
        .unwrap()
        .initial_stream_window_size(1024)
        .initial_connection_window_size(1024)
        .connect()
        .await
        .unwrap();
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let mut slow =
        huying::proto::v1::citizen_service_client::CitizenServiceClient::with_interceptor(
            channel,
            crate::helpers::Bearer::new(&session.access_token),
        );
    let mut stream = watch(&mut slow, &id, 0).await;

    let mut staff = app.dispatcher().await;
    let mut handler = app.handler("sd:pingshan/municipal").await;
    let case = crate::helpers::get_case(&mut staff, &id).await;
    let case = staff
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: crate::helpers::rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
        })
        .await
        .unwrap()
        .into_inner();
    let mut version = staff
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: crate::helpers::rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            lead_unit_id: "sd:pingshan/municipal".to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .version;
    for i in 0..40 {
        let note = format!("第{i}次进展：{}", "现场处置中，".repeat(20));
        version = handler
            .add_progress_note(pb::AddProgressNoteRequest {
                request_id: crate::helpers::rid(),
                complaint_id: id.clone(),
                expected_version: version,
                note,
                visible_to_citizen: true,
            })
            .await
            .unwrap()
            .into_inner()
            .version;
    }

    // Now read: what was buffered arrives, then the resume status.
    let mut last_sequence = 0;
    let status = loop {
        match timeout(DELIVERY_BOUND, stream.next())
            .await
            .expect("the stream ends")
        {
            Some(Ok(response)) => {
                if let Some(pb::watch_complaint_response::Item::Event(event)) = response.item {
                    last_sequence = event.sequence;
                }
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without telling the client to resume"),
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        last_sequence < 43,
        "the slow client did not get everything: {last_sequence}"
    );

    // Resuming from there delivers the rest, in order, without gaps.
    let mut resumed = only_events(watch(&mut citizen, &id, last_sequence).await);
    let mut expected = last_sequence + 1;
    while expected <= 43 {
        let event = next_event(&mut resumed).await;
        assert_eq!(event.sequence, expected);
        expected += 1;
    }
}

on_both_engines!(the_home_screen_feed_spans_complaints_and_resumes_by_cursor);

async fn watch_mine(citizen: &mut CitizenClient, after: u64) -> crate::helpers::Events {
    only_events(
        citizen
            .watch_my_complaints(pb::WatchMyComplaintsRequest {
                after_cursor: after,
            })
            .await
            .expect("the feed opens")
            .into_inner(),
    )
}

async fn the_home_screen_feed_spans_complaints_and_resumes_by_cursor(
    engine: crate::helpers::Engine,
) {
    let app = TestApp::spawn(engine).await;
    let mut alice = app.citizen("alice").await;
    let mut bob = app.citizen("bob").await;
    let first = file_one(&mut alice, "req-feed-00001").await;
    file_one(&mut bob, "req-feed-bob01").await;
    let second = file_one(&mut alice, "req-feed-00002").await;
    withdraw(&mut alice, &first).await;

    let mut feed = watch_mine(&mut alice, 0).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut feed).await;
        seen.push((event.feed_cursor, event.kind(), event.complaint_id));
    }
    use pb::EventKind::*;
    assert_eq!(
        seen,
        [
            (1, Received, first.clone()),
            (2, Received, second.clone()),
            (3, Withdrawn, first.clone())
        ],
        "only Alice's events, in feed order"
    );

    // Live, then a reconnect from a cursor gets exactly what came after it.
    withdraw(&mut alice, &second).await;
    let live = next_event(&mut feed).await;
    assert_eq!(
        (live.feed_cursor, live.complaint_id.as_str()),
        (4, second.as_str())
    );
    drop(feed);
    let mut resumed = watch_mine(&mut alice, 2).await;
    let cursors: Vec<u64> = [
        next_event(&mut resumed).await.feed_cursor,
        next_event(&mut resumed).await.feed_cursor,
    ]
    .into();
    assert_eq!(cursors, [3, 4]);
}

#[tokio::test]
async fn feed_numbers_follow_commit_order_under_concurrent_writers() {
    use sqlx::Connection;

    let app = TestApp::spawn(crate::helpers::Engine::Postgres).await;
    let mut alice = app.citizen("alice").await;
    let id: i64 = file_one(&mut alice, "req-order-0001")
        .await
        .parse()
        .unwrap();

    // Writer A: a slow transaction that takes the next feed number for
    // Alice's complaint and does not commit yet.
    let mut writer_a = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut writer_a).await.unwrap();
    let sequence: i64 = sqlx::query_scalar("UPDATE complaints SET last_sequence = last_sequence + 1 WHERE id = $1 RETURNING last_sequence")
        .bind(id)
        .fetch_one(&mut writer_a)
        .await
        .unwrap();
    let cursor_a: i64 = sqlx::query_scalar(
        "UPDATE accounts SET feed_sequence = feed_sequence + 1 \
         WHERE id = (SELECT citizen_id FROM complaints WHERE id = $1) RETURNING feed_sequence",
    )
    .bind(id)
    .fetch_one(&mut writer_a)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO complaint_events (complaint_id, sequence, kind, status, message, \
         visible_to_citizen, occurred_at, citizen_id, citizen_sequence) \
         SELECT $1, $2, 'progress', status, '慢事务', TRUE, now(), citizen_id, $3 FROM complaints WHERE id = $1",
    )
    .bind(id)
    .bind(sequence)
    .bind(cursor_a)
    .execute(&mut writer_a)
    .await
    .unwrap();

    // Writer B: files another complaint for Alice through the API, which
    // must wait for A's lock rather than take a number and commit first.
    let mut client = alice.clone();
    let writer_b = tokio::spawn(async move { file_one(&mut client, "req-order-0002").await });
    let mut observer = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let blocked = async {
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut observer)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    timeout(DELIVERY_BOUND, blocked)
        .await
        .expect("writer B waits for writer A's lock");

    // A reader now sees only what is committed: nothing past cursor 1.
    let mut feed = watch_mine(&mut alice, 0).await;
    assert_eq!(next_event(&mut feed).await.feed_cursor, 1);

    sqlx::query("COMMIT").execute(&mut writer_a).await.unwrap();
    timeout(DELIVERY_BOUND, writer_b).await.unwrap().unwrap();

    // The reader, holding cursor 1, gets A's event and then B's: nothing skipped.
    let next: Vec<u64> = [
        next_event(&mut feed).await.feed_cursor,
        next_event(&mut feed).await.feed_cursor,
    ]
    .into();
    assert_eq!(next, [cursor_a as u64, cursor_a as u64 + 1]);
}

#[tokio::test]
async fn signing_out_ends_the_sessions_streams() {
    let app = TestApp::spawn(crate::helpers::Engine::Sqlite).await;
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let mut citizen = app.citizen_with_token(&session.access_token).await;
    let id = file_one(&mut citizen, "req-signout-01").await;
    let mut stream = watch(&mut citizen, &id, 0).await;
    timeout(DELIVERY_BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    app.auth()
        .await
        .sign_out(pb::SignOutRequest {
            refresh_token: session.refresh_token,
        })
        .await
        .unwrap();
    // The signed-out token is refused now; another session of the same
    // citizen writes the event that finds the stream's session ended.
    let other = app.sign_in("alice", pb::Role::Citizen, "").await;
    let mut elsewhere = app
        .citizen_with_token(&other.session.unwrap().access_token)
        .await;
    withdraw(&mut elsewhere, &id).await;

    match timeout(DELIVERY_BOUND, stream.next()).await.unwrap() {
        Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}"),
        other => panic!("expected the stream to end, got {other:?}"),
    }
}
