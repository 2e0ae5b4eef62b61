//! Storage behind one trait, with an implementation per engine: PostgreSQL
//! in production, SQLite as the embedded default. Both share their SQL
//! (see `sql.rs`); each engine module supplies its connection set-up, how a
//! write transaction begins and how times are stored.

pub mod abuse;
pub mod evidence;
pub mod identity;
mod migrations;
pub mod notifications;
pub mod personal_data;
pub mod postgres;
pub mod rewards;
mod sql;
mod sql_abuse;
mod sql_cases;
mod sql_evidence;
mod sql_identity;
mod sql_notifications;
mod sql_personal_data;
mod sql_rewards;
mod sql_staff;
mod sql_stats;
pub mod sqlite;
pub mod staff;
pub mod stats;

use std::sync::Arc;

use anyhow::bail;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use chrono::NaiveDate;

use crate::domain::account::{Account, AccountId, ExternalIdentity};
use crate::domain::calendar::DayKind;
use crate::domain::case::Case;
use crate::domain::complaint::{
    Complaint, ComplaintChange, ComplaintEvent, ComplaintId, ComplaintStatus, EventDraft,
    NewComplaint, RequestId,
};
use crate::domain::directory::Unit;
use crate::domain::geo::GeoPoint;

pub use evidence::EvidenceStore;
pub use identity::IdentityStore;
pub use personal_data::PersonalDataStore;

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

/// Where to look for complaints a new one may repeat.
#[derive(Debug, Clone)]
pub struct DuplicateQuery {
    pub category_code: String,
    pub citizen_id: AccountId,
    /// South-west and north-east corners, when the new complaint has a point.
    pub area: Option<(GeoPoint, GeoPoint)>,
    pub since: DateTime<Utc>,
    pub limit: u32,
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
    /// A named photo was attached elsewhere or retired meanwhile; nothing
    /// was written.
    PhotosUnavailable,
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

/// What a staff action's write came to.
#[derive(Debug, Clone)]
pub enum StaffOutcome {
    /// The events written, copies into merged complaints included.
    Applied { events: Vec<ComplaintEvent> },
    /// The actor already sent this request id: nothing was done again.
    Replayed(ComplaintId),
    /// The case changed since the version the caller saw.
    Stale,
}

/// What a supervision mark does besides its event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkEffect {
    pub set_overdue: bool,
    pub escalation_level: Option<u32>,
    /// Closes a resolved case nobody rated.
    pub close: bool,
}

/// A page of a unit's queue.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    /// Only cases assigned to one of these units; `None` for every case.
    pub units: Option<Vec<String>>,
    pub statuses: Vec<ComplaintStatus>,
    pub overdue_only: bool,
    pub due_before: Option<DateTime<Utc>>,
    pub category_code: Option<String>,
    pub offset: u32,
    pub limit: u32,
}

/// Storage of the staff side: cases, directory and calendar.
#[async_trait]
pub trait CaseStore: Send + Sync + 'static {
    async fn case(&self, id: ComplaintId) -> anyhow::Result<Option<Case>>;

    /// The complaints with their assignments, in the same order.
    async fn with_assignments(&self, complaints: Vec<Complaint>) -> anyhow::Result<Vec<Case>>;

    /// Applies a staff action once per (actor, request id), and only if the
    /// case is still at the change's expected version.
    async fn apply_staff_change(
        &self,
        actor: AccountId,
        request_id: &RequestId,
        change: &ComplaintChange,
    ) -> anyhow::Result<StaffOutcome>;

    /// The complaint an earlier staff request acted on.
    async fn staff_request(
        &self,
        actor: AccountId,
        request_id: &RequestId,
    ) -> anyhow::Result<Option<ComplaintId>>;

    /// Fires a supervision mark once: records it, applies its effect and
    /// appends its event, unless the mark was already fired or the case is
    /// no longer in `expected_status`.
    async fn fire_mark(
        &self,
        id: ComplaintId,
        mark: &str,
        expected_status: ComplaintStatus,
        effect: &MarkEffect,
        event: &EventDraft,
    ) -> anyhow::Result<Option<Vec<ComplaintEvent>>>;

    /// Cases the supervision loop watches: being handled with a deadline,
    /// or resolved and waiting for a rating.
    async fn supervised_cases(&self) -> anyhow::Result<Vec<Complaint>>;

    async fn queue(&self, query: &QueueQuery) -> anyhow::Result<Vec<Complaint>>;

    /// Open complaints filed since `query.since` that could repeat a new
    /// one: same category, same citizen, or inside the box; newest first.
    async fn duplicate_candidates(&self, query: &DuplicateQuery) -> anyhow::Result<Vec<Complaint>>;

    async fn units(&self) -> anyhow::Result<Vec<Unit>>;

    /// Inserts or updates units, all or none.
    async fn save_units(&self, units: &[Unit], now: DateTime<Utc>) -> anyhow::Result<()>;

    /// The loaded calendar: official years and their exceptions.
    async fn calendar(&self) -> anyhow::Result<(Vec<i32>, Vec<(NaiveDate, DayKind)>)>;

    /// Replaces one year's notice.
    async fn save_calendar_year(
        &self,
        year: i32,
        exceptions: &[(NaiveDate, DayKind)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Moves provisional deadlines to the ones a newly loaded calendar
    /// gives: (complaint, new deadline, still provisional).
    async fn update_deadlines(
        &self,
        updates: &[(ComplaintId, DateTime<Utc>, bool)],
    ) -> anyhow::Result<()>;

    /// Changes a staff account's role, unit and name; `None` when no staff
    /// account has the id.
    async fn update_staff(
        &self,
        account: &Account,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Account>>;

    /// Staff accounts, optionally of one unit.
    async fn staff_accounts(&self, unit_id: Option<&str>) -> anyhow::Result<Vec<Account>>;
}

#[async_trait]
pub trait Store:
    CaseStore
    + staff::StaffStore
    + IdentityStore
    + abuse::AbuseStore
    + EvidenceStore
    + PersonalDataStore
    + notifications::NotificationStore
    + rewards::RewardStore
    + rewards::PayoutStore
    + stats::StatsStore
    + Send
    + Sync
    + 'static
{
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

    /// Whether a sign-in session (refresh-token family) was revoked.
    async fn session_revoked(&self, family_id: &str) -> anyhow::Result<bool>;

    /// Revokes the family of a refresh token; returns the family's id, or
    /// `None` when no session matched.
    async fn revoke_session_family(
        &self,
        presented_hash: &[u8],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<String>>;

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

    /// Applies a change and appends its events, with the next sequence
    /// numbers, in one transaction; the returned events include copies
    /// written into complaints merged into this one. `None` when the
    /// complaint's version is no longer the one the change was computed from.
    async fn apply_change(
        &self,
        change: &ComplaintChange,
    ) -> anyhow::Result<Option<(Complaint, Vec<ComplaintEvent>)>>;

    /// A citizen's feed: citizen-visible events of all their complaints
    /// with a feed number above `after`, oldest first.
    async fn citizen_events_after(
        &self,
        citizen: AccountId,
        after: u64,
        limit: u32,
    ) -> anyhow::Result<Vec<ComplaintEvent>>;

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
