//! Red envelopes: the offer an acceptance carries, the reward policy, what
//! staff read (envelopes, totals, the reconciliation report), withdrawals
//! of fraudulent complaints' envelopes, and the citizen's own list.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, NaiveDate, Utc};

use super::Services;
use super::amount::AmountDrawer;
use crate::domain::account::{AccountId, Principal};
use crate::domain::audit::{AuditAction, AuditDraft};
use crate::domain::complaint::{Complaint, ComplaintId};
use crate::domain::error::{DomainError, Violations};
use crate::domain::red_envelope::{
    Envelope, EnvelopeOffer, EnvelopeState, RewardEffect, RewardPolicy,
};
use crate::store::rewards::{EnvelopeQuery, PeriodTotals, Withdrawal};

/// What the reward use cases depend on besides the store.
pub struct Rewards {
    pub drawer: Arc<dyn AmountDrawer>,
    /// `None` when this server pays no envelopes (claims are refused).
    pub payout: Option<Arc<dyn crate::payout::PayoutProvider>>,
    /// Names this replica in the leases it takes on transfer bills.
    pub worker_id: String,
}

/// Filters of a staff listing as the caller sent them; empty means unset.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeFilter {
    pub state: Option<EnvelopeState>,
    pub citizen_account_id: String,
    pub complaint_id: String,
    pub day: String,
    pub month: String,
}

/// A period's totals with its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetTotals {
    pub period: String,
    pub totals: PeriodTotals,
    pub budget_fen: i64,
}

impl BudgetTotals {
    pub fn budget_left_fen(&self) -> i64 {
        (self.budget_fen - self.totals.committed_fen).max(0)
    }
}

/// What the reconciliation found.
#[derive(Debug, Clone, Default)]
pub struct ReconciliationReport {
    pub ledger: crate::store::rewards::LedgerState,
    pub discrepancies: Vec<String>,
    pub flagged: Vec<Envelope>,
}

impl ReconciliationReport {
    pub fn balanced(&self) -> bool {
        self.ledger.unbalanced_entries.is_empty() && self.discrepancies.is_empty()
    }
}

impl Services {
    /// The envelope offer an acceptance for filing carries: an amount
    /// drawn now from the policy's range, and whether the author may not
    /// be rewarded.
    pub async fn red_envelope_offer(
        &self,
        complaint: &Complaint,
    ) -> Result<RewardEffect, DomainError> {
        let policy = self.store.reward_policy().await?;
        let amount_fen = self.rewards.drawer.draw(policy.range);
        Ok(RewardEffect::Offer(EnvelopeOffer {
            amount_fen,
            author_blocked: self.reward_author_blocked(complaint.citizen_id).await?,
        }))
    }

    /// Whether the author is on the block list and earns no envelope (the
    /// grant records `author_blocked` as its reason).
    async fn reward_author_blocked(&self, citizen: AccountId) -> Result<bool, DomainError> {
        self.citizen_blocked(citizen).await
    }

    pub async fn reward_policy(&self) -> Result<RewardPolicy, DomainError> {
        Ok(self.store.reward_policy().await?)
    }

