use huying::clock::Clock;
use huying::domain::account::AccountId;
use huying::domain::complaint::{
    ComplaintChange, ComplaintId, ComplaintStatus, EventDraft, EventKind,
};
use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, file_one, on_both_engines};

on_both_engines!(
    a_resolved_complaint_is_rated_once_per_resolution,
    only_a_received_complaint_can_be_withdrawn
);

fn rate(id: &str, satisfaction: pb::Satisfaction) -> pb::RateComplaintRequest {
    pb::RateComplaintRequest {
        complaint_id: id.to_owned(),
        satisfaction: satisfaction.into(),
        comment: "处理及时".to_owned(),
    }
}

/// Until case handling lands, staff resolution is written through the store.
async fn resolve_through_store(app: &TestApp, id: &str) {
    let store = app.store();
    let id = ComplaintId(id.parse().unwrap());
    let complaint = store.complaint(id).await.unwrap().unwrap();
    let now = app.clock.now();
    let change = ComplaintChange {
        id,
        expected_version: complaint.version,
        status: ComplaintStatus::Resolved,
        status_reason: None,
        resolution_round: complaint.resolution_round + 1,
        rating: None,
        updated_at: now,
        event: EventDraft {
            kind: EventKind::Resolved,
            status: ComplaintStatus::Resolved,
            message: "已清理完毕".to_owned(),
            visible_to_citizen: true,
            actor_id: Some(AccountId(complaint.citizen_id.0)),
            occurred_at: now,
        },
    };
    store
        .apply_change(&change)
        .await
        .unwrap()
        .expect("the version matches");
}

async fn a_resolved_complaint_is_rated_once_per_resolution(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-rate-00001").await;

    let early = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Satisfied))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);

    resolve_through_store(&app, &id).await;
    let rated = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Satisfied))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rated.status(), pb::ComplaintStatus::Closed);
    let rating = rated.rating.clone().unwrap();
    assert_eq!(
        (rating.satisfaction(), rating.resolution_round),
        (pb::Satisfaction::Satisfied, 1)
    );
    assert_eq!(rated.last_sequence, 3);

    // A retry of the same rating is answered, and changes nothing.
    let retry = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Satisfied))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.last_sequence, 3);

    let changed_mind = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Unsatisfied))
        .await
        .unwrap_err();
    assert_eq!(changed_mind.code(), Code::FailedPrecondition);
}

async fn only_a_received_complaint_can_be_withdrawn(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-withdraw-01").await;
    resolve_through_store(&app, &id).await;

    let refused = citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let untouched = citizen
        .get_complaint(pb::GetComplaintRequest { complaint_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(untouched.status(), pb::ComplaintStatus::Resolved);
}
