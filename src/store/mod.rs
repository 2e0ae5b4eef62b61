//! Storage behind one trait, with an implementation per engine: PostgreSQL
//! in production, SQLite as the embedded default. Both share their SQL
//! (see `sql.rs`); each engine module supplies its connection set-up, how a
//! write transaction begins and how times are stored.

mod migrations;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use anyhow::bail;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::{Account, AccountId, ExternalIdentity};
use crate::domain::complaint::{
    Complaint, ComplaintChange, ComplaintEvent, ComplaintId, ComplaintStatus, NewComplaint,
    RequestId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// A refresh token about to be stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub family_id: String,
    pub account_id: AccountId,
    pub refresh_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The refresh token that replaces a presented one.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRotation {
    Rotated {
        account: Account,
        family_id: String,
    },
    /// Unknown, expired, revoked, or already rotated. A rotated token shown
    /// again means it was copied, so its whole family is revoked.
    Refused,
}

#[derive(Debug, Clone)]
pub enum Filing {
    Created {
        complaint: Complaint,
        event: ComplaintEvent,
    },
    /// The citizen already filed with this request id.
    Existing {
        complaint: Complaint,
        fingerprint: Vec<u8>,
    },
}

/// One page of a citizen's complaints, newest first.
#[derive(Debug, Clone)]
pub struct CitizenQuery {
    pub citizen_id: AccountId,
    pub status: Option<ComplaintStatus>,
    /// Only complaints older than this one (the page cursor).
    pub before: Option<ComplaintId>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn engine(&self) -> Engine;

    /// Fails when the database cannot be reached.
    async fn ping(&self) -> anyhow::Result<()>;

    /// Finds the account of an identity, creating it on first sign-in.
    async fn upsert_account(
        &self,
        identity: &ExternalIdentity,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Account>;

    async fn create_session(&self, session: &NewSession) -> anyhow::Result<()>;

    /// Trades a refresh token (by hash) for `next`, in the same family.
    async fn rotate_session(
        &self,
        presented_hash: &[u8],
        next: &RefreshToken,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SessionRotation>;

    /// Revokes the family of a refresh token; false when none matched.
    async fn revoke_session_family(
        &self,
        presented_hash: &[u8],
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Writes a complaint and its first event in one transaction, or finds
    /// the complaint an earlier attempt with the same request id created.
    async fn file_complaint(&self, complaint: &NewComplaint) -> anyhow::Result<Filing>;

    /// The complaint a citizen filed with a request id, with the
    /// fingerprint of that request (always `Filing::Existing`).
    async fn find_filing(
        &self,
        citizen_id: AccountId,
        request_id: &RequestId,
    ) -> anyhow::Result<Option<Filing>>;

    async fn complaint(&self, id: ComplaintId) -> anyhow::Result<Option<Complaint>>;

    async fn citizen_complaints(&self, query: &CitizenQuery) -> anyhow::Result<Vec<Complaint>>;

    /// Applies a change and appends its event, with the next sequence
    /// number, in one transaction. `None` when the complaint's version is no
    /// longer the one the change was computed from.
    async fn apply_change(
        &self,
        change: &ComplaintChange,
    ) -> anyhow::Result<Option<(Complaint, ComplaintEvent)>>;

    /// Events with a sequence number above `after`, oldest first.
    async fn events_after(
        &self,
        id: ComplaintId,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<ComplaintEvent>>;
}

/// Connects to the database a URL names and brings its schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(url, max_connections).await?,
        ))
    } else {
        bail!("the database URL must start with postgres:// or sqlite:")
    }
}
