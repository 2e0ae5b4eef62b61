//! Instant answers (秒回) through the gRPC API: staff keep questions and
//! answers, a consultation is offered the ones that match as it is filed,
//! the citizen can close it with one, and what nothing answered is listed.

use chrono::Duration;
use huying::proto::v1 as pb;
use huying::proto::v1::knowledge_service_client::KnowledgeServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{
    Bearer, CitizenClient, Engine, TestApp, code_of, filing, on_both_engines, test_start,
};

on_both_engines!(
    a_consultation_is_answered_at_once_and_closed_by_the_citizen,
    consultations_nothing_answered_are_grouped_for_staff,
    bad_entries_are_refused_by_field,
);

type KnowledgeClient = KnowledgeServiceClient<InterceptedService<Channel, Bearer>>;

async fn editor(app: &TestApp) -> KnowledgeClient {
    let session = app
        .sign_in("kb-editor", pb::Role::Dispatcher, "centre")
        .await;
    let token = session.session.unwrap().access_token;
    KnowledgeServiceClient::with_interceptor(app.channel().await, Bearer::new(&token))
}

async fn save(client: &mut KnowledgeClient, question: &str, answer: &str) -> pb::KnowledgeEntry {
    client
        .save_answer(pb::SaveAnswerRequest {
            id: String::new(),
            question: question.to_owned(),
            answer: answer.to_owned(),
            category_code: String::new(),
        })
        .await
        .expect("saves an entry")
        .into_inner()
}

fn consultation(request_id: &str, text: &str) -> pb::FileComplaintRequest {
    pb::FileComplaintRequest {
        kind: pb::ComplaintKind::Consultation.into(),
        text: text.to_owned(),
        category_code: "010101".to_owned(),
        contact_phone: String::new(),
        ..filing(request_id)
    }
}

async fn ask(
    citizen: &mut CitizenClient,
    request_id: &str,
    text: &str,
) -> pb::FileComplaintResponse {
    citizen
        .file_complaint(consultation(request_id, text))
        .await
        .expect("files a consultation")
        .into_inner()
}

