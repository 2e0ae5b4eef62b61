//! SQLite, the embedded default: one file, nothing to install.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Engine, migrations};

const ENGINE: Engine = Engine::Sqlite;

/// Microseconds since the Unix epoch, UTC.
type DbTime = i64;

fn to_db(at: DateTime<Utc>) -> DbTime {
    at.timestamp_micros()
}

fn from_db(micros: DbTime) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).context("a stored time is out of range")
}

/// SQLite's default deferred BEGIN takes the write lock only at the first
/// write; if another connection committed in between, the upgrade fails with
/// SQLITE_BUSY at once. BEGIN IMMEDIATE takes the lock up front, so writers
/// queue behind the busy timeout instead.
async fn begin_write(pool: &SqlitePool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A read that must see one moment: in WAL mode a deferred transaction
/// reads one snapshot from its first statement to its end.
async fn begin_snapshot(
    pool: &SqlitePool,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN DEFERRED").await
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .context("Bad SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .context("Failed to open the SQLite database")?;
        migrations::migrator(ENGINE)
            .run(&pool)
            .await
            .context("Failed to migrate the SQLite schema")?;
        Ok(SqliteStore { pool })
    }
}

super::sql::shared_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_cases::case_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_staff::staff_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_identity::identity_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_abuse::abuse_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_personal_data::personal_data_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_evidence::evidence_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_notifications::notification_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_rewards::reward_store_impl!(SqliteStore, sqlx::Sqlite);
super::sql_stats::stats_store_impl!(SqliteStore, sqlx::Sqlite);
