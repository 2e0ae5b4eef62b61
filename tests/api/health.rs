use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{Engine, TestApp, admin_database_url};

async fn status(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel().await)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn the_embedded_server_reports_serving() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    assert_eq!(status(&app, "").await, ServingStatus::Serving);
    assert_eq!(
        status(&app, "huying.v1.CitizenService").await,
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn health_turns_not_serving_when_the_database_goes_away() {
    use sqlx::Connection;

    let app = TestApp::spawn(Engine::Postgres).await;
    assert_eq!(
        status(&app, "huying.v1.CitizenService").await,
        ServingStatus::Serving
    );

    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&admin_database_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    assert!(!app.app.as_ref().unwrap().probe_health().await);
    assert_eq!(status(&app, "").await, ServingStatus::NotServing);
    assert_eq!(
        status(&app, "huying.v1.CitizenService").await,
        ServingStatus::NotServing
    );
}
