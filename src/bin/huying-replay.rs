//! `huying-replay`: replays a district year into a fresh database through
//! the real gRPC API, writes the generator's ground truth to a file, and
//! prints StatsService's figures beside it. Exits 1 if any figure differs.
//!
//! Usage: huying-replay [--seed N] [--cases N] [--days N]
//!                      [--typhoon-cases N] [--truth FILE] [--measure-only]
//!
//! With `--measure-only` nothing is generated: the period's figures are
//! asked for five times against what the database already holds, and the
//! time of each call is printed (see the README's Statistics section).
//!
//! The database is HUYING_DATABASE_URL (PostgreSQL needs HUYING_REDIS_URL
//! and keys, as for the server) or, by default, a new SQLite file under
//! HUYING_DATA_DIR (default `huying-replay-data`). Never point it at a
//! production database: it signs in through the development provider and
//! files synthetic cases.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Duration, TimeZone, Utc};
use huying::clock::ManualClock;
use huying::config::Config;
use huying::proto::v1 as pb;
use huying::proto::v1::auth_service_client::AuthServiceClient;
use huying::proto::v1::stats_service_client::StatsServiceClient;
use huying::replay::{YearPlan, compare, replay};
use huying::startup::Application;

struct Options {
    seed: u64,
    cases: u32,
    days: u32,
    typhoon_cases: u32,
    truth: String,
    measure_only: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seed: 2025,
        cases: 60_000,
        days: 365,
        typhoon_cases: 455,
        truth: "replay-truth.json".to_owned(),
        measure_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--measure-only" {
            options.measure_only = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seed" => options.seed = value.parse().context("--seed")?,
            "--cases" => options.cases = value.parse().context("--cases")?,
            "--days" => options.days = value.parse().context("--days")?,
            "--typhoon-cases" => {
                options.typhoon_cases = value.parse().context("--typhoon-cases")?
            }
            "--truth" => options.truth = value,
            other => bail!("unknown option {other}"),
        }
    }
    if options.days < 10 {
        bail!("--days must be at least 10");
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let mut config = if std::env::var("HUYING_DATABASE_URL").is_ok() {
        Config::from_env()?
    } else {
        // A database of its own, never the development server's.
        let dir = std::path::PathBuf::from(
            std::env::var("HUYING_DATA_DIR").unwrap_or_else(|_| "huying-replay-data".to_owned()),
        );
        std::fs::create_dir_all(&dir)?;
        let keys = huying::security::Keys::from_master_key_file(&dir)?;
        Config::embedded_defaults(format!("sqlite://{}/replay.db", dir.display()), keys)
    };
    config.listen = "127.0.0.1:0".parse()?;
    config.dev_sign_in = true;
    config.access_token_ttl = Duration::days(i64::from(options.days) + 30);
    config
        .rate_limits
        .apply("file.citizen=1000000/1h,file.device=1000000/1h,file.ip=1000000/1h,read.session=1000000/1m,signin.ip=1000000/15m")?;
    // The replay drives supervision itself, at the replayed time.
    config.supervision_interval = None;
    config.notification_interval = None;
    config.payout_reconcile_interval = None;
    config.revocation_sync_interval = None;

    // 2025-01-01 00:00 in Shenzhen.
    let start = Utc.with_ymd_and_hms(2024, 12, 31, 16, 0, 0).unwrap();
    let plan = YearPlan {
        cases: options.cases,
        days: options.days,
        typhoon_cases: options.typhoon_cases,
        typhoon_day: options.days * 2 / 3,
        ..YearPlan::district_year(options.seed, start)
    };
    let clock = Arc::new(ManualClock::new(start));
    let app = Application::start(config, clock.clone()).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address()))?
        .connect()
        .await?;

    if options.measure_only {
        let mut stats = auditor_stats(channel).await?;
        for round in 1..=5 {
            let asked = Instant::now();
            let figures = stats
                .get_case_stats(pb::GetCaseStatsRequest {
                    scope: Some(period(&plan)),
                })
                .await?
                .into_inner();
            println!(
                "round {round}: GetCaseStats over {} cases took {} ms",
                figures.received,
                asked.elapsed().as_millis()
            );
        }
        app.stop().await?;
        return Ok(());
    }

    let started = Instant::now();
    let truth = replay(channel.clone(), &clock, &plan, |now| {
        let app = &app;
        async move { app.supervise(now).await.map(|_| ()) }
    })
    .await?;
    let took = started.elapsed();
    std::fs::write(&options.truth, serde_json::to_string_pretty(&truth)?)
        .with_context(|| format!("Failed to write {}", options.truth))?;

    let mut stats = auditor_stats(channel).await?;
    let scope = period(&plan);
    let asked = Instant::now();
    let figures = stats
        .get_case_stats(pb::GetCaseStatsRequest { scope: Some(scope) })
        .await?
        .into_inner();
    let stats_took = asked.elapsed();

    println!(
        "replayed {} cases over {} days in {:.0} s (seed {}); ground truth in {}",
        truth.received,
        plan.days,
        took.as_secs_f64(),
        plan.seed,
        options.truth
    );
    println!(
        "GetCaseStats for the period took {} ms\n",
        stats_took.as_millis()
    );
    println!(
        "{:<22} {:>24} {:>24}  match",
        "figure", "StatsService", "ground truth"
    );
    let mut mismatches = 0;
    for (figure, server, expected) in compare(&figures, &truth) {
        let same = server == expected;
        mismatches += usize::from(!same);
        if server.len() > 24 || expected.len() > 24 {
            println!("{figure:<22} {}", if same { "same" } else { "DIFFERENT" });
            if !same {
                println!("  server: {server}\n  truth:  {expected}");
            }
        } else {
            println!(
                "{figure:<22} {server:>24} {expected:>24}  {}",
                if same { "yes" } else { "NO" }
            );
        }
    }
    let percent = |rate: &Option<pb::Rate>| rate.as_ref().map_or(0.0, |r| r.value * 100.0);
    println!(
        "\non time (closed on time / closed)                 {:>6.2} %",
        percent(&figures.on_time_of_closed)
    );
    println!(
        "on time (closed on time / (closed + open overdue)) {:>6.2} %",
        percent(&figures.on_time_including_open_overdue)
    );
    println!(
        "closed within 1 day                               {:>6.2} %",
        percent(&figures.closed_within_one_day)
    );
    println!(
        "closed within 3 days                              {:>6.2} %",
        percent(&figures.closed_within_three_days)
    );
    println!(
        "satisfaction                                      {:>6.2} %",
        percent(&figures.satisfaction)
    );
    println!(
        "re-handling                                       {:>6.2} %",
        percent(&figures.rehandling)
    );

    let alerts = stats
        .list_spike_alerts(pb::ListSpikeAlertsRequest {
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner()
        .alerts;
    println!("\nspike alerts:");
    for alert in &alerts {
        if let Some(h) = &alert.hotspot {
            println!(
                "  {} {} {}: {} cases against a usual {:.1}",
                alert.window_end.as_ref().map_or(0, |t| t.seconds),
                h.key,
                h.name,
                h.count,
                h.baseline_mean
            );
        }
    }
    let typhoon_seen = truth.typhoon_keys.iter().all(|key| {
        alerts
            .iter()
            .filter_map(|a| a.hotspot.as_ref())
            .any(|h| &h.key == key)
    });
    println!(
        "typhoon spike alerted: {}",
        if typhoon_seen { "yes" } else { "NO" }
    );

    app.stop().await?;
    if mismatches > 0 || !typhoon_seen {
        std::process::exit(1);
    }
    Ok(())
}

type Interceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Stats = StatsServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Interceptor>,
>;

async fn auditor_stats(channel: tonic::transport::Channel) -> anyhow::Result<Stats> {
    let session = AuthServiceClient::new(channel.clone())
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                subject: "replay-auditor".to_owned(),
                role: pb::Role::Auditor.into(),
                unit_id: "centre".to_owned(),
                display_name: "replay".to_owned(),
            })),
        })
        .await?
        .into_inner();
    let token: tonic::metadata::MetadataValue<_> = format!(
        "Bearer {}",
        session.session.context("no session")?.access_token
    )
    .parse()?;
    let interceptor: Interceptor = Box::new(move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", token.clone());
        Ok(request)
    });
    Ok(StatsServiceClient::with_interceptor(channel, interceptor))
}

/// The replayed period, with its last second.
fn period(plan: &YearPlan) -> pb::StatsScope {
    pb::StatsScope {
        from: Some(prost_types::Timestamp {
            seconds: plan.start.timestamp(),
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: (plan.end() + Duration::seconds(1)).timestamp(),
            nanos: 0,
        }),
        ..Default::default()
    }
}
