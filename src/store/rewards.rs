//! Storage of red envelopes: the policy, the decisions, the budgets, the
//! double-entry ledger and the transfer bills. Grants themselves are
//! written by `CaseStore::apply_staff_change`, in the acceptance's own
//! transaction, when the change carries a `RewardEffect`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::audit::AuditDraft;
use crate::domain::complaint::ComplaintId;
use crate::domain::red_envelope::{Envelope, EnvelopeBalance, EnvelopeState, RewardPolicy};

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
