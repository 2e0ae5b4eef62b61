use huying::domain::complaint::ComplaintId;
use huying::proto::v1 as pb;

use crate::helpers::{TestApp, filing, on_both_engines};

on_both_engines!(
    filing_returns_a_tracking_number_and_a_received_timeline,
    a_retried_filing_returns_the_same_complaint,
    concurrent_retries_create_one_complaint,
    a_reused_request_id_with_other_content_is_refused,
);

async fn filing_returns_a_tracking_number_and_a_received_timeline(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;

    let response = citizen
        .file_complaint(filing("req-filing-0001"))
        .await
        .unwrap()
        .into_inner();
    let complaint = response.complaint.unwrap();

    assert!(!response.replayed);
    assert_eq!(complaint.status(), pb::ComplaintStatus::Received);
    assert_eq!(
        complaint.tracking_number,
        format!("HY20261203{:0>6}", complaint.id)
    );
    assert_eq!(complaint.contact_phone_masked, "138****5678");
    assert_eq!(complaint.last_sequence, 1);
    assert!(complaint.photo_ids.is_empty());

    // GCJ-02 input is stored as WGS-84: in Shenzhen the datum shifts points
    // south-east by a few hundred metres, so the stored point is north-west.
    let point = complaint.location.unwrap().coordinates.unwrap();
    assert_eq!(point.datum(), pb::Datum::Wgs84);
    assert!(
        (22.691..22.695).contains(&point.latitude),
        "{}",
        point.latitude
    );
    assert!(
        (114.337..114.343).contains(&point.longitude),
        "{}",
        point.longitude
    );

    let read = citizen
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: complaint.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.text, "坪山大道旁的垃圾堆了三天没人清理，气味很大。");
    assert_eq!(read.tracking_number, complaint.tracking_number);

    let id = ComplaintId(complaint.id.parse().unwrap());
    let timeline = app.store().events_after(id, 0, 10).await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].sequence, 1);
    assert_eq!(timeline[0].kind.as_str(), "received");
}

async fn a_retried_filing_returns_the_same_complaint(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;

    let first = citizen
        .file_complaint(filing("req-retry-0001"))
        .await
        .unwrap()
        .into_inner();
    let retry = citizen
        .file_complaint(filing("req-retry-0001"))
        .await
        .unwrap()
        .into_inner();

    assert!(!first.replayed);
    assert!(retry.replayed);
    assert_eq!(first.complaint.unwrap().id, retry.complaint.unwrap().id);
    let listed = citizen
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.complaints.len(), 1);
}

async fn concurrent_retries_create_one_complaint(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let citizen = app.citizen("alice").await;

    let attempts = (0..6).map(|_| {
        let mut client = citizen.clone();
        tokio::spawn(async move { client.file_complaint(filing("req-race-00001")).await })
    });
    let mut ids = Vec::new();
    for attempt in attempts {
        let response = attempt
            .await
            .unwrap()
            .expect("every attempt succeeds")
            .into_inner();
        ids.push(response.complaint.unwrap().id);
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "attempts created {ids:?}");
}

async fn a_reused_request_id_with_other_content_is_refused(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    citizen
        .file_complaint(filing("req-reuse-0001"))
        .await
        .unwrap();

    let mut different = filing("req-reuse-0001");
    different.text = "夜间施工噪音扰民，持续到凌晨两点。".to_owned();
    let status = citizen.file_complaint(different).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("request_id"),
        "{}",
        status.message()
    );
}

on_both_engines!(the_contact_phone_is_stored_encrypted);

async fn the_contact_phone_is_stored_encrypted(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id: i64 = citizen
        .file_complaint(filing("req-cipher-001"))
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id
        .parse()
        .unwrap();

    let stored: (Option<String>, Option<String>) = match engine {
        crate::helpers::Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
            sqlx::query_as(
                "SELECT contact_phone_cipher, contact_phone_masked FROM complaints WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
        crate::helpers::Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
            sqlx::query_as(
                "SELECT contact_phone_cipher, contact_phone_masked FROM complaints WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    let cipher = stored.0.expect("a ciphertext is stored");
    assert!(cipher.starts_with("v1:"), "the key version leads: {cipher}");
    assert!(!cipher.contains("12345678"));
    assert_eq!(stored.1.as_deref(), Some("138****5678"));
}
