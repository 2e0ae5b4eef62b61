//! Data scope with real identities: for one case dispatched to a community,
//! who may read it and who is told it does not exist. The role table
//! (`access.rs`) decides who may call an RPC at all; this checks which
//! records an admitted caller reaches.

use huying::proto::v1 as pb;
use huying::proto::v1::case_service_client::CaseServiceClient;
use huying::proto::v1::citizen_service_client::CitizenServiceClient;
use tonic::Code;

use crate::helpers::{
    Bearer, CaseClient, Engine, TestApp, file_one, get_case, on_both_engines, rid,
};

const COMMUNITY: &str = "cm:heping";
/// The subdistrict Heping community belongs to.
const SUBDISTRICT: &str = "sd:pingshan";
const OTHER_SUBDISTRICT: &str = "sd:biling";
const OTHER_UNIT: &str = "sd:pingshan/municipal";

on_both_engines!(each_identity_reaches_exactly_the_cases_in_its_scope);

async fn read(client: &mut CaseClient, id: &str) -> Code {
    let case = client
        .get_case(pb::GetCaseRequest {
            complaint_id: id.to_owned(),
        })
        .await;
    let events = client
        .list_case_events(pb::ListCaseEventsRequest {
            complaint_id: id.to_owned(),
            ..Default::default()
        })
        .await;
    let codes = (
        case.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
        events.map(|_| Code::Ok).unwrap_or_else(|s| s.code()),
    );
    assert_eq!(codes.0, codes.1, "a case and its timeline share one scope");
    codes.0
}

async fn queue_holds(client: &mut CaseClient, id: &str) -> bool {
    client
        .list_queue(pb::ListQueueRequest::default())
        .await
        .unwrap()
        .into_inner()
        .cases
        .iter()
        .any(|case| case.complaint.as_ref().unwrap().id == id)
}

async fn each_identity_reaches_exactly_the_cases_in_its_scope(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut owner = app.citizen("owner").await;
    let mut dispatcher = app.dispatcher().await;
    let id = file_one(&mut owner, "req-scope-1").await;
    let case = get_case(&mut dispatcher, &id).await;
    let case = dispatcher
        .accept_for_filing(pb::AcceptForFilingRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
        })
        .await
        .unwrap()
        .into_inner();
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version,
            lead_unit_id: COMMUNITY.to_owned(),
            co_unit_ids: Vec::new(),
        })
        .await
        .unwrap();

    // Citizens: the owner, and anyone else.
    let mut stranger = app.citizen("stranger").await;
    let own = owner
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: id.clone(),
        })
        .await;
    let others = stranger
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: id.clone(),
        })
        .await;
    assert!(own.is_ok());
    assert_eq!(others.unwrap_err().code(), Code::NotFound);

    // Staff, by role and unit.
    let expectations = [
        (
            "handler of the unit",
            pb::Role::Handler,
            COMMUNITY,
            Code::Ok,
        ),
        (
            "handler of another unit",
            pb::Role::Handler,
            OTHER_UNIT,
            Code::NotFound,
        ),
        (
            "supervisor above the unit",
            pb::Role::UnitSupervisor,
            SUBDISTRICT,
            Code::Ok,
        ),
        (
            "supervisor of another subdistrict",
            pb::Role::UnitSupervisor,
            OTHER_SUBDISTRICT,
            Code::NotFound,
        ),
        (
            "district supervisor",
            pb::Role::DistrictSupervisor,
            "centre",
            Code::Ok,
        ),
        ("auditor", pb::Role::Auditor, "centre", Code::Ok),
        (
            "system administrator",
            pb::Role::SystemAdmin,
            "centre",
            Code::PermissionDenied,
        ),
        (
            "security administrator",
            pb::Role::SecurityAdmin,
            "centre",
            Code::PermissionDenied,
        ),
        (
            "audit administrator",
            pb::Role::AuditAdmin,
            "centre",
            Code::PermissionDenied,
        ),
    ];
    for (who, role, unit, expected) in expectations {
        let mut client = app.staff(who, role, unit).await;
        assert_eq!(read(&mut client, &id).await, expected, "{who}");
        if expected != Code::PermissionDenied {
            assert_eq!(
                queue_holds(&mut client, &id).await,
                expected == Code::Ok,
                "{who}"
            );
        }
    }

    // Nobody signed in.
    let channel = app.channel().await;
    let mut anonymous = CaseServiceClient::with_interceptor(channel.clone(), Bearer::none());
    let mut anonymous_citizen = CitizenServiceClient::with_interceptor(channel, Bearer::none());
    assert_eq!(read(&mut anonymous, &id).await, Code::Unauthenticated);
    let status = anonymous_citizen
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
