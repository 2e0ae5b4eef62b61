//! Block lists: a blocked citizen, device or phone number cannot file (nor
//! a phone get sign-in codes) until the block ends or is lifted; every
//! change is audited; bad requests change nothing.

use chrono::Duration;
use huying::clock::Clock;
use huying::proto::v1 as pb;
use huying::proto::v1::abuse_service_client::AbuseServiceClient;
use huying::proto::v1::audit_service_client::AuditServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::citizen_world::{World, refusal};
use crate::helpers::{Bearer, CitizenClient, Engine, TestApp, filing, on_both_engines, rid};

type AbuseClient = AbuseServiceClient<InterceptedService<Channel, Bearer>>;

on_both_engines!(
    a_blocked_citizen_device_or_phone_cannot_file_until_the_block_ends,
    lifting_a_block_early_takes_effect_and_both_changes_are_audited,
    bad_block_requests_name_their_fields_and_change_nothing,
    a_retried_block_request_returns_the_first_block,
    a_blocked_phone_gets_no_sign_in_code,
);

impl TestApp {
    pub(crate) async fn security_admin(&self) -> AbuseClient {
        let session = self
            .sign_in("security-1", pb::Role::SecurityAdmin, "centre")
            .await;
        let token = session.session.unwrap().access_token;
        AbuseServiceClient::with_interceptor(self.channel().await, Bearer::new(&token))
    }

    /// A citizen client and the citizen's account id.
    pub(crate) async fn citizen_with_id(&self, subject: &str) -> (CitizenClient, String) {
        let session = self.sign_in(subject, pb::Role::Citizen, "").await;
        let id = session.principal.as_ref().unwrap().account_id.clone();
        let client = self
            .citizen_with_token(&session.session.unwrap().access_token)
            .await;
        (client, id)
    }
}

pub(crate) fn block_request(
    kind: pb::BlockKind,
    subject: &str,
    app: &TestApp,
    days: i64,
) -> pb::AddBlockRequest {
    let expires = app.clock.now() + Duration::days(days);
    pb::AddBlockRequest {
        request_id: rid(),
        kind: kind.into(),
        subject: subject.to_owned(),
        reason: "批量提交相似投诉骗取红包".to_owned(),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires.timestamp(),
            nanos: 0,
        }),
    }
}

async fn file(
    citizen: &mut CitizenClient,
    device: Option<&str>,
    request: pb::FileComplaintRequest,
) -> Result<pb::FileComplaintResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    if let Some(device) = device {
        request
            .metadata_mut()
            .insert("x-huying-device-id", device.parse().unwrap());
    }
    citizen
        .file_complaint(request)
        .await
        .map(|r| r.into_inner())
}

async fn my_complaint_count(citizen: &mut CitizenClient) -> usize {
    citizen
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .complaints
        .len()
}

