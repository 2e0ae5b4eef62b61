//! The audit log: privileged actions and reveals of a reporter's phone are
//! recorded with who, when and why; only the audit administrator reads the
//! log; the database refuses every change to it and every deletion inside
//! the six-month floor.

use chrono::{Duration, Utc};
use huying::clock::Clock;
use huying::proto::v1 as pb;
use huying::proto::v1::audit_service_client::AuditServiceClient;
use sqlx::Connection;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{
    Bearer, CaseClient, Engine, TestApp, code_of, file_one, get_case, on_both_engines, rid,
};
use crate::staff_accounts::create;

type AuditClient = AuditServiceClient<InterceptedService<Channel, Bearer>>;

const MUNICIPAL: &str = "sd:pingshan/municipal";

on_both_engines!(
    a_revealed_phone_is_logged_with_who_and_why_for_the_audit_admin_only,
    privileged_actions_are_logged_and_listed_with_filters_and_pages,
    nobody_can_change_or_delete_the_log_through_the_database,
    a_purge_removes_only_what_is_past_retention_and_the_floor,
);

impl TestApp {
    async fn audit_log(&self, role: pb::Role) -> AuditClient {
        let unit = if role == pb::Role::Citizen {
            ""
        } else {
            "centre"
        };
        let subject = format!("audit-{}", role.as_str_name());
        let session = self.sign_in(&subject, role, unit).await;
        let token = session.session.unwrap().access_token;
        AuditServiceClient::with_interceptor(self.channel().await, Bearer::new(&token))
    }

    /// A staff client and its account id.
    async fn staff_with_id(
        &self,
        subject: &str,
        role: pb::Role,
        unit: &str,
    ) -> (CaseClient, String) {
        let session = self.sign_in(subject, role, unit).await;
        let client = huying::proto::v1::case_service_client::CaseServiceClient::with_interceptor(
            self.channel().await,
            Bearer::new(&session.session.unwrap().access_token),
        );
        (client, session.principal.unwrap().account_id)
    }
}

async fn records(
    log: &mut AuditClient,
    request: pb::ListAuditRecordsRequest,
) -> Vec<pb::AuditRecord> {
    log.list_audit_records(request)
        .await
        .expect("lists the audit log")
        .into_inner()
        .records
}

fn of_action(action: &str) -> pb::ListAuditRecordsRequest {
    pb::ListAuditRecordsRequest {
        action: action.to_owned(),
        ..Default::default()
    }
}

