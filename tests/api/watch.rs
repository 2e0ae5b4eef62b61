use std::time::Duration;

use chrono::Duration as Elapsed;
use huying::proto::v1 as pb;
use tokio::time::timeout;
use tokio_stream::StreamExt;

use crate::helpers::{TestApp, file_one, on_both_engines};

on_both_engines!(
    a_stream_delivers_an_event_written_after_it_opened,
    a_stream_resumes_after_a_sequence
);

/// Upper bound for an event already committed to arrive; never a wait for
/// time to pass.
const DELIVERY_BOUND: Duration = Duration::from_secs(10);

async fn a_stream_delivers_an_event_written_after_it_opened(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-watch-0001").await;

    let mut stream = citizen
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let received = timeout(DELIVERY_BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (received.sequence, received.kind()),
        (1, pb::EventKind::Received)
    );

    // The stream has caught up, so this event is written while it is open.
    app.clock.advance(Elapsed::minutes(5));
    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id.clone(),
            reason: "已自行解决".to_owned(),
        })
        .await
        .unwrap();

    let live = timeout(DELIVERY_BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(live.sequence, 2);
    assert_eq!(live.kind(), pb::EventKind::Withdrawn);
    assert_eq!(live.status(), pb::ComplaintStatus::Withdrawn);
    assert_eq!(live.complaint_id, id);
}

async fn a_stream_resumes_after_a_sequence(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-resume-001").await;
    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap();

    let mut stream = citizen
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id,
            after_sequence: 1,
        })
        .await
        .unwrap()
        .into_inner();

    let first = timeout(DELIVERY_BOUND, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.sequence, 2,
        "the event the client already had is not sent again"
    );
}

#[tokio::test]
async fn stopping_the_server_ends_open_streams() {
    let mut app = TestApp::spawn(crate::helpers::Engine::Sqlite).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-stop-00001").await;
    let mut stream = citizen
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id,
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
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
    let end = timeout(DELIVERY_BOUND, stream.next()).await.unwrap();
    assert!(
        !matches!(end, Some(Ok(_))),
        "no event after the server stopped: {end:?}"
    );
}