    /// Replaces the policy, with an audit record naming the old and new.
    pub async fn update_reward_policy(
        &self,
        staff: &Principal,
        proposed: RewardPolicy,
        reason: &str,
    ) -> Result<RewardPolicy, DomainError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(DomainError::invalid(
                "reason",
                "must be 1 to 500 characters",
            ));
        }
        let policy = RewardPolicy::parse(proposed)?;
        let before = self.store.reward_policy().await?;

        let audit = AuditDraft::by(
            staff,
            AuditAction::RewardPolicyChanged,
            "reward_policy",
            self.clock.now(),
        )
        .because(reason)
        .detail(format!("{} -> {}", describe(&before), describe(&policy)));
        self.store.save_reward_policy(&policy, &audit).await?;
        tracing::info!(
            reward.min_fen = policy.range.min_fen,
            reward.max_fen = policy.range.max_fen,
            "reward policy changed"
        );
        Ok(policy)
    }

    /// One page of envelopes for staff, newest first.
    pub async fn list_red_envelopes(
        &self,
        filter: EnvelopeFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Envelope>, Option<String>), DomainError> {
        let limit = super::complaints::page_limit(page_size)?;
        let mut query = parse_filter(filter, page_token)?;
        query.limit = limit + 1;
        let envelopes = self.store.envelopes(&query).await?;
        Ok(page(envelopes, limit))
    }

    /// A citizen's own envelopes, newest first.
    pub async fn list_my_red_envelopes(
        &self,
        citizen: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Envelope>, Option<String>), DomainError> {
        let limit = super::complaints::page_limit(page_size)?;
        let before_id = decode_cursor(page_token)
            .map_err(|_| DomainError::invalid("page_token", "is not a token this server issued"))?;
        let query = EnvelopeQuery {
            citizen_id: Some(citizen.account_id),
            before_id,
            limit: limit + 1,
            ..EnvelopeQuery::default()
        };
        let envelopes = self.store.envelopes(&query).await?;
        Ok(page(envelopes, limit))
    }

    /// The totals of a district day (today when `None`) and of its month.
    pub async fn reward_totals(
        &self,
        day: Option<NaiveDate>,
    ) -> Result<(BudgetTotals, BudgetTotals), DomainError> {
        let day = day.unwrap_or_else(|| crate::domain::time::local_date(self.clock.now()));
        let day_key = day.format("%Y-%m-%d").to_string();
        let month_key = day.format("%Y-%m").to_string();
        let policy = self.store.reward_policy().await?;

        let daily = self.store.period_totals(Some(&day_key), &month_key).await?;
        let monthly = self.store.period_totals(None, &month_key).await?;
        Ok((
            BudgetTotals {
                period: day_key,
                totals: daily,
                budget_fen: policy.daily_budget_fen,
            },
            BudgetTotals {
                period: month_key,
                totals: monthly,
                budget_fen: policy.monthly_budget_fen,
            },
        ))
    }

    /// Compares the ledger with the envelopes and the budgets.
    pub async fn reconciliation_report(&self) -> Result<ReconciliationReport, DomainError> {
        let ledger = self.store.ledger_state().await?;
        let mut discrepancies: Vec<String> = ledger
            .envelopes
            .iter()
            .filter_map(|balance| balance.discrepancy())
            .collect();
        if ledger.committed_fen != -ledger.budget_fen {
            discrepancies.push(format!(
                "the monthly budgets have {} fen committed but the ledger's budget account \
                 gave out {} fen",
                ledger.committed_fen, -ledger.budget_fen
            ));
        }
        let flagged_query = EnvelopeQuery {
            flagged_only: true,
            limit: 1000,
            ..EnvelopeQuery::default()
        };
        let flagged = self.store.envelopes(&flagged_query).await?;
        Ok(ReconciliationReport {
            ledger,
            discrepancies,
            flagged,
        })
    }

    /// Withdraws the envelope of a complaint found fraudulent.
    pub async fn withdraw_red_envelope(
        &self,
        staff: &Principal,
        complaint: ComplaintId,
        reason: &str,
    ) -> Result<(Option<Envelope>, bool), DomainError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(DomainError::invalid(
                "reason",
                "must be 1 to 500 characters",
            ));
        }
        if self.store.envelope_of_complaint(complaint).await?.is_none() {
            return Err(DomainError::NotFound("red envelope"));
        }
        let target = format!("complaint:{}", complaint.0);
        let audit = AuditDraft::by(
            staff,
            AuditAction::RedEnvelopeWithdrawn,
            target,
            self.clock.now(),
        )
        .because(reason);
        let stored_reason = format!("fraudulent: {reason}");
        let outcome = self
            .store
            .withdraw_envelope(complaint, &stored_reason, &audit)
            .await?;
        tracing::info!(complaint.id = %complaint, reward.outcome = ?outcome, "envelope withdrawn");
        let envelope = self.store.envelope_of_complaint(complaint).await?;
        Ok((envelope, outcome == Withdrawal::Cancelled))
    }

    /// Gives the money of envelopes nobody claimed in time back to the
    /// budget; the reconciliation worker calls it on every pass.
    pub async fn expire_unclaimed_envelopes(&self, now: DateTime<Utc>) -> Result<u64, DomainError> {
        let expired = self.store.expire_unclaimed(now).await?;
        if expired > 0 {
            tracing::info!(reward.expired = expired, "unclaimed envelopes expired");
        }
        Ok(expired)
    }
}

fn describe(policy: &RewardPolicy) -> String {
    format!(
        "range {}..={} fen, caps {}/day {}/month, budgets {}/day {}/month fen, claim {} days",
        policy.range.min_fen,
        policy.range.max_fen,
        policy.daily_cap_per_citizen,
        policy.monthly_cap_per_citizen,
        policy.daily_budget_fen,
        policy.monthly_budget_fen,
        policy.claim_days
    )
}

fn page(mut envelopes: Vec<Envelope>, limit: u32) -> (Vec<Envelope>, Option<String>) {
    let more = envelopes.len() > limit as usize;
    envelopes.truncate(limit as usize);
    let next = more
        .then(|| envelopes.last().map(|last| encode_cursor(last.id)))
        .flatten();
    (envelopes, next)
}

fn parse_filter(filter: EnvelopeFilter, page_token: &str) -> Result<EnvelopeQuery, DomainError> {
    let mut violations = Violations::default();
    let mut id = |field: &str, text: &str| match text.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                violations.push(field, "must be an id");
                None
            }
        },
    };
    let citizen_id = id("citizen_account_id", &filter.citizen_account_id).map(AccountId);
    let complaint_id = id("complaint_id", &filter.complaint_id).map(ComplaintId);
    let day = filter.day.trim();
    if !day.is_empty() && NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
        violations.push("day", "must be a date like 2026-12-03");
    }
    let month = filter.month.trim();
    if !month.is_empty() && NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_err() {
        violations.push("month", "must be a month like 2026-12");
    }
    let before_id = decode_cursor(page_token);
    if before_id.is_err() {
        violations.push("page_token", "is not a token this server issued");
    }
    violations.into_result()?;

    Ok(EnvelopeQuery {
        state: filter.state,
        citizen_id,
        complaint_id,
        day: (!day.is_empty()).then(|| day.to_owned()),
        month: (!month.is_empty()).then(|| month.to_owned()),
        before_id: before_id.unwrap_or_default(),
        flagged_only: false,
        limit: 0,
    })
}

/// Parses a district day, "2026-12-03"; `None` for an empty one.
pub fn parse_day(text: &str) -> Result<Option<NaiveDate>, DomainError> {
    match text.trim() {
        "" => Ok(None),
        day => NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| DomainError::invalid("day", "must be a date like 2026-12-03")),
    }
}

fn encode_cursor(id: i64) -> String {
    B64.encode(format!("envelope-before:{id}"))
}

fn decode_cursor(token: &str) -> Result<Option<i64>, ()> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = B64.decode(token).map_err(|_| ())?;
    let text = String::from_utf8(bytes).map_err(|_| ())?;
    let id = text.strip_prefix("envelope-before:").ok_or(())?;
    id.parse().map(Some).map_err(|_| ())
}
