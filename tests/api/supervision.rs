//! Reminders, overdue marks, escalation and automatic closing, driven by
//! the injected clock.

use chrono::Duration;
use huying::proto::v1 as pb;

use crate::helpers::{CaseClient, Engine, TestApp, file_one, get_case, on_both_engines, rid};

const MUNICIPAL: &str = "sd:pingshan/municipal";

on_both_engines!(an_unrated_resolution_closes_after_the_rating_window);

/// Files, accepts and dispatches a case to the municipal office; returns
/// its id. Accepted Thursday 10:00, due at the end of Wednesday 9 December.
async fn dispatched_case(app: &TestApp, dispatcher: &mut CaseClient) -> String {
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, &rid()).await;
    let case = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            lead_unit_id: MUNICIPAL.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .unwrap();
    id
}

async fn internal_events(dispatcher: &mut CaseClient, id: &str) -> Vec<(pb::EventKind, String)> {
    dispatcher
        .list_case_events(pb::ListCaseEventsRequest {
            complaint_id: id.to_owned(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| (e.event.as_ref().unwrap().kind(), e.unit_id))
        .collect()
}

fn count(events: &[(pb::EventKind, String)], kind: pb::EventKind) -> usize {
    events.iter().filter(|(k, _)| *k == kind).count()
}

#[tokio::test]
async fn two_replicas_fire_each_reminder_and_escalation_exactly_once() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let replica = app.replica().await;
    let mut dispatcher = app.dispatcher().await;
    let id = dispatched_case(&app, &mut dispatcher).await;

    // Both loops tick at the same moments, concurrently.
    let tick_both = || async {
        let now = huying::clock::Clock::now(app.clock.as_ref());
        let (a, b) = tokio::join!(app.supervise(), replica.supervise(now));
        (a, b.unwrap())
    };

    // Sunday: more than half of the 158 hours to the deadline are used.
    app.clock.advance(Duration::hours(80));
    tick_both().await;
    tick_both().await;
    let mut dispatcher = app.dispatcher().await;
    let events = internal_events(&mut dispatcher, &id).await;
    assert_eq!(count(&events, pb::EventKind::Reminder), 1, "{events:?}");

    // A day and a half past the deadline: overdue, urged up two levels.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-12-11T04:00:00Z")
            .unwrap()
            .into(),
    );
    tick_both().await;
    tick_both().await;
    let mut dispatcher = app.dispatcher().await;
    let events = internal_events(&mut dispatcher, &id).await;
    assert_eq!(
        count(&events, pb::EventKind::Reminder),
        1,
        "a reminder point passed after the deadline is not sent: {events:?}"
    );
    assert_eq!(count(&events, pb::EventKind::Overdue), 1, "{events:?}");
    let escalated: Vec<&str> = events
        .iter()
        .filter(|(k, _)| *k == pb::EventKind::Escalated)
        .map(|(_, unit)| unit.as_str())
        .collect();
    assert_eq!(escalated, ["sd:pingshan", "centre"]);

    let case = get_case(&mut dispatcher, &id).await;
    assert!(case.overdue);
    assert_eq!(case.escalation_level, 2);
    let _ = replica.stop().await;
}

async fn an_unrated_resolution_closes_after_the_rating_window(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let id = dispatched_case(&app, &mut dispatcher).await;
    let case = get_case(&mut municipal, &id).await;
    municipal
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            summary: "已清理".to_owned(),
        })
        .await
        .unwrap();

    app.clock.advance(Duration::days(6));
    assert_eq!(app.supervise().await.closed, 0);
    app.clock.advance(Duration::days(2));
    assert_eq!(app.supervise().await.closed, 1);
    assert_eq!(app.supervise().await.closed, 0, "closing happens once");

    let mut dispatcher = app.dispatcher().await;
    let case = get_case(&mut dispatcher, &id).await;
    assert_eq!(
        case.complaint.unwrap().status(),
        pb::ComplaintStatus::Closed
    );
}