/// Files the standard complaint (phone 13812345678) and dispatches it to
/// the municipal office of Pingshan subdistrict.
async fn dispatched_complaint(app: &TestApp) -> String {
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
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

fn reveal(id: &str, reason: &str) -> pb::RevealReporterContactRequest {
    pb::RevealReporterContactRequest {
        complaint_id: id.to_owned(),
        reason: reason.to_owned(),
    }
}

async fn a_revealed_phone_is_logged_with_who_and_why_for_the_audit_admin_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = dispatched_complaint(&app).await;
    let (mut supervisor, supervisor_id) = app
        .staff_with_id("sup-pingshan", pb::Role::UnitSupervisor, "sd:pingshan")
        .await;

    let case = get_case(&mut supervisor, &id).await;
    assert_eq!(case.complaint.unwrap().contact_phone_masked, "138****5678");

    let unexplained = supervisor.reveal_reporter_contact(reveal(&id, "  ")).await;
    let status = unexplained.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["reason"]);

    let revealed = supervisor
        .reveal_reporter_contact(reveal(&id, "电话回访核实处理结果"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revealed.contact_phone, "13812345678");

    // Out of reach, or not a supervisor: nothing shown, nothing logged.
    let (mut elsewhere, _) = app
        .staff_with_id("sup-maluan", pb::Role::UnitSupervisor, "sd:maluan")
        .await;
    let out_of_reach = elsewhere
        .reveal_reporter_contact(reveal(&id, "想看看"))
        .await;
    assert_eq!(code_of(out_of_reach), Code::NotFound);
    let mut handler = app.handler(MUNICIPAL).await;
    let not_a_supervisor = handler.reveal_reporter_contact(reveal(&id, "回访")).await;
    assert_eq!(code_of(not_a_supervisor), Code::PermissionDenied);

    let (mut district, district_id) = app
        .staff_with_id("sup-district", pb::Role::DistrictSupervisor, "centre")
        .await;
    district
        .reveal_reporter_contact(reveal(&id, "督办约谈"))
        .await
        .unwrap();

    let mut log = app.audit_log(pb::Role::AuditAdmin).await;
    let reveals = records(&mut log, of_action("case.contact_revealed")).await;
    let who_why: Vec<(&str, &str, &str, &str)> = reveals
        .iter()
        .map(|r| {
            (
                r.actor_account_id.as_str(),
                r.actor_role.as_str(),
                r.actor_unit_id.as_str(),
                r.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        who_why,
        [
            (
                district_id.as_str(),
                "district_supervisor",
                "centre",
                "督办约谈"
            ),
            (
                supervisor_id.as_str(),
                "unit_supervisor",
                "sd:pingshan",
                "电话回访核实处理结果"
            ),
        ]
    );
    assert!(
        reveals
            .iter()
            .all(|r| r.target == format!("complaint:{id}"))
    );
    assert!(reveals.iter().all(|r| r.occurred_at.is_some()));
    // The number itself is in no record.
    assert!(
        reveals
            .iter()
            .all(|r| !format!("{r:?}").contains("12345678"))
    );

    for role in [
        pb::Role::SystemAdmin,
        pb::Role::SecurityAdmin,
        pb::Role::Auditor,
        pb::Role::UnitSupervisor,
        pb::Role::Citizen,
    ] {
        let mut other = app.audit_log(role).await;
        let refused = other
            .list_audit_records(pb::ListAuditRecordsRequest::default())
            .await;
        assert_eq!(code_of(refused), Code::PermissionDenied, "{role:?}");
    }
}

async fn privileged_actions_are_logged_and_listed_with_filters_and_pages(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let session = app.sign_in("root", pb::Role::SystemAdmin, "centre").await;
    let admin_id = session.principal.unwrap().account_id;
    let mut directory = app.directory("root", pb::Role::SystemAdmin).await;
    let mut accounts = app.staff_accounts("root", pb::Role::SystemAdmin).await;

    let created = create(&mut accounts, "ma.li", pb::Role::Handler, MUNICIPAL).await;
    let account_id = created.account.unwrap().account_id;
    app.clock.advance(Duration::minutes(1));
    let moved_at = app.clock.now();
    directory
        .save_staff_member(pb::SaveStaffMemberRequest {
            account_id: account_id.clone(),
            role: pb::Role::UnitSupervisor.into(),
            unit_id: "sd:pingshan".to_owned(),
            display_name: "马力".to_owned(),
        })
        .await
        .unwrap();
    app.clock.advance(Duration::minutes(1));
    directory
        .save_unit(pb::SaveUnitRequest {
            unit: Some(pb::Unit {
                id: "contractor:quickfix".to_owned(),
                kind: pb::UnitKind::Contractor.into(),
                name_zh: "快修服务公司".to_owned(),
                name_en: "Quick-fix contractor".to_owned(),
                parent_id: "centre".to_owned(),
            }),
        })
        .await
        .unwrap();
    directory
        .load_calendar_year(pb::LoadCalendarYearRequest {
            year: 2027,
            off_days: vec!["2027-01-01".to_owned()],
            working_days: vec![],
        })
        .await
        .unwrap();
    // A refused change is not an action: nothing is recorded for it.
    directory
        .save_staff_member(pb::SaveStaffMemberRequest {
            account_id: account_id.clone(),
            role: pb::Role::Handler.into(),
            unit_id: "sd:atlantis".to_owned(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();

    let mut log = app.audit_log(pb::Role::AuditAdmin).await;
    let by_admin = pb::ListAuditRecordsRequest {
        actor_account_id: admin_id.clone(),
        ..Default::default()
    };
    let all = records(&mut log, by_admin.clone()).await;
    let actions: Vec<&str> = all.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "directory.calendar_loaded",
            "directory.unit_saved",
            "staff.moved",
            "staff.created",
        ]
    );
    let targets: Vec<&str> = all.iter().map(|r| r.target.as_str()).collect();
    let account_target = format!("account:{account_id}");
    assert_eq!(
        targets,
        [
            "calendar:2027",
            "unit:contractor:quickfix",
            account_target.as_str(),
            account_target.as_str(),
        ]
    );
    assert!(all.iter().all(|r| r.actor_role == "system_admin"));

    // Two at a time, the second page picks up where the first ended.
    let first = log
        .list_audit_records(pb::ListAuditRecordsRequest {
            page_size: 2,
            ..by_admin.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.records, all[..2]);
    let second = log
        .list_audit_records(pb::ListAuditRecordsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..by_admin.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.records, all[2..]);
    assert!(second.next_page_token.is_empty());

    // By target, and by time: [moved_at, moved_at + 1 min) holds the move only.
    let of_account = records(
        &mut log,
        pb::ListAuditRecordsRequest {
            target: account_target.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(of_account.len(), 2);
    let in_window = records(
        &mut log,
        pb::ListAuditRecordsRequest {
            since: Some(timestamp(moved_at)),
            until: Some(timestamp(moved_at + Duration::minutes(1))),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        in_window
            .iter()
            .map(|r| r.action.as_str())
            .collect::<Vec<_>>(),
        ["staff.moved"]
    );

    let bad = log
        .list_audit_records(pb::ListAuditRecordsRequest {
            action: "staff.deleted".to_owned(),
            page_token: "garbage".to_owned(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}

fn timestamp(at: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

/// Runs one statement straight against the test server's database, as an
/// operator with a SQL console would.
async fn execute_sql(app: &TestApp, sql: &str) -> Result<u64, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if app.database_url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(&app.database_url).await?;
        let done = sqlx::query(sql).execute(&mut connection).await?;
        Ok(done.rows_affected())
    } else {
        let mut connection = sqlx::SqliteConnection::connect(&app.database_url).await?;
        let done = sqlx::query(sql).execute(&mut connection).await?;
        Ok(done.rows_affected())
    }
}

async fn count_records(app: &TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_records";
    if app.database_url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    } else {
        let mut connection = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut connection)
            .await
            .unwrap()
    }
}

/// Writes one audit record at `at` through a real privileged action.
async fn record_at(app: &TestApp, at: chrono::DateTime<Utc>, year: i32) {
    app.clock.set(at);
    let mut directory = app.directory("root", pb::Role::SystemAdmin).await;
    directory
        .load_calendar_year(pb::LoadCalendarYearRequest {
            year,
            off_days: vec![],
            working_days: vec![],
        })
        .await
        .unwrap();
}

async fn nobody_can_change_or_delete_the_log_through_the_database(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    // Recorded now by the database's own clock, which the floor is measured on.
    record_at(&app, Utc::now(), 2027).await;
    record_at(&app, Utc::now(), 2028).await;
    assert_eq!(count_records(&app).await, 2);

    let update = execute_sql(&app, "UPDATE audit_records SET reason = 'nothing happened'").await;
    assert!(update.is_err(), "an UPDATE went through: {update:?}");
    let actor = execute_sql(&app, "UPDATE audit_records SET actor_id = NULL").await;
    assert!(actor.is_err(), "an UPDATE went through: {actor:?}");
    let delete = execute_sql(&app, "DELETE FROM audit_records").await;
    assert!(delete.is_err(), "a DELETE went through: {delete:?}");
    let one = execute_sql(
        &app,
        "DELETE FROM audit_records WHERE target = 'calendar:2027'",
    )
    .await;
    assert!(one.is_err(), "a DELETE went through: {one:?}");
    if engine == Engine::Postgres {
        let truncate = execute_sql(&app, "TRUNCATE audit_records").await;
        assert!(truncate.is_err(), "a TRUNCATE went through: {truncate:?}");
    }

    assert_eq!(count_records(&app).await, 2);
    let mut log = app.audit_log(pb::Role::AuditAdmin).await;
    let kept = records(&mut log, of_action("directory.calendar_loaded")).await;
    assert!(kept.iter().all(|r| r.reason.is_empty()));
}

async fn a_purge_removes_only_what_is_past_retention_and_the_floor(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        config.audit_retention = Duration::days(183);
    })
    .await;
    let now = Utc::now();
    record_at(&app, now - Duration::days(400), 2027).await;
    record_at(&app, now - Duration::days(100), 2028).await;
    record_at(&app, now, 2029).await;

    let running = app.app.as_ref().unwrap();
    assert_eq!(running.purge_audit_log().await.unwrap(), 1);
    let mut log = app.audit_log(pb::Role::AuditAdmin).await;
    let loads = records(&mut log, of_action("directory.calendar_loaded")).await;
    let kept: Vec<&str> = loads.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(kept, ["calendar:2029", "calendar:2028"]);
    let purges = records(&mut log, of_action("audit.purged")).await;
    assert_eq!(purges.len(), 1);
    assert_eq!(purges[0].actor_role, "system");
    assert_eq!(purges[0].detail, "1 records deleted");

    // A clock a year fast would have the purge take everything; the
    // database's floor keeps what is younger than six months by its clock.
    app.clock.set(now + Duration::days(365));
    assert_eq!(running.purge_audit_log().await.unwrap(), 0);
    let mut log = app.audit_log(pb::Role::AuditAdmin).await;
    let loads = records(&mut log, of_action("directory.calendar_loaded")).await;
    assert_eq!(loads.len(), 2);

    // Nor can an operator delete inside the floor by hand.
    let by_hand = execute_sql(
        &app,
        "DELETE FROM audit_records WHERE target = 'calendar:2028'",
    )
    .await;
    assert!(by_hand.is_err(), "a DELETE inside the floor went through");
}
