use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, file_one, on_both_engines, resolve_through_staff};

const MUNICIPAL: &str = "sd:pingshan/municipal";

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

async fn a_resolved_complaint_is_rated_once_per_resolution(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-rate-00001").await;

    let early = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Satisfied))
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);

    resolve_through_staff(&app, &id, MUNICIPAL).await;
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
    assert_eq!(rated.last_sequence, 5);

    // A retry of the same rating is answered, and changes nothing.
    let retry = citizen
        .rate_complaint(rate(&id, pb::Satisfaction::Satisfied))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.last_sequence, 5);

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
    resolve_through_staff(&app, &id, MUNICIPAL).await;

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
