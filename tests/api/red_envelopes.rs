//! Red envelopes: granted with the acceptance for filing, at most one per
//! complaint, inside the caps and budgets, with a ledger that balances.

use huying::proto::v1 as pb;
use huying::proto::v1::reward_service_client::RewardServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::blocks::block_request;
use crate::helpers::{
    Bearer, CitizenClient, Engine, TestApp, file_one, filing, on_both_engines, rid,
};

on_both_engines!(
    an_accepted_mobile_complaint_earns_one_envelope_in_range,
    concurrent_acceptances_and_retries_grant_one_envelope,
    decisions_without_an_envelope_record_their_reason,
    a_blocked_authors_complaint_earns_nothing,
    a_merged_duplicate_loses_its_unpaid_envelope,
    a_fraudulent_complaints_envelope_is_withdrawn_with_an_audit_record,
    the_policy_is_validated_and_every_change_audited,
    unclaimed_envelopes_expire_and_their_money_returns,
);

on_both_engines!(the_budget_is_never_exceeded_by_concurrent_grants);

pub type RewardClient = RewardServiceClient<InterceptedService<Channel, Bearer>>;

pub async fn rewards_as(app: &TestApp, role: pb::Role) -> RewardClient {
    let session = app.sign_in("reward-staff", role, "centre").await;
    let token = session.session.unwrap().access_token;
    RewardServiceClient::with_interceptor(app.channel().await, Bearer::new(&token))
}

/// The reward decisions recorded for one complaint, as an auditor sees them.
async fn decisions_for(app: &TestApp, complaint_id: &str) -> Vec<pb::RedEnvelope> {
    rewards_as(app, pb::Role::Auditor)
        .await
        .list_red_envelopes(pb::ListRedEnvelopesRequest {
            complaint_id: complaint_id.to_owned(),
            ..Default::default()
        })
        .await
        .expect("an auditor lists envelopes")
        .into_inner()
        .envelopes
}

/// Asks the reconciliation RPC and fails the test unless everything
/// balances; returns the report.
pub async fn assert_ledger_balances(app: &TestApp) -> pb::ReconciliationReport {
    let mut auditor = rewards_as(app, pb::Role::Auditor).await;
    let report = auditor
        .get_reconciliation_report(pb::GetReconciliationReportRequest {})
        .await
        .expect("the auditor reads the report")
        .into_inner();
    assert!(report.balanced, "the ledger balances: {report:#?}");
    assert_eq!(
        report.budget_account_fen + report.owed_account_fen + report.paid_out_account_fen,
        0
    );
    report
}

pub use crate::helpers::accept;

pub async fn my_envelopes(citizen: &mut CitizenClient) -> Vec<pb::RedEnvelope> {
    citizen
        .list_my_red_envelopes(pb::ListMyRedEnvelopesRequest::default())
        .await
        .expect("lists envelopes")
        .into_inner()
        .envelopes
}

pub async fn set_policy(app: &TestApp, change: impl FnOnce(&mut pb::RewardPolicy)) {
    let mut manager = rewards_as(app, pb::Role::DistrictSupervisor).await;
    let mut policy = manager
        .get_reward_policy(pb::GetRewardPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    change(&mut policy);
    manager
        .update_reward_policy(pb::UpdateRewardPolicyRequest {
            policy: Some(policy),
            reason: "test set-up".to_owned(),
        })
        .await
        .expect("the policy is saved");
}

async fn an_accepted_mobile_complaint_earns_one_envelope_in_range(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let id = file_one(&mut citizen, "req-env-00001").await;
    assert!(my_envelopes(&mut citizen).await.is_empty(), "none before");

    accept(&mut dispatcher, &id).await;

    let envelopes = my_envelopes(&mut citizen).await;
    assert_eq!(envelopes.len(), 1);
    let envelope = &envelopes[0];
    assert_eq!(envelope.complaint_id, id);
    assert_eq!(envelope.state(), pb::RedEnvelopeState::Granted);
    assert!((100..=2000).contains(&envelope.amount_fen));
    assert_eq!(envelope.reason, "eligible");
    assert!(envelope.citizen_account_id.is_empty(), "staff-only field");
    let mut other = app.citizen("bob").await;
    assert!(my_envelopes(&mut other).await.is_empty(), "only one's own");

    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let totals = auditor
        .get_reward_totals(pb::GetRewardTotalsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let day = totals.day.unwrap();
    assert_eq!(day.period, "2026-12-03");
    assert_eq!(day.granted_count, 1);
    assert_eq!(day.granted_fen, envelope.amount_fen);
    assert_eq!(day.pending_fen, envelope.amount_fen);
    assert_eq!(day.budget_left_fen, 1_000_000 - envelope.amount_fen);
    assert_eq!(totals.month.unwrap().granted_fen, envelope.amount_fen);

    let report = assert_ledger_balances(&app).await;
    assert_eq!(report.entry_count, 1);
    assert_eq!(report.owed_account_fen, envelope.amount_fen);
}

async fn concurrent_acceptances_and_retries_grant_one_envelope(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-env-00002").await;
    let dispatcher = app.dispatcher().await;

    // 200 acceptances at once: half retry one request id, half are
    // separate requests of several dispatchers, all at version 1.
    let shared = rid();
    let mut calls = Vec::new();
    for i in 0..200 {
        let mut client = dispatcher.clone();
        let request_id = if i % 2 == 0 { shared.clone() } else { rid() };
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            client
                .accept_for_filing(pb::AcceptForFilingRequest {
                    request_id,
                    complaint_id: id,
                    expected_version: 1,
                })
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        }));
    }
    for call in calls {
        let result = call.await.unwrap();
        assert!(
            matches!(
                result,
                Ok(()) | Err(Code::Aborted | Code::FailedPrecondition)
            ),
            "{result:?}"
        );
    }

    let envelopes = my_envelopes(&mut citizen).await;
    assert_eq!(envelopes.len(), 1, "one envelope for one complaint");
    let report = assert_ledger_balances(&app).await;
    assert_eq!(report.entry_count, 1, "granted once");
}

