use chrono::Duration;
use huying::domain::account::AccountId;
use huying::proto::v1 as pb;
use huying::store::CitizenQuery;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{TestApp, filing, on_both_engines};

on_both_engines!(
    each_bad_filing_names_its_field_and_writes_nothing,
    missing_expired_or_forged_tokens_are_unauthenticated
);

/// The field violations a refused call reported.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .expect("BadRequest details");
    bad_request
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn each_bad_filing_names_its_field_and_writes_nothing(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let session = app.sign_in("alice", pb::Role::Citizen, "").await;
    let account_id = AccountId(session.principal.unwrap().account_id.parse().unwrap());
    let mut citizen = app
        .citizen_with_token(&session.session.unwrap().access_token)
        .await;

    type Spoil = fn(&mut pb::FileComplaintRequest);
    let cases: Vec<(&str, Spoil)> = vec![
        ("text", |r| r.text = "   ".to_owned()),
        ("text", |r| r.text = "长".repeat(2001)),
        ("category_code", |r| r.category_code = "999999".to_owned()),
        ("category_code", |r| r.category_code = "050207".to_owned()),
        ("location.coordinates", |r| {
            // Beijing, far outside the district.
            let point = r.location.as_mut().unwrap().coordinates.as_mut().unwrap();
            point.latitude = 39.9;
            point.longitude = 116.4;
        }),
        ("location.coordinates.datum", |r| {
            r.location
                .as_mut()
                .unwrap()
                .coordinates
                .as_mut()
                .unwrap()
                .datum = 0;
        }),
        ("location", |r| r.location = None),
        ("contact_phone", |r| {
            r.contact_phone = "0755-1234".to_owned()
        }),
        ("request_id", |r| r.request_id = String::new()),
        ("kind", |r| r.kind = 0),
        ("channel", |r| r.channel = pb::Channel::Hotline.into()),
        ("photo_ids", |r| {
            r.photo_ids = (0..10).map(|i| format!("p{i}")).collect()
        }),
    ];

    for (i, (field, spoil)) in cases.into_iter().enumerate() {
        let mut request = filing(&format!("req-bad-{i:04}"));
        spoil(&mut request);
        let status = citizen.file_complaint(request).await.unwrap_err();
        let fields = violated_fields(&status);
        assert_eq!(fields, [field], "case {i}: {}", status.message());
    }

    let stored = app
        .store()
        .citizen_complaints(&CitizenQuery {
            citizen_id: account_id,
            status: None,
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "a refused filing was written: {stored:?}"
    );
}

async fn missing_expired_or_forged_tokens_are_unauthenticated(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let token = session.access_token;

    let mut anonymous =
        huying::proto::v1::citizen_service_client::CitizenServiceClient::with_interceptor(
            app.channel().await,
            crate::helpers::Bearer::none(),
        );
    let status = anonymous
        .file_complaint(filing("req-anon-0001"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let forged = format!("{token}x");
    let status = app
        .citizen_with_token(&forged)
        .await
        .file_complaint(filing("req-forged-01"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let mut citizen = app.citizen_with_token(&token).await;
    citizen
        .file_complaint(filing("req-fresh-001"))
        .await
        .expect("a fresh token works");
    app.clock.advance(Duration::minutes(16));
    let status = citizen
        .file_complaint(filing("req-stale-001"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
}
