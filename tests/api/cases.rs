//! The staff side of the closed loop, through the gRPC API.

use huying::proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::{
    CaseClient, Engine, TestApp, file_one, get_case, on_both_engines, only_events, rid,
};

const MUNICIPAL: &str = "sd:pingshan/municipal";
const WATER: &str = "dept:ps_water";
const COMMUNITY: &str = "cm:heping";

on_both_engines!(
    the_closed_loop_from_filing_to_a_satisfied_close,
    stale_versions_are_aborted_and_retries_act_once,
    illegal_transitions_are_refused_and_change_nothing,
    an_approved_extension_moves_the_deadline_the_citizen_sees,
    a_merged_complaint_follows_the_survivor_without_seeing_it,
    staff_register_a_hotline_call_for_a_citizen,
    a_probable_duplicate_is_shown_to_the_dispatcher,
    a_consultation_is_answered_and_closed_at_once,
    queues_show_a_units_cases_by_deadline_with_filters,
    hand_overs_follow_ups_and_refused_extensions_are_recorded,
);

async fn accept(dispatcher: &mut CaseClient, id: &str, version: u64) -> pb::Case {
    dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: version,
        })
        .await
        .expect("accepts")
        .into_inner()
}

async fn dispatch(
    dispatcher: &mut CaseClient,
    case: &pb::Case,
    lead: &str,
    co: &[&str],
) -> pb::Case {
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: case.complaint.as_ref().unwrap().id.clone(),
            expected_version: case.version,
            lead_unit_id: lead.to_owned(),
            co_unit_ids: co.iter().map(|u| u.to_string()).collect(),
        })
        .await
        .expect("dispatches")
        .into_inner()
}

/// Files a complaint, accepts it and dispatches it to `lead` alone.
async fn dispatched(
    citizen: &mut crate::helpers::CitizenClient,
    dispatcher: &mut CaseClient,
    request_id: &str,
    lead: &str,
) -> (String, pb::Case) {
    let id = file_one(citizen, request_id).await;
    let case = accept(dispatcher, &id, 1).await;
    let case = dispatch(dispatcher, &case, lead, &[]).await;
    (id, case)
}

