//! Storage of red envelopes: the policy, the decisions, the budgets, the
//! double-entry ledger and the transfer bills. Grants themselves are
//! written by `CaseStore::apply_staff_change`, in the acceptance's own
//! transaction, when the change carries a `RewardEffect`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::audit::AuditDraft;
use crate::domain::complaint::ComplaintId;
use crate::domain::red_envelope::{
    Bill, BillState, Envelope, EnvelopeBalance, EnvelopeState, RewardPolicy,
};

/// A page of envelopes for staff, newest first.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeQuery {
    pub state: Option<EnvelopeState>,
    pub citizen_id: Option<AccountId>,
    pub complaint_id: Option<ComplaintId>,
    /// Only envelopes decided on this district day ("2026-12-03") or in
    /// this month ("2026-12").
    pub day: Option<String>,
    pub month: Option<String>,
    /// Only envelopes flagged for the auditor.
    pub flagged_only: bool,
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Sums over the envelopes of one period, in fen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodTotals {
    pub granted_count: u64,
    pub granted_fen: i64,
    pub paid_fen: i64,
    pub pending_fen: i64,
    pub cancelled_fen: i64,
    pub expired_fen: i64,
    pub failed_fen: i64,
    pub not_granted_count: u64,
    /// What the budget row says is committed (granted minus released).
    pub committed_fen: i64,
}

/// What the ledger holds, for the reconciliation report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerState {
    /// Entries whose postings do not sum to zero.
    pub unbalanced_entries: Vec<i64>,
    pub entry_count: u64,
    pub posting_count: u64,
    /// Balances of the three accounts over every posting.
    pub budget_fen: i64,
    pub owed_fen: i64,
    pub paid_out_fen: i64,
    /// What the monthly budget rows say is committed, over all months.
    pub committed_fen: i64,
    /// Every envelope with the sums of its postings.
    pub envelopes: Vec<EnvelopeBalance>,
}

/// What withdrawing an envelope came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// The money went back to the budget.
    Cancelled,
    /// Already paid, or a transfer was open: flagged for the auditor.
    Flagged,
    /// Nothing to withdraw: no envelope, or none was granted, or it is
    /// already final.
    Nothing,
}

#[async_trait]
pub trait RewardStore: Send + Sync + 'static {
    async fn reward_policy(&self) -> anyhow::Result<RewardPolicy>;

    /// Replaces the policy and writes its audit record, in one transaction.
    async fn save_reward_policy(
        &self,
        policy: &RewardPolicy,
        audit: &AuditDraft,
    ) -> anyhow::Result<()>;

    async fn envelope(&self, id: i64) -> anyhow::Result<Option<Envelope>>;

    async fn envelope_of_complaint(&self, id: ComplaintId) -> anyhow::Result<Option<Envelope>>;

    async fn envelopes(&self, query: &EnvelopeQuery) -> anyhow::Result<Vec<Envelope>>;

    /// Totals of a day ("2026-12-03") or a month ("2026-12").
    async fn period_totals(&self, day: Option<&str>, month: &str) -> anyhow::Result<PeriodTotals>;

    async fn ledger_state(&self) -> anyhow::Result<LedgerState>;

    /// Cancels an unpaid envelope (money back to the budget) or flags a
    /// paid one, with its audit record, in one transaction.
    async fn withdraw_envelope(
        &self,
        complaint: ComplaintId,
        reason: &str,
        audit: &AuditDraft,
    ) -> anyhow::Result<Withdrawal>;

    /// Expires granted envelopes nobody claimed by `now`; how many.
    async fn expire_unclaimed(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// Where a claim starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStart {
    /// The envelope's open transfer attempt: just created, or an earlier
    /// one still open.
    Open { envelope: Envelope, bill: Bill },
    /// Nothing to transfer: paid, or final, or not granted.
    Settled(Envelope),
}

/// What a provider said about an open bill, short of settling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillUpdate {
    pub state: BillState,
    pub transfer_bill_no: Option<String>,
    pub package_info: Option<String>,
}

/// How a bill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Paid,
    /// Closed without paying; the envelope may be claimed again while its
    /// claim window lasts and attempts remain.
    Closed {
        reason: String,
    },
}

#[async_trait]
pub trait PayoutStore: Send + Sync + 'static {
    /// Finds the citizen's envelope and its open bill, creating the next
    /// transfer attempt for a granted one. `None` when the citizen has no
    /// envelope of that id. An envelope past its claim window expires here.
    async fn open_claim(
        &self,
        envelope_id: i64,
        citizen: AccountId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<ClaimStart>>;

    /// Takes a bill for one worker or claim until `until`; false when
    /// another holds it.
    async fn lease_bill(
        &self,
        out_bill_no: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    async fn release_bill(&self, out_bill_no: &str, owner: &str) -> anyhow::Result<()>;

    /// Takes up to `limit` open bills nobody holds, untouched since
    /// `idle_since`, for one reconciliation pass.
    async fn lease_open_bills(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        idle_since: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<Bill>>;

    async fn bill(&self, out_bill_no: &str) -> anyhow::Result<Option<Bill>>;

    async fn update_bill(
        &self,
        out_bill_no: &str,
        update: &BillUpdate,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Ends an open bill and moves its envelope and money accordingly, in
    /// one transaction; a bill already ended is left as it is.
    async fn settle_bill(
        &self,
        out_bill_no: &str,
        settlement: &Settlement,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Envelope>>;

    /// Records a provider notification's id; false when it was seen before.
    async fn record_notification(&self, id: &str, now: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Every bill of an envelope, oldest first.
    async fn bills_of(&self, envelope_id: i64) -> anyhow::Result<Vec<Bill>>;
}
