//! PostgreSQL, the production engine.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Engine, migrations};

const ENGINE: Engine = Engine::Postgres;

type DbTime = DateTime<Utc>;

fn to_db(at: DateTime<Utc>) -> DbTime {
    at
}

fn from_db(at: DbTime) -> anyhow::Result<DateTime<Utc>> {
    Ok(at)
}

/// PostgreSQL's row locks and READ COMMITTED re-checks make a plain BEGIN
/// safe for read-then-write transactions that guard their updates.
async fn begin_write(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    pool.begin().await
}

/// A read that must see one moment: every statement in it reads the same
/// snapshot.
async fn begin_snapshot(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .context("Failed to connect to PostgreSQL")?;
        migrations::migrator(ENGINE)
            .run(&pool)
            .await
            .context("Failed to migrate the PostgreSQL schema")?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::sql::shared_store_impl!(PgStore, sqlx::Postgres);
super::sql_cases::case_store_impl!(PgStore, sqlx::Postgres);
super::sql_staff::staff_store_impl!(PgStore, sqlx::Postgres);
super::sql_identity::identity_store_impl!(PgStore, sqlx::Postgres);
super::sql_abuse::abuse_store_impl!(PgStore, sqlx::Postgres);
super::sql_personal_data::personal_data_store_impl!(PgStore, sqlx::Postgres);
super::sql_evidence::evidence_store_impl!(PgStore, sqlx::Postgres);
super::sql_notifications::notification_store_impl!(PgStore, sqlx::Postgres);
super::sql_rewards::reward_store_impl!(PgStore, sqlx::Postgres);
super::sql_stats::stats_store_impl!(PgStore, sqlx::Postgres);
