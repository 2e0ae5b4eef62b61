//! The district's figures through the gRPC API: a small set of cases whose
//! every figure is counted by hand, hotspots and the spike alert, the CSV
//! export and the published aggregates.

use chrono::{DateTime, Duration, Utc};
use huying::clock::Clock;
use huying::proto::v1 as pb;
use huying::proto::v1::public_stats_service_client::PublicStatsServiceClient;
use huying::proto::v1::stats_service_client::StatsServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{
    Bearer, CaseClient, CitizenClient, Engine, TestApp, accept, code_of, file_one, filing,
    get_case, on_both_engines, rid, test_start,
};

const MUNICIPAL: &str = "sd:pingshan/municipal";
const COMMUNITY: &str = "cm:heping";

on_both_engines!(
    every_figure_matches_a_hand_counted_set_of_cases,
    scopes_are_checked_against_the_callers_reach,
    a_jump_in_one_category_raises_one_spike_alert,
    the_export_is_csv_and_personal_data_needs_a_supervisor_and_a_reason,
    published_figures_fold_rare_categories,
);

type StatsClient = StatsServiceClient<InterceptedService<Channel, Bearer>>;

async fn stats_as(app: &TestApp, role: pb::Role, unit: &str) -> StatsClient {
    let session = app.sign_in(&format!("stats-{unit}"), role, unit).await;
    let token = session.session.unwrap().access_token;
    StatsServiceClient::with_interceptor(app.channel().await, Bearer::new(&token))
}

/// Lets filing tests file freely: the limits are tested elsewhere.
fn generous_limits(config: &mut huying::config::Config) {
    config
        .rate_limits
        .apply("file.citizen=1000/1h,file.device=1000/1h")
        .expect("valid test limits");
}

fn timestamp(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

fn around_start() -> pb::StatsScope {
    pb::StatsScope {
        from: timestamp(test_start() - Duration::hours(1)),
        to: timestamp(test_start() + Duration::hours(1)),
        ..Default::default()
    }
}

async fn case_stats(client: &mut StatsClient, scope: pb::StatsScope) -> pb::CaseStats {
    client
        .get_case_stats(pb::GetCaseStatsRequest { scope: Some(scope) })
        .await
        .expect("reads the figures")
        .into_inner()
}

fn rate(rate: Option<pb::Rate>) -> (u64, u64) {
    let rate = rate.expect("every rate is present");
    (rate.numerator, rate.denominator)
}

async fn dispatch(dispatcher: &mut CaseClient, id: &str, lead: &str) {
    let case = get_case(dispatcher, id).await;
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            lead_unit_id: lead.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .expect("dispatches");
}

async fn resolve(handler: &mut CaseClient, id: &str) {
    let case = get_case(handler, id).await;
    handler
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            summary: "已处理完毕".to_owned(),
        })
        .await
        .expect("resolves");
}

async fn rate_as(citizen: &mut CitizenClient, id: &str, satisfaction: pb::Satisfaction) {
    citizen
        .rate_complaint(pb::RateComplaintRequest {
            complaint_id: id.to_owned(),
            satisfaction: satisfaction.into(),
            comment: String::new(),
        })
        .await
        .expect("rates");
}