fn assert_blocked(result: Result<pb::FileComplaintResponse, tonic::Status>, kind: &str) {
    let status = result.expect_err("a blocked filing is refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let (reason, metadata) = refusal(&status);
    assert_eq!(reason, "BLOCKED");
    assert_eq!(metadata["kind"], kind);
    assert!(metadata.contains_key("until"));
    assert!(
        !status.message().contains("红包"),
        "the internal reason stays internal: {}",
        status.message()
    );
}

async fn a_blocked_citizen_device_or_phone_cannot_file_until_the_block_ends(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.security_admin().await;
    let (mut alice, alice_id) = app.citizen_with_id("alice").await;
    let (mut bob, _) = app.citizen_with_id("bob").await;
    let (mut carol, _) = app.citizen_with_id("carol").await;
    for request in [
        block_request(pb::BlockKind::Citizen, &alice_id, &app, 7),
        block_request(pb::BlockKind::Device, "device-0042", &app, 30),
        block_request(pb::BlockKind::Phone, "13900001111", &app, 30),
    ] {
        admin.add_block(request).await.unwrap();
    }

    // Alice's account is blocked; Bob files freely but not from the blocked
    // device; Carol not with the blocked contact number.
    let by_alice = file(&mut alice, None, filing("req-block-alice-1")).await;
    let by_bob = file(&mut bob, Some("device-0007"), filing("req-block-bob-1")).await;
    let from_device = file(&mut bob, Some("device-0042"), filing("req-block-bob-2")).await;
    let mut with_phone = filing("req-block-carol-1");
    with_phone.contact_phone = "139 0000 1111".to_owned();
    let by_carol = file(&mut carol, None, with_phone).await;

    assert_blocked(by_alice, "citizen");
    assert!(by_bob.is_ok());
    assert_blocked(from_device, "device");
    assert_blocked(by_carol, "phone");
    assert_eq!(my_complaint_count(&mut alice).await, 0);
    assert_eq!(my_complaint_count(&mut bob).await, 1);
    assert_eq!(my_complaint_count(&mut carol).await, 0);

    // A week later Alice's block has run out; the others have not.
    app.clock.advance(Duration::days(7));
    let (mut alice, _) = app.citizen_with_id("alice").await;
    let (mut bob, _) = app.citizen_with_id("bob").await;
    let later = file(&mut alice, None, filing("req-block-alice-2")).await;
    let still = file(&mut bob, Some("device-0042"), filing("req-block-bob-3")).await;

    assert!(later.is_ok(), "{later:?}");
    assert_blocked(still, "device");
}

async fn lifting_a_block_early_takes_effect_and_both_changes_are_audited(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.security_admin().await;
    let (mut alice, alice_id) = app.citizen_with_id("alice").await;
    let block = admin
        .add_block(block_request(pb::BlockKind::Citizen, &alice_id, &app, 30))
        .await
        .unwrap()
        .into_inner();
    assert!(block.active);
    assert_blocked(
        file(&mut alice, None, filing("req-lift-1")).await,
        "citizen",
    );

    let lifted = admin
        .lift_block(pb::LiftBlockRequest {
            block_id: block.id.clone(),
            reason: "复核后确认为误封".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let filed = file(&mut alice, None, filing("req-lift-2")).await;
    let active = admin
        .list_blocks(pb::ListBlocksRequest {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    assert!(!lifted.active);
    assert_eq!(lifted.lift_reason, "复核后确认为误封");
    assert!(filed.is_ok(), "{filed:?}");
    assert!(active.blocks.is_empty());

    let session = app
        .sign_in("auditor-1", pb::Role::AuditAdmin, "centre")
        .await;
    let mut audit = AuditServiceClient::with_interceptor(
        app.channel().await,
        Bearer::new(&session.session.unwrap().access_token),
    );
    let records = audit
        .list_audit_records(pb::ListAuditRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    let actions: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.action.starts_with("abuse."))
        .map(|r| (r.action.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("abuse.block_lifted", "复核后确认为误封"),
            ("abuse.block_added", "批量提交相似投诉骗取红包"),
        ]
    );
}

async fn bad_block_requests_name_their_fields_and_change_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.security_admin().await;
    let past = app.clock.now() - Duration::hours(1);
    let cases = [
        (
            pb::AddBlockRequest {
                reason: "  ".to_owned(),
                ..block_request(pb::BlockKind::Phone, "13900001111", &app, 1)
            },
            "reason",
        ),
        (
            pb::AddBlockRequest {
                expires_at: Some(prost_types::Timestamp {
                    seconds: past.timestamp(),
                    nanos: 0,
                }),
                ..block_request(pb::BlockKind::Phone, "13900001111", &app, 1)
            },
            "expires_at",
        ),
        (
            block_request(pb::BlockKind::Citizen, "999999", &app, 1),
            "subject",
        ),
        (
            block_request(pb::BlockKind::Phone, "12345", &app, 1),
            "subject",
        ),
        (
            block_request(pb::BlockKind::Unspecified, "device-1", &app, 1),
            "kind",
        ),
    ];

    for (request, field) in cases {
        let status = admin.add_block(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("a BadRequest detail")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [field]);
    }
    let blocks = admin
        .list_blocks(pb::ListBlocksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(blocks.blocks.is_empty());
}

async fn a_retried_block_request_returns_the_first_block(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.security_admin().await;
    let request = block_request(pb::BlockKind::Device, "device-0042", &app, 3);

    let first = admin.add_block(request.clone()).await.unwrap().into_inner();
    let again = admin.add_block(request).await.unwrap().into_inner();
    let listed = admin
        .list_blocks(pb::ListBlocksRequest {
            kind: pb::BlockKind::Device.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(first.id, again.id);
    assert_eq!(listed.blocks.len(), 1);
    assert_eq!(listed.blocks[0].subject, "device-0042");
}

async fn a_blocked_phone_gets_no_sign_in_code(engine: Engine) {
    let world = World::spawn(engine).await;
    let mut admin = world.app.security_admin().await;
    let block = admin
        .add_block(block_request(
            pb::BlockKind::Phone,
            "13900001111",
            &world.app,
            1,
        ))
        .await
        .unwrap()
        .into_inner();

    let refused = world.request_code("13900001111").await.unwrap_err();
    let other = world.request_code("13900002222").await;

    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refusal(&refused).0, "BLOCKED");
    assert!(other.is_ok(), "{other:?}");
    assert_eq!(block.subject, "139****1111", "staff see the number masked");
    let phones: Vec<String> = world.sms.sent().into_iter().map(|sms| sms.phone).collect();
    assert_eq!(
        phones,
        ["+8613900002222"],
        "no text was paid for the blocked number"
    );
}
