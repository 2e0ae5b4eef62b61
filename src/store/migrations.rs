//! The schema migrations, compiled into the binary so that a deployed server
//! needs no files beside it.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::Engine;

/// (version, description, PostgreSQL SQL, SQLite SQL)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial schema",
        include_str!("../../migrations/postgres/0001_initial.sql"),
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "case handling",
        include_str!("../../migrations/postgres/0002_case_handling.sql"),
        include_str!("../../migrations/sqlite/0002_case_handling.sql"),
    ),
    (
        3,
        "citizen feed",
        include_str!("../../migrations/postgres/0003_citizen_feed.sql"),
        include_str!("../../migrations/sqlite/0003_citizen_feed.sql"),
    ),
    (
        4,
        "citizen identity",
        include_str!("../../migrations/postgres/0004_citizen_identity.sql"),
        include_str!("../../migrations/sqlite/0004_citizen_identity.sql"),
    ),
    (
        5,
        "staff accounts and audit log",
        include_str!("../../migrations/postgres/0005_staff_accounts_audit.sql"),
        include_str!("../../migrations/sqlite/0005_staff_accounts_audit.sql"),
    ),
    (
        6,
        "block lists",
        include_str!("../../migrations/postgres/0006_abuse.sql"),
        include_str!("../../migrations/sqlite/0006_abuse.sql"),
    ),
    (
        7,
        "personal data",
        include_str!("../../migrations/postgres/0007_personal_data.sql"),
        include_str!("../../migrations/sqlite/0007_personal_data.sql"),
    ),
    (
        8,
        "red envelopes",
        include_str!("../../migrations/postgres/0008_red_envelopes.sql"),
        include_str!("../../migrations/sqlite/0008_red_envelopes.sql"),
    ),
    (
        9,
        "notifications",
        include_str!("../../migrations/postgres/0009_notifications.sql"),
        include_str!("../../migrations/sqlite/0009_notifications.sql"),
    ),
    (
        10,
        "evidence",
        include_str!("../../migrations/postgres/0010_evidence.sql"),
        include_str!("../../migrations/sqlite/0010_evidence.sql"),
    ),
    (
        11,
        "statistics and instant answers",
        include_str!("../../migrations/postgres/0011_stats.sql"),
        include_str!("../../migrations/sqlite/0011_stats.sql"),
    ),
];

pub fn migrator(engine: Engine) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, postgres, sqlite)| {
            let sql = match engine {
                Engine::Postgres => postgres,
                Engine::Sqlite => sqlite,
            };
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