async fn every_figure_matches_a_hand_counted_set_of_cases(engine: Engine) {
    let app = TestApp::spawn_with(engine, generous_limits).await;
    let mut citizen = app.citizen("alice").await;
    let mut dispatcher = app.dispatcher().await;
    let mut municipal = app.handler(MUNICIPAL).await;
    let mut community = app.handler(COMMUNITY).await;

    // Eight complaints filed on Thursday 2026-12-03 10:00; accepted ones
    // are due at the end of Wednesday 12-09 (4 working days).
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(file_one(&mut citizen, &format!("req-stats-{i:04}")).await);
    }
    let [a, b, c, d, h, e, f, _g] = <[String; 8]>::try_from(ids).unwrap();
    for id in [&a, &b, &c, &d, &h] {
        accept(&mut dispatcher, id).await;
    }
    for id in [&a, &b, &c, &h] {
        dispatch(&mut dispatcher, id, MUNICIPAL).await;
    }
    // D goes to the community first, which returns it (退单); it then sits
    // with the municipal office and is never resolved.
    dispatch(&mut dispatcher, &d, COMMUNITY).await;
    let case = get_case(&mut community, &d).await;
    community
        .return_case(pb::ReturnCaseRequest {
            request_id: rid(),
            complaint_id: d.clone(),
            expected_version: case.version,
            reason: "不属于社区职责".to_owned(),
        })
        .await
        .expect("returns");
    dispatch(&mut dispatcher, &d, MUNICIPAL).await;
    // B's unit gets an extension.
    let case = get_case(&mut municipal, &b).await;
    municipal
        .request_extension(pb::RequestExtensionRequest {
            request_id: rid(),
            complaint_id: b.clone(),
            expected_version: case.version,
            until: timestamp(test_start() + Duration::days(8)),
            reason: "需协调施工单位".to_owned(),
        })
        .await
        .expect("asks for more time");
    let mut supervisor = app
        .staff("sup-pingshan", pb::Role::UnitSupervisor, "sd:pingshan")
        .await;
    let case = get_case(&mut supervisor, &b).await;
    supervisor
        .decide_extension(pb::DecideExtensionRequest {
            request_id: rid(),
            complaint_id: b.clone(),
            expected_version: case.version,
            approve: true,
        })
        .await
        .expect("approves");
    // E is rejected, F withdrawn, G never looked at.
    let case = get_case(&mut dispatcher, &e).await;
    dispatcher
        .reject_complaint(pb::RejectComplaintRequest {
            request_id: rid(),
            complaint_id: e.clone(),
            expected_version: case.version,
            reason: "不属于本区管辖".to_owned(),
        })
        .await
        .expect("rejects");
    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: f.clone(),
            reason: String::new(),
        })
        .await
        .expect("withdraws");

    // A: resolved after 2 hours and rated satisfied.
    app.clock.advance(Duration::hours(2));
    let (mut citizen, mut municipal) = (app.citizen("alice").await, app.handler(MUNICIPAL).await);
    resolve(&mut municipal, &a).await;
    rate_as(&mut citizen, &a, pb::Satisfaction::Satisfied).await;
    // B: after 48 hours, basically satisfied.
    app.clock.advance(Duration::hours(46));
    let (mut citizen, mut municipal) = (app.citizen("alice").await, app.handler(MUNICIPAL).await);
    resolve(&mut municipal, &b).await;
    rate_as(&mut citizen, &b, pb::Satisfaction::BasicallySatisfied).await;
    // H and C: after 10 days, late. H is rated satisfied; C unsatisfied,
    // which sends it back; its second resolution an hour later, under the
    // new deadline, is on time and satisfies.
    app.clock.advance(Duration::hours(192));
    let (mut citizen, mut municipal) = (app.citizen("alice").await, app.handler(MUNICIPAL).await);
    resolve(&mut municipal, &h).await;
    rate_as(&mut citizen, &h, pb::Satisfaction::Satisfied).await;
    resolve(&mut municipal, &c).await;
    rate_as(&mut citizen, &c, pb::Satisfaction::Unsatisfied).await;
    app.clock.advance(Duration::hours(1));
    let (mut citizen, mut municipal) = (app.citizen("alice").await, app.handler(MUNICIPAL).await);
    resolve(&mut municipal, &c).await;
    rate_as(&mut citizen, &c, pb::Satisfaction::Satisfied).await;
    // The sender runs without outside channels: every notice stays in the
    // app, and none counts as sent.
    app.app
        .as_ref()
        .unwrap()
        .send_notifications(app.clock.now())
        .await
        .expect("a sender pass");

    let mut stats = stats_as(&app, pb::Role::DistrictSupervisor, "centre").await;
    let figures = case_stats(&mut stats, around_start()).await;
    assert_eq!(figures.received, 8);
    assert_eq!(figures.accepted, 5);
    assert_eq!(
        (figures.rejected, figures.withdrawn, figures.merged),
        (1, 1, 0)
    );
    assert_eq!(figures.closed, 4, "A, B, C and H");
    assert_eq!(figures.closed_on_time, 3, "H was late");
    assert_eq!(figures.open_overdue, 1, "D is past its deadline");
    // The two on-time definitions disagree while D is open and late.
    assert_eq!(rate(figures.on_time_of_closed), (3, 4));
    assert_eq!(rate(figures.on_time_including_open_overdue), (3, 5));
    assert_eq!(figures.on_time_including_open_overdue.unwrap().value, 0.6);
    assert_eq!(rate(figures.closed_within_one_day), (1, 4), "A");
    assert_eq!(rate(figures.closed_within_three_days), (2, 4), "A and B");
    assert_eq!(rate(figures.satisfaction), (4, 4), "final ratings");
    assert_eq!(rate(figures.rehandling), (1, 4), "C");
    // Handling times 2 h, 48 h, 240 h and 241 h.
    assert_eq!(figures.median_handling_seconds, 48 * 3600);
    assert_eq!(figures.p90_handling_seconds, 241 * 3600);
    let units: Vec<(&str, u64, u64)> = figures
        .units
        .iter()
        .map(|u| (u.unit_id.as_str(), u.returns, u.extensions))
        .collect();
    assert_eq!(units, [(COMMUNITY, 1, 0), (MUNICIPAL, 0, 1)]);
    assert_eq!(rate(figures.acceptance_notice_sent), (0, 6));
    assert_eq!(rate(figures.handling_notice_sent), (0, 4));
    assert_eq!(rate(figures.handling_notice_delivered), (0, 4));

    // One unit: the five cases the municipal office leads.
    let unit = case_stats(
        &mut stats,
        pb::StatsScope {
            unit_id: MUNICIPAL.to_owned(),
            ..around_start()
        },
    )
    .await;
    assert_eq!((unit.received, unit.closed, unit.open_overdue), (5, 4, 1));
    // A category with none of them, and an empty period.
    let other = case_stats(
        &mut stats,
        pb::StatsScope {
            category_code: "02".to_owned(),
            ..around_start()
        },
    )
    .await;
    assert_eq!(other.received, 0);
    assert_eq!(rate(other.on_time_of_closed), (0, 0));
    let later = case_stats(
        &mut stats,
        pb::StatsScope {
            from: timestamp(test_start() + Duration::hours(1)),
            to: timestamp(test_start() + Duration::days(30)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(later.received, 0);
}

async fn scopes_are_checked_against_the_callers_reach(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let id = file_one(&mut citizen, "req-reach-0001").await;
    let mut dispatcher = app.dispatcher().await;
    accept(&mut dispatcher, &id).await;
    dispatch(&mut dispatcher, &id, MUNICIPAL).await;

    // A subdistrict supervisor sees their subtree, by default and by name.
    let mut supervisor = stats_as(&app, pb::Role::UnitSupervisor, "sd:pingshan").await;
    assert_eq!(
        case_stats(&mut supervisor, around_start()).await.received,
        1
    );
    let subtree = pb::StatsScope {
        unit_id: "sd:pingshan".to_owned(),
        include_subtree: true,
        ..around_start()
    };
    assert_eq!(case_stats(&mut supervisor, subtree).await.received, 1);
    // Another subdistrict's supervisor counts nothing of it ...
    let mut elsewhere = stats_as(&app, pb::Role::UnitSupervisor, "sd:kengzi").await;
    assert_eq!(case_stats(&mut elsewhere, around_start()).await.received, 0);
    // ... and may not name a unit outside their reach.
    let outside = elsewhere
        .get_case_stats(pb::GetCaseStatsRequest {
            scope: Some(pb::StatsScope {
                unit_id: MUNICIPAL.to_owned(),
                ..around_start()
            }),
        })
        .await;
    assert_eq!(code_of(outside), Code::PermissionDenied);

    // Bad scopes name their field.
    let mut district = stats_as(&app, pb::Role::DistrictSupervisor, "centre").await;
    for (scope, field) in [
        (
            pb::StatsScope {
                from: around_start().to,
                to: around_start().from,
                ..Default::default()
            },
            "scope.to",
        ),
        (
            pb::StatsScope {
                to: None,
                ..around_start()
            },
            "scope.to",
        ),
        (
            pb::StatsScope {
                unit_id: "nowhere".to_owned(),
                ..around_start()
            },
            "scope.unit_id",
        ),
        (
            pb::StatsScope {
                category_code: "99".to_owned(),
                ..around_start()
            },
            "scope.category_code",
        ),
    ] {
        let status = district
            .get_case_stats(pb::GetCaseStatsRequest { scope: Some(scope) })
            .await
            .expect_err("a bad scope is refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            crate::validation::violated_fields(&status).contains(&field.to_owned()),
            "{field}: {status:?}"
        );
    }

    // Citizens and handlers have no figures.
    for (role, unit) in [(pb::Role::Citizen, ""), (pb::Role::Handler, MUNICIPAL)] {
        let mut client = stats_as(&app, role, unit).await;
        let refused = client
            .get_case_stats(pb::GetCaseStatsRequest {
                scope: Some(around_start()),
            })
            .await;
        assert_eq!(code_of(refused), Code::PermissionDenied, "{role:?}");
    }
}

async fn a_jump_in_one_category_raises_one_spike_alert(engine: Engine) {
    let app = TestApp::spawn_with(engine, generous_limits).await;
    let mut citizen = app.citizen("alice").await;
    // A usual day: a few refuse complaints and a pothole.
    for i in 0..3 {
        file_one(&mut citizen, &format!("req-usual-{i:04}")).await;
    }
    let mut pothole = filing("req-pothole-0001");
    pothole.category_code = "020101".to_owned();
    pothole.text = "道路中间有一个大坑，车辆经过很危险。".to_owned();
    citizen.file_complaint(pothole).await.expect("files");

    // Three days later, the storm: 25 refuse complaints in a day.
    app.clock.advance(Duration::days(3));
    let mut citizen = app.citizen("alice").await;
    for i in 0..25 {
        let mut storm = filing(&format!("req-storm-{i:04}"));
        storm.text = format!("台风过后第{i}号楼前垃圾和树枝堆积，无人清理。");
        citizen.file_complaint(storm).await.expect("files");
    }

    let mut stats = stats_as(&app, pb::Role::DistrictSupervisor, "centre").await;
    let hotspots = stats
        .get_hotspots(pb::GetHotspotsRequest::default())
        .await
        .expect("reads hotspots")
        .into_inner();
    let refuse = &hotspots.categories[0];
    assert_eq!((refuse.key.as_str(), refuse.count), ("0101", 25));
    assert_eq!(refuse.previous_count, 0);
    assert_eq!(refuse.rise, 25);
    let spikes: Vec<(i32, &str)> = hotspots
        .spikes
        .iter()
        .map(|s| (s.dimension, s.key.as_str()))
        .collect();
    // The refuse category jumped, not the roads; and since nobody has
    // dispatched them yet, so did the cases no unit has.
    let (category, area) = (
        pb::HotspotDimension::Category as i32,
        pb::HotspotDimension::Area as i32,
    );
    assert_eq!(spikes, [(category, "0101"), (area, "unassigned")]);
    let roads = hotspots
        .categories
        .iter()
        .find(|c| c.key == "0201")
        .unwrap();
    assert_eq!(
        (roads.count, roads.previous_count, roads.spike),
        (0, 0, false)
    );

    // The supervision pass records them once a day, however often it runs.
    assert_eq!(app.supervise().await.spikes, 2);
    assert_eq!(app.supervise().await.spikes, 0);
    let alerts = stats
        .list_spike_alerts(pb::ListSpikeAlertsRequest::default())
        .await
        .expect("lists alerts")
        .into_inner()
        .alerts;
    assert_eq!(alerts.len(), 2);
    let refuse_alert = alerts
        .iter()
        .filter_map(|a| a.hotspot.as_ref())
        .find(|h| h.key == "0101")
        .expect("the refuse category's alert");
    assert_eq!(refuse_alert.count, 25);
    assert_eq!(refuse_alert.name, "垃圾问题");

    let bad = stats
        .get_hotspots(pb::GetHotspotsRequest {
            window_hours: 10_000,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}

async fn export(
    client: &mut StatsClient,
    request: pb::ExportCasesRequest,
) -> Result<String, tonic::Status> {
    use tokio_stream::StreamExt;
    let mut stream = client.export_cases(request).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk?.data);
    }
    Ok(String::from_utf8(bytes).expect("UTF-8"))
}

async fn the_export_is_csv_and_personal_data_needs_a_supervisor_and_a_reason(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut citizen = app.citizen("alice").await;
    let mut with_comma = filing("req-export-0001");
    with_comma.text = "路灯不亮，晚上很黑，\"请尽快修\"".to_owned();
    citizen.file_complaint(with_comma).await.expect("files");
    file_one(&mut citizen, "req-export-0002").await;

    let request = |personal: bool, reason: &str| pb::ExportCasesRequest {
        scope: Some(around_start()),
        include_personal_data: personal,
        reason: reason.to_owned(),
    };
    let mut dispatcher = stats_as(&app, pb::Role::Dispatcher, "centre").await;
    let csv = export(&mut dispatcher, request(false, ""))
        .await
        .expect("exports");
    assert!(
        csv.starts_with('\u{feff}'),
        "a byte-order mark for spreadsheets"
    );
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines.len(), 3, "a header and two cases: {csv}");
    assert!(lines[0].contains("编号") && lines[0].ends_with("联系电话（脱敏）"));
    assert!(
        csv.contains("\"路灯不亮，晚上很黑，\"\"请尽快修\"\"\""),
        "{csv}"
    );
    assert!(csv.contains("138****5678"));
    assert!(
        !csv.contains("13812345678"),
        "no full phone without the right"
    );

    let refused = export(&mut dispatcher, request(true, "核实")).await;
    assert_eq!(code_of(refused), Code::PermissionDenied);
    let mut supervisor = stats_as(&app, pb::Role::DistrictSupervisor, "centre").await;
    let status = export(&mut supervisor, request(true, "  "))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(crate::validation::violated_fields(&status), ["reason"]);
    let full = export(&mut supervisor, request(true, "回访核实办理结果"))
        .await
        .expect("exports with a reason");
    assert!(full.contains("13812345678"));
    assert!(full.lines().next().unwrap().ends_with("市民账号"));
}

async fn published_figures_fold_rare_categories(engine: Engine) {
    let app = TestApp::spawn_with(engine, generous_limits).await;
    let mut citizen = app.citizen("alice").await;
    for i in 0..10 {
        file_one(&mut citizen, &format!("req-public-{i:04}")).await;
    }
    let mut pothole = filing("req-public-road");
    pothole.category_code = "020101".to_owned();
    citizen.file_complaint(pothole).await.expect("files");

    // Anyone may read them, signed in or not.
    let mut public = PublicStatsServiceClient::new(app.channel().await);
    let figures = public
        .get_public_stats(pb::GetPublicStatsRequest {
            month: "2026-12".to_owned(),
        })
        .await
        .expect("reads the published figures")
        .into_inner();
    assert_eq!(figures.month, "2026-12");
    assert_eq!(figures.received, 11);
    let rows: Vec<(&str, &str, u64)> = figures
        .categories
        .iter()
        .map(|c| (c.code.as_str(), c.name.as_str(), c.received))
        .collect();
    assert_eq!(rows, [("01", "市容环卫", 10), ("", "其他", 1)]);
    assert_eq!(figures.suppressed_below, 10);

    // Last complete month by default: November, with nothing in it.
    let november = public
        .get_public_stats(pb::GetPublicStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((november.month.as_str(), november.received), ("2026-11", 0));
    let bad = public
        .get_public_stats(pb::GetPublicStatsRequest {
            month: "2026/12".to_owned(),
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
}