async fn a_consultation_is_answered_at_once_and_closed_by_the_citizen(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut kb = editor(&app).await;
    let refuse = save(
        &mut kb,
        "垃圾清运时间是几点",
        "生活垃圾每天早上6点和下午5点各清运一次。",
    )
    .await;
    let permit = save(
        &mut kb,
        "如何办理居住证",
        "携带身份证和租赁合同到所在社区工作站办理。",
    )
    .await;

    let mut citizen = app.citizen("alice").await;
    let filed = ask(
        &mut citizen,
        "req-ask-00001",
        "请问我们小区的垃圾一般几点清运？",
    )
    .await;
    let offered: Vec<&str> = filed
        .instant_answers
        .iter()
        .map(|a| a.answer_id.as_str())
        .collect();
    assert_eq!(offered, [refuse.id.as_str()], "only the matching entry");
    let answer = &filed.instant_answers[0];
    assert_eq!(answer.answer, refuse.answer);
    assert!(answer.score >= 0.5 && answer.score <= 1.0, "{answer:?}");
    let id = filed.complaint.unwrap().id;

    // A retry of the filing offers the same, even after the entries change.
    save(&mut kb, "垃圾几点清运", "另一条答复").await;
    let again = ask(
        &mut citizen,
        "req-ask-00001",
        "请问我们小区的垃圾一般几点清运？",
    )
    .await;
    assert!(again.replayed);
    assert_eq!(again.instant_answers, filed.instant_answers);

    // Only an offered answer can be taken, and only by the author.
    let not_offered = citizen
        .accept_instant_answer(pb::AcceptInstantAnswerRequest {
            complaint_id: id.clone(),
            answer_id: permit.id.clone(),
        })
        .await;
    assert_eq!(code_of(not_offered), Code::InvalidArgument);
    let mut bob = app.citizen("bob").await;
    let not_theirs = bob
        .accept_instant_answer(pb::AcceptInstantAnswerRequest {
            complaint_id: id.clone(),
            answer_id: refuse.id.clone(),
        })
        .await;
    assert_eq!(code_of(not_theirs), Code::NotFound);

    let take = pb::AcceptInstantAnswerRequest {
        complaint_id: id.clone(),
        answer_id: refuse.id.clone(),
    };
    let closed = citizen
        .accept_instant_answer(take.clone())
        .await
        .expect("takes the answer")
        .into_inner();
    assert_eq!(closed.status(), pb::ComplaintStatus::Closed);
    // Taking it again changes nothing.
    let retried = citizen
        .accept_instant_answer(take)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, closed);

    let entries = kb
        .list_answers(pb::ListAnswersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let counted = entries.iter().find(|e| e.id == refuse.id).unwrap();
    assert_eq!(counted.accepted_count, 1);

    // A complaint is not a consultation: it is offered nothing.
    let complaint = citizen
        .file_complaint(pb::FileComplaintRequest {
            text: "垃圾清运时间是几点？一直没人来清运，堆了很多垃圾。".to_owned(),
            ..filing("req-ask-00002")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(complaint.instant_answers.is_empty());

    // A retired entry is offered no more.
    kb.retire_answer(pb::RetireAnswerRequest {
        id: refuse.id.clone(),
    })
    .await
    .expect("retires");
    let later = ask(
        &mut citizen,
        "req-ask-00003",
        "请问我们小区的垃圾一般几点清运？",
    )
    .await;
    assert!(
        later
            .instant_answers
            .iter()
            .all(|a| a.answer_id != refuse.id),
        "{later:?}"
    );
}

async fn consultations_nothing_answered_are_grouped_for_staff(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut kb = editor(&app).await;
    save(
        &mut kb,
        "如何办理居住证",
        "携带身份证和租赁合同到所在社区工作站办理。",
    )
    .await;
    let mut citizen = app.citizen("alice").await;
    ask(
        &mut citizen,
        "req-hot-00001",
        "台风过后小区树木倒伏什么时候清理",
    )
    .await;
    ask(&mut citizen, "req-hot-00002", "燃气费怎么在网上缴纳").await;
    let mut bob = app.citizen("bob").await;
    ask(&mut bob, "req-hot-00003", "台风刮倒的树木什么时候清理").await;
    // Answered ones are not listed.
    ask(&mut bob, "req-hot-00004", "想问一下居住证在哪里办理").await;

    let groups = kb
        .list_unanswered_consultations(pb::ListUnansweredConsultationsRequest {
            from: Some(prost_types::Timestamp {
                seconds: (test_start() - Duration::hours(1)).timestamp(),
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: (test_start() + Duration::hours(1)).timestamp(),
                nanos: 0,
            }),
            limit: 0,
        })
        .await
        .expect("lists")
        .into_inner()
        .groups;
    let shape: Vec<(u64, bool)> = groups
        .iter()
        .map(|g| (g.count, g.sample_text.contains("树木")))
        .collect();
    assert_eq!(shape, [(2, true), (1, false)], "{groups:?}");

    let missing = kb
        .list_unanswered_consultations(pb::ListUnansweredConsultationsRequest::default())
        .await;
    assert_eq!(code_of(missing), Code::InvalidArgument);
}

async fn bad_entries_are_refused_by_field(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut kb = editor(&app).await;
    for (request, field) in [
        (
            pb::SaveAnswerRequest {
                question: "垃圾几点清运".to_owned(),
                ..Default::default()
            },
            "answer",
        ),
        (
            pb::SaveAnswerRequest {
                question: "？".to_owned(),
                answer: "答".to_owned(),
                ..Default::default()
            },
            "question",
        ),
        (
            pb::SaveAnswerRequest {
                question: "垃圾几点清运".to_owned(),
                answer: "早上6点".to_owned(),
                category_code: "99".to_owned(),
                ..Default::default()
            },
            "category_code",
        ),
    ] {
        let status = kb.save_answer(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(crate::validation::violated_fields(&status), [field]);
    }
    let unknown = kb
        .save_answer(pb::SaveAnswerRequest {
            id: "424242".to_owned(),
            question: "垃圾几点清运".to_owned(),
            answer: "早上6点".to_owned(),
            category_code: String::new(),
        })
        .await;
    assert_eq!(code_of(unknown), Code::NotFound);
    let listed = kb
        .list_answers(pb::ListAnswersRequest {
            include_retired: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.entries.is_empty(), "nothing was stored");

    // Citizens cannot edit the knowledge base.
    let session = app.sign_in("alice", pb::Role::Citizen, "").await;
    let token = session.session.unwrap().access_token;
    let mut citizen =
        KnowledgeServiceClient::with_interceptor(app.channel().await, Bearer::new(&token));
    let refused = citizen
        .save_answer(pb::SaveAnswerRequest {
            question: "垃圾几点清运".to_owned(),
            answer: "早上6点".to_owned(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(refused), Code::PermissionDenied);
}
