use std::time::Duration;

use chrono::Duration as Elapsed;
use huying::limiter::Quota;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, filing, on_both_engines};

// On PostgreSQL the limiter is Redis; on SQLite it is in-process.
on_both_engines!(filing_is_limited_per_citizen_and_retries_still_answer);

async fn filing_is_limited_per_citizen_and_retries_still_answer(engine: crate::helpers::Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.filing_quota = Quota {
            burst: 2,
            period: Duration::from_secs(60),
        };
    })
    .await;
    let mut alice = app.citizen("alice").await;
    let mut bob = app.citizen("bob").await;

    alice
        .file_complaint(filing("req-limit-0001"))
        .await
        .unwrap();
    alice
        .file_complaint(filing("req-limit-0002"))
        .await
        .unwrap();
    let limited = alice
        .file_complaint(filing("req-limit-0003"))
        .await
        .unwrap_err();

    assert_eq!(limited.code(), Code::ResourceExhausted);
    let retry_info = limited.get_details_retry_info().expect("RetryInfo details");
    assert_eq!(retry_info.retry_delay, Some(Duration::from_secs(30)));

    // A retry of a filed request is answered even while limited.
    let replay = alice
        .file_complaint(filing("req-limit-0001"))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.replayed);

    // The limit is per citizen.
    bob.file_complaint(filing("req-limit-bob1")).await.unwrap();

    app.clock.advance(Elapsed::seconds(30));
    alice
        .file_complaint(filing("req-limit-0003"))
        .await
        .expect("allowed again after the wait");
}
