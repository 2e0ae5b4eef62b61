//! Storage of notifications: the outbox rows written with their events
//! (see `insert_event` in `sql.rs`), leases that give each row to one
//! sender at a time, every attempt and its outcome, citizens' inboxes,
//! WeChat subscription grants and channel preferences, and the counts the
//! notification rates come from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::complaint::{Complaint, ComplaintEvent, ComplaintId};
use crate::domain::notification::{
    AttemptOutcome, DeliveryChannel, NotificationKind, NotificationPreferences, NotificationState,
    PastAttempt, RateCounts, Recipient,
};

/// A notification a sender holds the lease of, with what it needs to
/// render and address it.
#[derive(Debug, Clone)]
pub struct ClaimedNotification {
    pub id: i64,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub event: ComplaintEvent,
    pub complaint: Complaint,
    /// The contact phone given with the complaint, encrypted.
    pub contact_phone_cipher: Option<String>,
    /// Earlier attempts, oldest first.
    pub attempts: Vec<PastAttempt>,
}

/// How an attempt ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub outcome: AttemptOutcome,
    /// The channel's error code or reason; never personal data.
    pub detail: Option<String>,
    /// The channel's id of the message, for delivery reports.
    pub provider_ref: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// A notification's final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub state: NotificationState,
    pub channel: Option<DeliveryChannel>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// What happens to the notification after an attempt is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// The sender goes on with it (the next channel) under its lease.
    Continue,
    /// Tried again no earlier than this, by any sender.
    RetryAt(DateTime<Utc>),
    Settle(Settlement),
}

/// One entry of a citizen's inbox.
#[derive(Debug, Clone)]
pub struct InboxEntry {
    pub id: i64,
    pub kind: NotificationKind,
    pub event: ComplaintEvent,
    pub complaint_created_at: DateTime<Utc>,
    pub deadline: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// One stored attempt, as staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub channel: DeliveryChannel,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<AttemptOutcome>,
    pub detail: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One notification of a case with its attempts.
#[derive(Debug, Clone)]
pub struct NotificationRecord {
    pub id: i64,
    pub complaint_id: ComplaintId,
    pub sequence: u64,
    pub kind: NotificationKind,
    pub recipient: Recipient,
    pub state: NotificationState,
    pub channel: Option<DeliveryChannel>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptRecord>,
}

/// Attempts on one channel in a period, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    pub attempts: u64,
    pub sent: u64,
    pub delivered: u64,
    pub transient: u64,
    pub permanent: u64,
    pub unknown: u64,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Gives up to `limit` due notifications (pending, due by `now`, and
    /// not leased to a live sender) to `worker` until `lease_until`. On
    /// PostgreSQL rows another sender is claiming are skipped, not waited
    /// for.
    async fn claim_notifications(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<ClaimedNotification>>;

    /// Records that `worker` is about to call `channel`, if it still holds
    /// the notification's lease; the attempt's id, else `None`.
    async fn begin_attempt(
        &self,
        notification: i64,
        worker: &str,
        channel: DeliveryChannel,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<i64>>;

    /// Records an attempt's outcome and what follows, in one transaction.
    async fn finish_attempt(
        &self,
        attempt: i64,
        worker: &str,
        result: &AttemptResult,
        then: &AfterAttempt,
    ) -> anyhow::Result<()>;

    /// Gives a notification back, to be taken again from `at` (quiet hours).
    async fn release_notification(
        &self,
        notification: i64,
        worker: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Ends a notification without a further attempt.
    async fn settle_notification(
        &self,
        notification: i64,
        worker: &str,
        settlement: &Settlement,
    ) -> anyhow::Result<()>;

    /// Marks the attempt a channel knows by `provider_ref` delivered (or
    /// not); `false` when no attempt has that reference.
    async fn record_delivery(
        &self,
        channel: DeliveryChannel,
        provider_ref: &str,
        delivered: bool,
        status: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// A citizen's inbox, newest first, below `before` (a notification id).
    async fn inbox(
        &self,
        citizen: AccountId,
        unread_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<InboxEntry>>;

    async fn unread_notifications(&self, citizen: AccountId) -> anyhow::Result<u64>;

    /// Marks the citizen's notifications read: the listed ones, or all of
    /// them with `None`. Others' ids are ignored. Returns how many changed.
    async fn mark_notifications_read(
        &self,
        citizen: AccountId,
        ids: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64>;

    /// Records one-time grants (one per template id) a citizen reported;
    /// a retried report (same request id) adds nothing.
    async fn add_subscription_grants(
        &self,
        citizen: AccountId,
        app_id: &str,
        request_id: &str,
        template_ids: &[String],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Takes a grant for one message: spends the oldest one-time grant, or
    /// for a long-term subscription uses its grant without spending it.
    /// `None` when the citizen has none left.
    async fn spend_subscription_grant(
        &self,
        citizen: AccountId,
        app_id: &str,
        template_id: &str,
        long_term: bool,
        notification: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<i64>>;

    /// Gives back a grant a message did not use (WeChat refused the call).
    async fn restore_subscription_grant(&self, grant: i64) -> anyhow::Result<()>;

    /// The citizen turned the subscription off: every unspent grant of the
    /// template is void.
    async fn revoke_subscription_grants(
        &self,
        citizen: AccountId,
        app_id: &str,
        template_id: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Unspent grants per template id.
    async fn subscription_balances(
        &self,
        citizen: AccountId,
        app_id: &str,
    ) -> anyhow::Result<Vec<(String, u64)>>;

    async fn notification_preferences(
        &self,
        citizen: AccountId,
    ) -> anyhow::Result<NotificationPreferences>;

    async fn save_notification_preferences(
        &self,
        citizen: AccountId,
        preferences: NotificationPreferences,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Per kind, the notifications created in `[since, until)`, counted
    /// from their attempts: sent means an attempt was accepted.
    async fn notification_counts(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(NotificationKind, RateCounts)>>;

    /// Per channel, the attempts on notifications created in the period.
    async fn channel_counts(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(DeliveryChannel, ChannelCounts)>>;

    /// Every notification of a complaint with its attempts, oldest first.
    async fn case_notifications(
        &self,
        complaint: ComplaintId,
    ) -> anyhow::Result<Vec<NotificationRecord>>;
}
