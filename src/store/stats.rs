//! Storage of the district's figures and of instant answers. Counting is
//! done by the database (one pass over a period's cases); what the counts
//! mean is `domain::stats`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::complaint::ComplaintId;
use crate::domain::knowledge::{EntryDraft, KnowledgeEntry, MatchResult, Offer, Unanswered};
use crate::domain::stats::{CaseCounts, CaseScope, HotspotDimension, SpikeAlert, UnitCounts};

/// One case as the export writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub id: ComplaintId,
    pub citizen_id: AccountId,
    pub kind: String,
    pub channel: String,
    pub status: String,
    pub category_code: String,
    pub text: String,
    pub address: Option<String>,
    pub contact_phone_cipher: Option<String>,
    pub contact_phone_masked: Option<String>,
    pub lead_unit_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolved_on_time: Option<bool>,
    pub rating: Option<String>,
    pub rework_round: u32,
    pub merged_into: Option<ComplaintId>,
}

/// How many cases of one key were received in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCount {
    /// 0 for the window ending at `now`, 1 for the one before, …
    pub window: u32,
    /// A second-level category code, or for the area dimension the unit
    /// leading or owning the case (`None` before any unit has it).
    pub key: Option<String>,
    pub count: u64,
}

#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
    /// Counts the scope's cases as they stand at `as_of`.
    async fn case_counts(
        &self,
        scope: &CaseScope,
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<CaseCounts>;

    /// Returns and granted extensions per unit among the scope's cases.
    async fn unit_counts(&self, scope: &CaseScope) -> anyhow::Result<Vec<UnitCounts>>;

    /// Cases received in each of `windows` windows of `window` ending at
    /// `now` (a window holds the times after its start up to its end), by
    /// second-level category or by unit.
    async fn window_counts(
        &self,
        dimension: HotspotDimension,
        now: DateTime<Utc>,
        window: chrono::Duration,
        windows: u32,
    ) -> anyhow::Result<Vec<WindowCount>>;

    /// A page of the scope's cases in id order, after `after`.
    async fn export_rows(
        &self,
        scope: &CaseScope,
        after: Option<ComplaintId>,
        limit: u32,
    ) -> anyhow::Result<Vec<ExportRow>>;

    /// Writes one audit record on its own (an export's, before its rows).
    async fn record_audit(&self, audit: &crate::domain::audit::AuditDraft) -> anyhow::Result<()>;

    /// Records a spike unless its key already has one for `alert_day`;
    /// `true` when this call recorded it.
    async fn record_spike(&self, alert: &SpikeAlert, alert_day: &str) -> anyhow::Result<bool>;

    /// Newest first, ids below `before`.
    async fn spike_alerts(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<SpikeAlert>>;

    async fn save_knowledge_entry(
        &self,
        id: Option<i64>,
        draft: &EntryDraft,
        by: AccountId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<KnowledgeEntry>>;

    async fn retire_knowledge_entry(
        &self,
        id: i64,
        by: AccountId,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<KnowledgeEntry>>;

    /// Entries in id order after `after`; retired ones only when asked.
    async fn knowledge_entries(
        &self,
        include_retired: bool,
        after: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<KnowledgeEntry>>;

    /// Records what matching offered a consultation; a second call for the
    /// same consultation keeps the first record and returns its offers.
    async fn record_match(
        &self,
        complaint: ComplaintId,
        result: &MatchResult,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Offer>>;

    /// The offers recorded for a consultation, if it was matched.
    async fn recorded_offers(&self, complaint: ComplaintId) -> anyhow::Result<Option<Vec<Offer>>>;

    /// Marks the answer the citizen accepted.
    async fn accept_offer(&self, complaint: ComplaintId, entry_id: i64) -> anyhow::Result<()>;

    /// Consultations received in `[from, to)` that were offered nothing,
    /// newest first.
    async fn unanswered_consultations(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<Unanswered>>;
}
