use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, code_of, filing, on_both_engines};

on_both_engines!(another_citizen_cannot_see_or_touch_my_complaint);

async fn another_citizen_cannot_see_or_touch_my_complaint(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut alice = app.citizen("alice").await;
    let mut mallory = app.citizen("mallory").await;
    let complaint = alice
        .file_complaint(filing("req-private-01"))
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap();
    let id = complaint.id.clone();

    let get = mallory
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: id.clone(),
        })
        .await;
    let withdraw = mallory
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id.clone(),
            reason: String::new(),
        })
        .await;
    let rate = mallory
        .rate_complaint(pb::RateComplaintRequest {
            complaint_id: id.clone(),
            satisfaction: pb::Satisfaction::Satisfied.into(),
            comment: String::new(),
        })
        .await;
    let watch = mallory
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await;
    let missing = mallory
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: "999999".to_owned(),
        })
        .await
        .unwrap_err();

    // Someone else's complaint looks exactly like one that does not exist.
    assert_eq!(code_of(get.map(|_| ())), Code::NotFound);
    assert_eq!(code_of(withdraw.map(|_| ())), Code::NotFound);
    assert_eq!(code_of(rate.map(|_| ())), Code::NotFound);
    assert_eq!(code_of(watch.map(|_| ())), Code::NotFound);
    assert_eq!(missing.code(), Code::NotFound);

    let theirs = mallory
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.complaints.is_empty());

    // Alice's complaint is untouched.
    let mine = alice
        .get_complaint(pb::GetComplaintRequest { complaint_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.status(), pb::ComplaintStatus::Received);
    assert_eq!(mine.last_sequence, 1);
}