async fn the_budget_is_never_exceeded_by_concurrent_grants(engine: Engine) {
    const BUDGET: i64 = 30_000;
    let app = TestApp::spawn_with(engine, |config| {
        config
            .rate_limits
            .apply("file.citizen=1000/1h,file.device=1000/1h")
            .expect("valid test limits");
    })
    .await;
    set_policy(&app, |policy| {
        policy.daily_budget_fen = BUDGET;
        policy.daily_cap_per_citizen = 1000;
        policy.monthly_cap_per_citizen = 1000;
    })
    .await;
    let mut citizens = Vec::new();
    for n in 0..4 {
        citizens.push(app.citizen(&format!("budget-{n}")).await);
    }
    let mut ids = Vec::new();
    for i in 0..240 {
        let citizen = &mut citizens[i % 4];
        ids.push(file_one(citizen, &format!("req-budget-{i:05}")).await);
    }

    // Every acceptance at once: their grants race for the same budget row.
    let dispatcher = app.dispatcher().await;
    let mut calls = Vec::new();
    for id in ids {
        let mut client = dispatcher.clone();
        calls.push(tokio::spawn(async move {
            client
                .accept_for_filing(pb::AcceptForFilingRequest {
                    request_id: rid(),
                    complaint_id: id,
                    expected_version: 1,
                })
                .await
                .expect("accepts");
        }));
    }
    for call in calls {
        call.await.unwrap();
    }

    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let day = auditor
        .get_reward_totals(pb::GetRewardTotalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .day
        .unwrap();
    assert!(
        day.granted_fen <= BUDGET,
        "{} over {BUDGET}",
        day.granted_fen
    );
    assert_eq!(day.budget_left_fen, BUDGET - day.granted_fen);
    // 240 envelopes of at least 1 yuan cannot all fit into 300 yuan.
    assert!(day.not_granted_count > 0);
    assert_eq!(day.granted_count + day.not_granted_count, 240);
    // The refusals say why; the largest envelope no longer fits.
    assert!(BUDGET - day.granted_fen < 2000);
    let refused = auditor
        .list_red_envelopes(pb::ListRedEnvelopesRequest {
            state: pb::RedEnvelopeState::NotGranted.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .envelopes;
    assert!(
        refused
            .iter()
            .all(|e| e.reason == "daily_budget_exhausted" && e.amount_fen == 0)
    );
    let report = assert_ledger_balances(&app).await;
    assert_eq!(-report.budget_account_fen, day.granted_fen);
}

async fn decisions_without_an_envelope_record_their_reason(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    set_policy(&app, |policy| policy.daily_cap_per_citizen = 1).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;

    // The second complaint of the day is over the citizen's cap.
    let first = file_one(&mut citizen, "req-cap-00001").await;
    let second = file_one(&mut citizen, "req-cap-00002").await;
    accept(&mut dispatcher, &first).await;
    accept(&mut dispatcher, &second).await;

    // A matter phoned in is not a mobile filing.
    let mut hotline = filing("req-hotline-1");
    hotline.channel = pb::Channel::Hotline.into();
    hotline.contact_phone = "13900000001".to_owned();
    let registered = dispatcher
        .register_case(pb::RegisterCaseRequest {
            request_id: rid(),
            complaint: Some(hotline),
        })
        .await
        .unwrap()
        .into_inner();
    let hotline_id = registered.complaint.unwrap().id;
    accept(&mut dispatcher, &hotline_id).await;

    let envelopes = my_envelopes(&mut citizen).await;
    let of = |id: &str| envelopes.iter().find(|e| e.complaint_id == id).unwrap();
    assert_eq!(of(&first).state(), pb::RedEnvelopeState::Granted);
    let capped = of(&second);
    assert_eq!(capped.state(), pb::RedEnvelopeState::NotGranted);
    assert_eq!(capped.reason, "daily_cap_reached");
    assert_eq!(capped.amount_fen, 0);
    assert!(capped.message.contains("上限"), "the citizen is told why");

    let listed = decisions_for(&app, &hotline_id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason, "not_mobile_channel");

    // Next day the cap starts again (with fresh sessions: tokens expire).
    app.clock.advance(chrono::Duration::days(1));
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let third = file_one(&mut citizen, "req-cap-00003").await;
    accept(&mut dispatcher, &third).await;
    let envelopes = my_envelopes(&mut citizen).await;
    let third = envelopes.iter().find(|e| e.complaint_id == third).unwrap();
    assert_eq!(third.state(), pb::RedEnvelopeState::Granted);
    assert_ledger_balances(&app).await;
}

async fn a_blocked_authors_complaint_earns_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (mut bob, bob_id) = app.citizen_with_id("bob").await;
    let mut dispatcher = app.dispatcher().await;
    let filed = file_one(&mut bob, "req-blocked-0001").await;
    // Blocked after filing, before the acceptance decides the grant.
    app.security_admin()
        .await
        .add_block(block_request(pb::BlockKind::Citizen, &bob_id, &app, 30))
        .await
        .expect("blocks");
    accept(&mut dispatcher, &filed).await;

    let listed = decisions_for(&app, &filed).await;
    assert_eq!(listed.len(), 1, "the decision is recorded");
    assert_eq!(listed[0].state(), pb::RedEnvelopeState::NotGranted);
    assert_eq!(listed[0].reason, "author_blocked");
    assert_eq!(listed[0].amount_fen, 0);
    assert_ledger_balances(&app).await;
}

async fn a_merged_duplicate_loses_its_unpaid_envelope(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let survivor = file_one(&mut citizen, "req-merge-0001").await;
    let duplicate = file_one(&mut citizen, "req-merge-0002").await;
    accept(&mut dispatcher, &survivor).await;
    let case = accept(&mut dispatcher, &duplicate).await;

    dispatcher
        .merge_case(pb::MergeCaseRequest {
            request_id: rid(),
            complaint_id: duplicate.clone(),
            expected_version: case.version,
            into_complaint_id: survivor.clone(),
        })
        .await
        .expect("merges");

    let envelopes = my_envelopes(&mut citizen).await;
    let merged = envelopes
        .iter()
        .find(|e| e.complaint_id == duplicate)
        .unwrap();
    assert_eq!(merged.state(), pb::RedEnvelopeState::Cancelled);
    assert_eq!(merged.reason, "merged_as_duplicate");
    let kept = envelopes
        .iter()
        .find(|e| e.complaint_id == survivor)
        .unwrap();
    assert_eq!(kept.state(), pb::RedEnvelopeState::Granted);

    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let day = auditor
        .get_reward_totals(pb::GetRewardTotalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .day
        .unwrap();
    assert_eq!(day.cancelled_fen, merged.amount_fen);
    assert_eq!(day.budget_left_fen, 1_000_000 - kept.amount_fen);
    let report = assert_ledger_balances(&app).await;
    assert_eq!(report.owed_account_fen, kept.amount_fen);
}

async fn a_fraudulent_complaints_envelope_is_withdrawn_with_an_audit_record(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let id = file_one(&mut citizen, "req-fraud-0001").await;
    accept(&mut dispatcher, &id).await;

    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let refused = auditor
        .withdraw_red_envelope(pb::WithdrawRedEnvelopeRequest {
            complaint_id: id.clone(),
            reason: "同一人多账号重复投诉".to_owned(),
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    let mut manager = rewards_as(&app, pb::Role::DistrictSupervisor).await;
    let blank = manager
        .withdraw_red_envelope(pb::WithdrawRedEnvelopeRequest {
            complaint_id: id.clone(),
            reason: " ".to_owned(),
        })
        .await;
    assert_eq!(blank.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(
        my_envelopes(&mut citizen).await[0].state(),
        pb::RedEnvelopeState::Granted,
        "a refused request changes nothing"
    );

    let withdrawn = manager
        .withdraw_red_envelope(pb::WithdrawRedEnvelopeRequest {
            complaint_id: id.clone(),
            reason: "同一人多账号重复投诉".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(withdrawn.cancelled);
    let envelope = withdrawn.envelope.unwrap();
    assert_eq!(envelope.state(), pb::RedEnvelopeState::Cancelled);
    assert!(envelope.reason.starts_with("fraudulent"));

    // Withdrawing again changes nothing more.
    let again = manager
        .withdraw_red_envelope(pb::WithdrawRedEnvelopeRequest {
            complaint_id: id.clone(),
            reason: "重复操作".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.cancelled);
    let report = assert_ledger_balances(&app).await;
    assert_eq!(report.entry_count, 2, "one grant, one release");

    let records = audit_records(&app, "reward.envelope_withdrawn").await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].target, format!("complaint:{id}"));
    assert_eq!(records[1].reason, "同一人多账号重复投诉");
}

async fn audit_records(app: &TestApp, action: &str) -> Vec<pb::AuditRecord> {
    let session = app
        .sign_in("audit-admin", pb::Role::AuditAdmin, "centre")
        .await;
    let token = session.session.unwrap().access_token;
    let mut client = huying::proto::v1::audit_service_client::AuditServiceClient::with_interceptor(
        app.channel().await,
        Bearer::new(&token),
    );
    client
        .list_audit_records(pb::ListAuditRecordsRequest {
            action: action.to_owned(),
            ..Default::default()
        })
        .await
        .expect("reads the audit log")
        .into_inner()
        .records
}

async fn the_policy_is_validated_and_every_change_audited(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut manager = rewards_as(&app, pb::Role::DistrictSupervisor).await;
    let before = manager
        .get_reward_policy(pb::GetRewardPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((before.min_amount_fen, before.max_amount_fen), (100, 2000));

    let bad = pb::RewardPolicy {
        min_amount_fen: 500,
        max_amount_fen: 200,
        claim_days: 0,
        ..before
    };
    let status = manager
        .update_reward_policy(pb::UpdateRewardPolicyRequest {
            policy: Some(bad),
            reason: "试一试".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_details_bad_request(&status).unwrap();
    let fields: Vec<_> = details
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["max_amount_fen", "claim_days"]);

    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let denied = auditor
        .update_reward_policy(pb::UpdateRewardPolicyRequest {
            policy: Some(before),
            reason: "审计员不能改".to_owned(),
        })
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    assert!(
        audit_records(&app, "reward.policy_changed")
            .await
            .is_empty()
    );

    let wanted = pb::RewardPolicy {
        min_amount_fen: 200,
        max_amount_fen: 200,
        ..before
    };
    manager
        .update_reward_policy(pb::UpdateRewardPolicyRequest {
            policy: Some(wanted),
            reason: "春节期间固定金额".to_owned(),
        })
        .await
        .unwrap();
    let records = audit_records(&app, "reward.policy_changed").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reason, "春节期间固定金额");
    assert!(records[0].detail.contains("range 200..=200"));

    // The next envelope follows the new range.
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let id = file_one(&mut citizen, "req-policy-001").await;
    accept(&mut dispatcher, &id).await;
    assert_eq!(my_envelopes(&mut citizen).await[0].amount_fen, 200);
    assert_ledger_balances(&app).await;
}

async fn unclaimed_envelopes_expire_and_their_money_returns(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    set_policy(&app, |policy| policy.claim_days = 2).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let id = file_one(&mut citizen, "req-expire-001").await;
    accept(&mut dispatcher, &id).await;
    let running = app.app.as_ref().unwrap();

    app.clock.advance(chrono::Duration::days(1));
    assert_eq!(running.reconcile_payouts().await.unwrap().expired, 0);
    app.clock.advance(chrono::Duration::days(1));
    assert_eq!(running.reconcile_payouts().await.unwrap().expired, 1);
    assert_eq!(running.reconcile_payouts().await.unwrap().expired, 0);

    let mut citizen = app.citizen("alice").await;
    let envelope = &my_envelopes(&mut citizen).await[0];
    assert_eq!(envelope.state(), pb::RedEnvelopeState::Expired);
    let mut auditor = rewards_as(&app, pb::Role::Auditor).await;
    let day = auditor
        .get_reward_totals(pb::GetRewardTotalsRequest {
            day: "2026-12-03".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .day
        .unwrap();
    assert_eq!(day.expired_fen, envelope.amount_fen);
    assert_eq!(day.budget_left_fen, 1_000_000);
    let report = assert_ledger_balances(&app).await;
    assert_eq!(report.owed_account_fen, 0);
}