#[tokio::test]
async fn loading_next_years_calendar_makes_provisional_deadlines_official() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2026-12-30T02:00:00Z")
            .unwrap()
            .into(),
    );
    let mut dispatcher = app.dispatcher().await;
    let id = dispatched_case(&app, &mut dispatcher).await;
    let before = get_case(&mut dispatcher, &id).await;
    assert!(
        before.deadline_provisional,
        "4 working days from 30 December reach into 2027"
    );

    let mut admin = app.directory("admin-1", pb::Role::SystemAdmin).await;
    let calendar = admin
        .load_calendar_year(pb::LoadCalendarYearRequest {
            year: 2027,
            off_days: vec!["2027-01-01".to_owned()],
            working_days: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(calendar.covered_until, "2027-12-31");

    let after = get_case(&mut dispatcher, &id).await;
    assert!(!after.deadline_provisional);
    // Thu 31, (Fri 1 off), Mon 4, Tue 5, Wed 6: one day later than before.
    let moved = after.complaint.unwrap().deadline.unwrap().seconds
        - before.complaint.unwrap().deadline.unwrap().seconds;
    assert_eq!(moved, 86_400);

    let mut handler = app.directory("handler-x", pb::Role::Handler).await;
    let denied = handler
        .load_calendar_year(pb::LoadCalendarYearRequest {
            year: 2028,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn administrators_maintain_the_directory_as_one_tree() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut admin = app.directory("admin-1", pb::Role::SystemAdmin).await;
    let contractor = pb::Unit {
        id: "contractor:quickfix".to_owned(),
        kind: pb::UnitKind::Contractor.into(),
        name_zh: "快修服务公司".to_owned(),
        name_en: "Quick-fix contractor".to_owned(),
        parent_id: "centre".to_owned(),
    };
    admin
        .save_unit(pb::SaveUnitRequest {
            unit: Some(contractor.clone()),
        })
        .await
        .unwrap();
    let units = admin
        .list_units(pb::ListUnitsRequest {})
        .await
        .unwrap()
        .into_inner()
        .units;
    assert!(units.iter().any(|u| u.id == "contractor:quickfix"));
    assert_eq!(units.len(), 86);

    // Staff of the new unit can sign in and receive cases.
    let mut dispatcher = app.dispatcher().await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, &rid()).await;
    let case = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id,
            expected_version: case.version,
            lead_unit_id: "contractor:quickfix".to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .expect("dispatch to the new contractor");

    let orphan = pb::Unit {
        id: "cm:nowhere".to_owned(),
        parent_id: "sd:atlantis".to_owned(),
        kind: pb::UnitKind::Community.into(),
        ..contractor
    };
    let refused = admin
        .save_unit(pb::SaveUnitRequest { unit: Some(orphan) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn administrators_move_staff_between_units() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let handler = app
        .sign_in("handler-move", pb::Role::Handler, "cm:heping")
        .await;
    let account_id = handler.principal.unwrap().account_id;
    let mut admin = app.directory("admin-1", pb::Role::SystemAdmin).await;

    let moved = admin
        .save_staff_member(pb::SaveStaffMemberRequest {
            account_id: account_id.clone(),
            role: pb::Role::UnitSupervisor.into(),
            unit_id: "sd:pingshan".to_owned(),
            display_name: "王主任".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (moved.role(), moved.unit_id.as_str()),
        (pb::Role::UnitSupervisor, "sd:pingshan")
    );

    let staff = admin
        .list_staff(pb::ListStaffRequest {
            unit_id: "sd:pingshan".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .staff;
    assert_eq!(
        staff.iter().map(|s| &s.account_id).collect::<Vec<_>>(),
        [&account_id]
    );

    let bad_unit = admin
        .save_staff_member(pb::SaveStaffMemberRequest {
            account_id,
            role: pb::Role::Handler.into(),
            unit_id: "sd:atlantis".to_owned(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_unit.code(), tonic::Code::InvalidArgument);
}
