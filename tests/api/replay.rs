//! A month replayed through the API: every StatsService figure equals the
//! generator's ground truth, and the typhoon raises its spike alerts.

use chrono::Duration;
use huying::proto::v1 as pb;
use huying::proto::v1::stats_service_client::StatsServiceClient;
use huying::replay::{YearPlan, compare, replay};

use crate::helpers::{Bearer, Engine, TestApp, on_both_engines, test_start};

on_both_engines!(a_replayed_month_reproduces_its_ground_truth);

async fn a_replayed_month_reproduces_its_ground_truth(engine: Engine) {
    let app = TestApp::spawn_with(engine, |config| {
        // The replay keeps its sessions for the whole period and files far
        // faster than any person.
        config.access_token_ttl = chrono::Duration::days(400);
        config
            .rate_limits
            .apply("file.citizen=100000/1h,file.device=100000/1h,read.session=100000/1m")
            .expect("valid limits");
    })
    .await;
    let plan = YearPlan {
        seed: 20_250_909,
        start: test_start(),
        days: 30,
        cases: 300,
        typhoon_day: 20,
        typhoon_cases: 150,
    };
    let server = app.app.as_ref().expect("running");
    let truth = replay(app.channel().await, &app.clock, &plan, |now| async move {
        server.supervise(now).await.map(|_| ())
    })
    .await
    .expect("the replay runs");
    assert_eq!(truth.received, 450);
    assert!(truth.closed > 350 && truth.returns.values().sum::<u64>() > 0);

    let session = app
        .sign_in("replay-auditor", pb::Role::Auditor, "centre")
        .await;
    let token = session.session.unwrap().access_token;
    let mut stats = StatsServiceClient::with_interceptor(app.channel().await, Bearer::new(&token));
    let figures = stats
        .get_case_stats(pb::GetCaseStatsRequest {
            scope: Some(pb::StatsScope {
                from: Some(prost_types::Timestamp {
                    seconds: plan.start.timestamp(),
                    nanos: 0,
                }),
                to: Some(prost_types::Timestamp {
                    seconds: (plan.end() + Duration::seconds(1)).timestamp(),
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("reads the figures")
        .into_inner();
    for (figure, server, expected) in compare(&figures, &truth) {
        assert_eq!(server, expected, "{figure}");
    }

    let alerts = stats
        .list_spike_alerts(pb::ListSpikeAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let keys: Vec<String> = alerts
        .iter()
        .filter_map(|a| a.hotspot.as_ref())
        .filter(|h| h.dimension() == pb::HotspotDimension::Category)
        .map(|h| h.key.clone())
        .collect();
    for key in &truth.typhoon_keys {
        assert!(keys.contains(key), "the typhoon's {key} spiked: {keys:?}");
    }
}