async fn resolve(
    handler: &mut CaseClient,
    id: &str,
    summary: &str,
) -> Result<pb::Case, tonic::Status> {
    let case = get_case(handler, id).await;
    handler
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            summary: summary.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn the_closed_loop_from_filing_to_a_satisfied_close(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut water = app.handler(WATER).await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut community = app.handler(COMMUNITY).await;
    let id = file_one(&mut citizen, "req-loop-00001").await;

    // Accepted on Thursday 2026-12-03 10:00 in Shenzhen; category 010102
    // allows 4 working days: Fri 4, Mon 7, Tue 8, Wed 9 → end of Wed 9.
    let case = accept(&mut dispatcher, &id, 1).await;
    let deadline = case.complaint.as_ref().unwrap().deadline.unwrap();
    assert_eq!(deadline.seconds, chrono_seconds("2026-12-09T16:00:00Z"));
    assert_eq!(case.owner_unit_id, "centre");

    // Parallel dispatch with the wrong lead, which returns the case.
    let case = dispatch(&mut dispatcher, &case, WATER, &[MUNICIPAL]).await;
    assert_eq!(case.assignments.len(), 2);
    let returned = water
        .return_case(pb::ReturnCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            reason: "垃圾清运不属于供水部门职责".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        returned.complaint.as_ref().unwrap().status(),
        pb::ComplaintStatus::Accepted
    );

    // Re-dispatch: the municipal office leads, the community helps.
    let case = dispatch(&mut dispatcher, &returned, MUNICIPAL, &[COMMUNITY]).await;
    let early = resolve(&mut municipal, &id, "已清理").await.unwrap_err();
    assert_eq!(
        early.code(),
        Code::FailedPrecondition,
        "the co-unit has not reported"
    );
    community
        .report_part(pb::ReportPartRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            summary: "已通知物业配合".to_owned(),
        })
        .await
        .unwrap();
    let case = get_case(&mut municipal, &id).await;
    municipal
        .add_progress_note(pb::AddProgressNoteRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            note: "清运车辆已出发".to_owned(),
            visible_to_citizen: true,
        })
        .await
        .unwrap();
    let resolved = resolve(&mut municipal, &id, "垃圾已清运完毕")
        .await
        .unwrap();
    assert!(resolved.resolved_on_time);

    // Unsatisfied: back to the units with a new deadline, then resolved again.
    let reopened = citizen
        .rate_complaint(pb::RateComplaintRequest {
            complaint_id: id.clone(),
            satisfaction: pb::Satisfaction::Unsatisfied.into(),
            comment: "还有残留".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.status(), pb::ComplaintStatus::InProgress);
    assert_eq!(get_case(&mut municipal, &id).await.rework_round, 1);
    resolve(&mut municipal, &id, "残留垃圾已清理")
        .await
        .unwrap();
    let closed = citizen
        .rate_complaint(pb::RateComplaintRequest {
            complaint_id: id.clone(),
            satisfaction: pb::Satisfaction::Satisfied.into(),
            comment: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status(), pb::ComplaintStatus::Closed);
    assert_eq!(closed.resolution_round, 2);

    // The citizen saw every node, but not the internal return or report.
    let kinds = citizen
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<pb::EventKind> = only_events(kinds).take(9).map(|e| e.kind()).collect().await;
    use pb::EventKind::*;
    assert_eq!(
        kinds,
        [
            Received, Accepted, Dispatched, Dispatched, Progress, Resolved, Reopened, Resolved,
            Closed
        ]
    );

    // Staff see the internal events too, with the unit that returned.
    let events = dispatcher
        .list_case_events(pb::ListCaseEventsRequest {
            complaint_id: id,
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let returns: Vec<&str> = events
        .iter()
        .filter(|e| e.event.as_ref().unwrap().kind() == Returned)
        .map(|e| e.unit_id.as_str())
        .collect();
    assert_eq!(returns, [WATER]);
}

fn chrono_seconds(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp()
}

async fn stale_versions_are_aborted_and_retries_act_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut first = app.dispatcher().await;
    let mut second = app
        .staff("dispatcher-2", pb::Role::Dispatcher, "centre")
        .await;
    let id = file_one(&mut citizen, "req-stale-0001").await;
    let seen = get_case(&mut first, &id).await;

    let request = pb::AcceptForFilingRequest {
        request_id: "req-accept-once".to_owned(),
        complaint_id: id.clone(),
        expected_version: seen.version,
    };
    let accepted = first
        .accept_for_filing(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retried = first.accept_for_filing(request).await.unwrap().into_inner();
    assert_eq!(
        retried.version, accepted.version,
        "a retry does not act twice"
    );
    assert_eq!(
        retried.complaint.unwrap().last_sequence,
        accepted.complaint.as_ref().unwrap().last_sequence
    );

    // The second dispatcher still holds the old version.
    let stale = second
        .reject_complaint(pb::RejectComplaintRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: seen.version,
            reason: "重复诉求".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    let other = file_one(&mut citizen, "req-stale-0002").await;
    let reused = first
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: "req-accept-once".to_owned(),
            complaint_id: other,
            expected_version: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(get_case(&mut first, &id).await.version, accepted.version);
}

async fn illegal_transitions_are_refused_and_change_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut water = app.handler(WATER).await;

    let rejected_id = file_one(&mut citizen, "req-illegal-01").await;
    let rejected = dispatcher
        .reject_complaint(pb::RejectComplaintRequest {
            request_id: rid(),
            complaint_id: rejected_id.clone(),
            expected_version: 1,
            reason: "不属于本区管辖".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rejected.complaint.as_ref().unwrap().status_reason,
        "不属于本区管辖"
    );
    let status = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: rejected_id.clone(),
            expected_version: rejected.version,
            lead_unit_id: MUNICIPAL.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "dispatching a rejected case"
    );

    let (id, case) = dispatched(&mut citizen, &mut dispatcher, "req-illegal-02", MUNICIPAL).await;
    let status = water
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            summary: "不是我们的".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "another unit's case");
    let rate = citizen
        .rate_complaint(pb::RateComplaintRequest {
            complaint_id: id.clone(),
            satisfaction: pb::Satisfaction::Satisfied.into(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        rate.code(),
        Code::FailedPrecondition,
        "rating an unresolved case"
    );
    let empty_reason = dispatcher
        .reject_complaint(pb::RejectComplaintRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            reason: " ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(empty_reason.code(), Code::InvalidArgument);
    let unknown_unit = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            lead_unit_id: "dept:nowhere".to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(
        unknown_unit.code(),
        Code::InvalidArgument | Code::FailedPrecondition
    ));

    let unchanged = get_case(&mut municipal, &id).await;
    assert_eq!(unchanged.version, case.version);
    assert_eq!(
        unchanged.complaint.unwrap().status(),
        pb::ComplaintStatus::Dispatched
    );
}

async fn an_approved_extension_moves_the_deadline_the_citizen_sees(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut supervisor = app
        .staff("sup-pingshan", pb::Role::UnitSupervisor, "sd:pingshan")
        .await;
    let (id, case) = dispatched(&mut citizen, &mut dispatcher, "req-extend-001", MUNICIPAL).await;
    let old_deadline = case.complaint.as_ref().unwrap().deadline.unwrap();

    let until = prost_types::Timestamp {
        seconds: old_deadline.seconds + 3 * 86_400,
        nanos: 0,
    };
    let asked = municipal
        .request_extension(pb::RequestExtensionRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            until: Some(until),
            reason: "需协调产权单位".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(asked.pending_extension.is_some());

    let approved = supervisor
        .decide_extension(pb::DecideExtensionRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: asked.version,
            approve: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(approved.pending_extension.is_none());

    let seen = citizen
        .get_complaint(pb::GetComplaintRequest { complaint_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.deadline.unwrap().seconds, until.seconds);
}

async fn a_merged_complaint_follows_the_survivor_without_seeing_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut alice = app.citizen("alice").await;
    let mut bob = app.citizen("bob").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let survivor = file_one(&mut alice, "req-merge-0001").await;
    let duplicate = file_one(&mut bob, "req-merge-0002").await;

    let case = accept(&mut dispatcher, &survivor, 1).await;
    dispatch(&mut dispatcher, &case, MUNICIPAL, &[]).await;
    let merged = dispatcher
        .merge_case(pb::MergeCaseRequest {
            request_id: rid(),
            complaint_id: duplicate.clone(),
            expected_version: 1,
            into_complaint_id: survivor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.merged_into, survivor);

    resolve(&mut municipal, &survivor, "垃圾已清运完毕")
        .await
        .unwrap();

    let bobs = bob
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: duplicate.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bobs.status(), pb::ComplaintStatus::Resolved);
    let bobs_stream = bob
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: duplicate,
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let bobs_timeline: Vec<pb::ComplaintEvent> = only_events(bobs_stream).take(3).collect().await;
    let kinds: Vec<_> = bobs_timeline.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            pb::EventKind::Received,
            pb::EventKind::Merged,
            pb::EventKind::Resolved
        ]
    );
    assert!(
        bobs_timeline.iter().all(|e| e.complaint_id != survivor),
        "only Bob's own ids"
    );

    let denied = bob
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: survivor,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::NotFound);
}

async fn staff_register_a_hotline_call_for_a_citizen(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut dispatcher = app.dispatcher().await;
    let mut call = crate::helpers::filing("ignored-0001");
    call.channel = pb::Channel::Hotline.into();
    call.request_id = String::new();

    let request = pb::RegisterCaseRequest {
        request_id: "req-hotline-01".to_owned(),
        complaint: Some(call.clone()),
    };
    let case = dispatcher
        .register_case(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = dispatcher
        .register_case(request)
        .await
        .unwrap()
        .into_inner();
    let complaint = case.complaint.unwrap();
    assert_eq!(complaint.channel(), pb::Channel::Hotline);
    assert_eq!(case.owner_unit_id, "centre");
    assert_eq!(
        again.complaint.unwrap().id,
        complaint.id,
        "a retried registration"
    );

    call.channel = pb::Channel::MiniProgram.into();
    let status = dispatcher
        .register_case(pb::RegisterCaseRequest {
            request_id: "req-hotline-02".to_owned(),
            complaint: Some(call),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn a_probable_duplicate_is_shown_to_the_dispatcher(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut alice = app.citizen("alice").await;
    let mut bob = app.citizen("bob").await;
    let mut carol = app.citizen("carol").await;
    let mut dispatcher = app.dispatcher().await;
    let first = file_one(&mut alice, "req-dup-000001").await;

    // Bob reports the same pile from a few metres away.
    let mut same_place = crate::helpers::filing("req-dup-000002");
    same_place.location.as_mut().unwrap().address = String::new();
    same_place
        .location
        .as_mut()
        .unwrap()
        .coordinates
        .as_mut()
        .unwrap()
        .latitude += 0.0003;
    let second = bob
        .file_complaint(same_place)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;
    // Elsewhere in the district, another category, another matter.
    let mut elsewhere = crate::helpers::filing("req-dup-000003");
    elsewhere.category_code = "010104".to_owned();
    elsewhere.text = "碧岭社区公园的路灯坏了好几盏，晚上很黑。".to_owned();
    let place = elsewhere.location.as_mut().unwrap();
    place.address = "碧岭街道碧岭社区公园".to_owned();
    place.coordinates.as_mut().unwrap().latitude += 0.02;
    let third = carol
        .file_complaint(elsewhere)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;
    // Bob repeats his report in his own words, in another category and
    // only roughly placed.
    let mut repeated = crate::helpers::filing("req-dup-000004");
    repeated.category_code = "010104".to_owned();
    repeated.text = "坪山大道旁边的垃圾堆了三天了没人清理，气味很大！".to_owned();
    repeated.location = Some(pb::Location {
        address: "坪山区".to_owned(),
        coordinates: None,
    });
    let fourth = bob
        .file_complaint(repeated)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;

    assert_eq!(
        get_case(&mut dispatcher, &second)
            .await
            .probable_duplicate_of,
        first
    );
    assert_eq!(
        get_case(&mut dispatcher, &third)
            .await
            .probable_duplicate_of,
        ""
    );
    assert_eq!(
        get_case(&mut dispatcher, &fourth)
            .await
            .probable_duplicate_of,
        second,
        "the author's own report, newest among equally similar ones"
    );
    assert_eq!(
        get_case(&mut dispatcher, &first)
            .await
            .probable_duplicate_of,
        ""
    );
}

async fn a_consultation_is_answered_and_closed_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut question = crate::helpers::filing("req-question-1");
    question.kind = pb::ComplaintKind::Consultation.into();
    question.text = "垃圾分类投放的时间是几点到几点？".to_owned();
    let id = citizen
        .file_complaint(question)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;

    let answered = dispatcher
        .answer_consultation(pb::AnswerConsultationRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: 1,
            answer: "每天7:00-9:00和19:00-21:00。".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answered.complaint.unwrap().status(),
        pb::ComplaintStatus::Closed
    );

    let complaint = file_one(&mut citizen, "req-question-2").await;
    let refused = dispatcher
        .answer_consultation(pb::AnswerConsultationRequest {
            request_id: rid(),
            complaint_id: complaint,
            expected_version: 1,
            answer: "不适用".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::FailedPrecondition,
        "only consultations are answered"
    );
}

async fn queues_show_a_units_cases_by_deadline_with_filters(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;

    // Three cases for the municipal office with different limits, one for water.
    let mut ids = Vec::new();
    for (i, (category, lead)) in [
        ("010102", MUNICIPAL),
        ("010101", MUNICIPAL),
        ("010102", WATER),
        ("010102", MUNICIPAL),
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = crate::helpers::filing(&format!("req-queue-{i:04}"));
        request.category_code = category.to_owned();
        // Far enough apart not to look like duplicates.
        request
            .location
            .as_mut()
            .unwrap()
            .coordinates
            .as_mut()
            .unwrap()
            .latitude += 0.01 * i as f64;
        request.location.as_mut().unwrap().address = format!("坪山大道{i}号");
        let id = citizen
            .file_complaint(request)
            .await
            .unwrap()
            .into_inner()
            .complaint
            .unwrap()
            .id;
        let case = accept(&mut dispatcher, &id, 1).await;
        dispatch(&mut dispatcher, &case, lead, &[]).await;
        ids.push(id);
        app.clock.advance(chrono::Duration::minutes(1));
    }

    let mut municipal = app.handler(MUNICIPAL).await;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = municipal
            .list_queue(pb::ListQueueRequest {
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.cases.into_iter().map(|c| c.complaint.unwrap().id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // 010101 is due within working hours, so it comes first; water's is not listed.
    assert_eq!(seen, [ids[1].clone(), ids[0].clone(), ids[3].clone()]);

    let due_soon = municipal
        .list_queue(pb::ListQueueRequest {
            due_within_hours: 24,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(due_soon.cases.len(), 1);
    let by_category = municipal
        .list_queue(pb::ListQueueRequest {
            category_code: "010102".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_category.cases.len(), 2);
    let overdue = municipal
        .list_queue(pb::ListQueueRequest {
            overdue_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(overdue.cases.is_empty());

    // The dispatcher sees all four.
    let all = dispatcher
        .list_queue(pb::ListQueueRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.cases.len(), 4);
}

async fn hand_overs_follow_ups_and_refused_extensions_are_recorded(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut supervisor = app
        .staff("sup-district", pb::Role::DistrictSupervisor, "centre")
        .await;
    let (id, case) = dispatched(&mut citizen, &mut dispatcher, "req-handover-1", MUNICIPAL).await;

    let handed = dispatcher
        .hand_over_case(pb::HandOverCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            to_unit_id: "sd:pingshan".to_owned(),
            reason: "街道统筹处置".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(handed.owner_unit_id, "sd:pingshan");

    let deadline = handed.complaint.as_ref().unwrap().deadline.unwrap();
    let asked = municipal
        .request_extension(pb::RequestExtensionRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: handed.version,
            until: Some(prost_types::Timestamp {
                seconds: deadline.seconds + 86_400,
                nanos: 0,
            }),
            reason: "等待材料".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let refused = supervisor
        .decide_extension(pb::DecideExtensionRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: asked.version,
            approve: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(refused.pending_extension.is_none());
    assert_eq!(
        refused.complaint.as_ref().unwrap().deadline.unwrap(),
        deadline
    );

    let followed = dispatcher
        .record_follow_up(pb::RecordFollowUpRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: refused.version,
            outcome: "电话回访：市民确认已在处理".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();

    let events = dispatcher
        .list_case_events(pb::ListCaseEventsRequest {
            complaint_id: id,
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let last: Vec<(pb::EventKind, bool)> = events[events.len() - 4..]
        .iter()
        .map(|e| (e.event.as_ref().unwrap().kind(), e.visible_to_citizen))
        .collect();
    use pb::EventKind::*;
    assert_eq!(
        last,
        [
            (HandedOver, false),
            (ExtensionRequested, false),
            (ExtensionRefused, false),
            (FollowUp, false)
        ]
    );
    assert!(
        events
            .iter()
            .skip(1)
            .all(|e| !e.actor_account_id.is_empty()),
        "every staff action records who did it"
    );
    assert_eq!(followed.version, refused.version + 1);
}

on_both_engines!(a_units_queue_is_live_and_cases_leave_it_when_sent_elsewhere);

async fn next_queue_item(
    stream: &mut tonic::Streaming<pb::WatchQueueResponse>,
) -> pb::watch_queue_response::Item {
    loop {
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("a queue item in time"))
            .expect("the queue stream is open")
            .expect("no error")
            .item
            .unwrap();
        if !matches!(item, pb::watch_queue_response::Item::Heartbeat(_)) {
            return item;
        }
    }
}

async fn a_units_queue_is_live_and_cases_leave_it_when_sent_elsewhere(engine: Engine) {
    use pb::watch_queue_response::Item;

    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut queue = municipal
        .watch_queue(pb::WatchQueueRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_queue_item(&mut queue).await,
        Item::SnapshotComplete(pb::SnapshotComplete { cases: 0 })
    );

    let (id, case) = dispatched(&mut citizen, &mut dispatcher, "req-queue-live1", MUNICIPAL).await;
    let Item::Upsert(entered) = next_queue_item(&mut queue).await else {
        panic!("the dispatched case enters the queue");
    };
    assert_eq!(
        (entered.complaint.unwrap().id, entered.version),
        (id.clone(), case.version)
    );

    let returned = municipal
        .return_case(pb::ReturnCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            reason: "不属于本单位".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    dispatch(&mut dispatcher, &returned, WATER, &[]).await;
    // The return itself may arrive as a change first; then the case leaves.
    loop {
        match next_queue_item(&mut queue).await {
            Item::RemovedComplaintId(removed) => {
                assert_eq!(removed, id);
                break;
            }
            Item::Upsert(changed) => assert_eq!(changed.complaint.unwrap().id, id),
            other => panic!("unexpected {other:?}"),
        }
    }
}
