use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, filing, on_both_engines};

on_both_engines!(my_complaints_come_newest_first_in_pages);

async fn my_complaints_come_newest_first_in_pages(engine: crate::helpers::Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut filed = Vec::new();
    for i in 0..5 {
        let response = citizen
            .file_complaint(filing(&format!("req-list-{i:04}")))
            .await
            .unwrap();
        filed.push(response.into_inner().complaint.unwrap().id);
    }
    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: filed[0].clone(),
            reason: String::new(),
        })
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = citizen
            .list_my_complaints(pb::ListMyComplaintsRequest {
                page_size: 2,
                page_token: page_token.clone(),
                status: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.complaints.len() <= 2);
        seen.extend(page.complaints.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let newest_first: Vec<String> = filed.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let withdrawn = citizen
        .list_my_complaints(pb::ListMyComplaintsRequest {
            page_size: 1000,
            page_token: String::new(),
            status: pb::ComplaintStatus::Withdrawn.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        withdrawn
            .complaints
            .iter()
            .map(|c| &c.id)
            .collect::<Vec<_>>(),
        [&filed[0]]
    );

    for bad in [
        pb::ListMyComplaintsRequest {
            page_size: -1,
            ..Default::default()
        },
        pb::ListMyComplaintsRequest {
            page_token: "not-a-token".to_owned(),
            ..Default::default()
        },
    ] {
        let status = citizen.list_my_complaints(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
