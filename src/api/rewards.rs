//! The red envelope API for staff (`RewardService`), and the conversions
//! the citizen's envelope RPCs share with it.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::complaint::ComplaintId;
use crate::domain::red_envelope::{AmountRange, Envelope, EnvelopeState, RewardPolicy};
use crate::proto::v1 as pb;
use crate::proto::v1::reward_service_server::RewardService;
use crate::service::Services;
use crate::service::red_envelopes::{BudgetTotals, EnvelopeFilter, parse_day};

pub struct RewardApi {
    services: Arc<Services>,
}

impl RewardApi {
    pub fn new(services: Arc<Services>) -> RewardApi {
        RewardApi { services }
    }
}

fn state_to_proto(state: EnvelopeState) -> pb::RedEnvelopeState {
    use pb::RedEnvelopeState as P;
    match state {
        EnvelopeState::NotGranted => P::NotGranted,
        EnvelopeState::Granted => P::Granted,
        EnvelopeState::Claiming => P::Claiming,
        EnvelopeState::Paid => P::Paid,
        EnvelopeState::Cancelled => P::Cancelled,
        EnvelopeState::Expired => P::Expired,
        EnvelopeState::Failed => P::Failed,
    }
}

fn state_from_proto(value: i32) -> Option<EnvelopeState> {
    use pb::RedEnvelopeState as P;
    match P::try_from(value).ok()? {
        P::Unspecified => None,
        P::NotGranted => Some(EnvelopeState::NotGranted),
        P::Granted => Some(EnvelopeState::Granted),
        P::Claiming => Some(EnvelopeState::Claiming),
        P::Paid => Some(EnvelopeState::Paid),
        P::Cancelled => Some(EnvelopeState::Cancelled),
        P::Expired => Some(EnvelopeState::Expired),
        P::Failed => Some(EnvelopeState::Failed),
    }
}

/// An envelope as its citizen sees it.
pub fn citizen_envelope(envelope: &Envelope) -> pb::RedEnvelope {
    pb::RedEnvelope {
        id: envelope.id.to_string(),
        complaint_id: envelope.complaint_id.to_string(),
        amount_fen: envelope.amount_fen,
        state: state_to_proto(envelope.state).into(),
        reason: envelope.reason.clone(),
        message: envelope.citizen_message().to_owned(),
        decided_at: Some(convert::timestamp(envelope.decided_at)),
        claim_until: envelope
            .state
            .is_pending()
            .then(|| convert::timestamp(envelope.claim_until)),
        paid_at: envelope.paid_at.map(convert::timestamp),
        citizen_account_id: String::new(),
        audit_flag: String::new(),
    }
}

/// An envelope as staff see it.
pub fn staff_envelope(envelope: &Envelope) -> pb::RedEnvelope {
    pb::RedEnvelope {
        citizen_account_id: envelope.citizen_id.to_string(),
        audit_flag: envelope.audit_flag.clone().unwrap_or_default(),
        ..citizen_envelope(envelope)
    }
}

fn policy_to_proto(policy: &RewardPolicy) -> pb::RewardPolicy {
    pb::RewardPolicy {
        min_amount_fen: policy.range.min_fen,
        max_amount_fen: policy.range.max_fen,
        daily_cap_per_citizen: policy.daily_cap_per_citizen,
        monthly_cap_per_citizen: policy.monthly_cap_per_citizen,
        daily_budget_fen: policy.daily_budget_fen,
        monthly_budget_fen: policy.monthly_budget_fen,
        claim_days: policy.claim_days,
    }
}

fn policy_from_proto(policy: pb::RewardPolicy) -> RewardPolicy {
    RewardPolicy {
        range: AmountRange {
            min_fen: policy.min_amount_fen,
            max_fen: policy.max_amount_fen,
        },
        daily_cap_per_citizen: policy.daily_cap_per_citizen,
        monthly_cap_per_citizen: policy.monthly_cap_per_citizen,
        daily_budget_fen: policy.daily_budget_fen,
        monthly_budget_fen: policy.monthly_budget_fen,
        claim_days: policy.claim_days,
    }
}

fn totals_to_proto(totals: &BudgetTotals) -> pb::PeriodTotals {
    let sums = &totals.totals;
    pb::PeriodTotals {
        period: totals.period.clone(),
        granted_count: sums.granted_count,
        granted_fen: sums.granted_fen,
        paid_fen: sums.paid_fen,
        pending_fen: sums.pending_fen,
        cancelled_fen: sums.cancelled_fen,
        expired_fen: sums.expired_fen,
        failed_fen: sums.failed_fen,
        not_granted_count: sums.not_granted_count,
        budget_fen: totals.budget_fen,
        budget_left_fen: totals.budget_left_fen(),
    }
}

#[tonic::async_trait]
impl RewardService for RewardApi {
    async fn get_reward_policy(
        &self,
        _request: Request<pb::GetRewardPolicyRequest>,
    ) -> Result<Response<pb::RewardPolicy>, Status> {
        let policy = self.services.reward_policy().await?;
        Ok(Response::new(policy_to_proto(&policy)))
    }

    async fn update_reward_policy(
        &self,
        request: Request<pb::UpdateRewardPolicyRequest>,
    ) -> Result<Response<pb::RewardPolicy>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let Some(proposed) = request.policy else {
            return Err(crate::domain::DomainError::invalid("policy", "is required").into());
        };
        let policy = self
            .services
            .update_reward_policy(&staff, policy_from_proto(proposed), &request.reason)
            .await?;
        Ok(Response::new(policy_to_proto(&policy)))
    }

    async fn list_red_envelopes(
        &self,
        request: Request<pb::ListRedEnvelopesRequest>,
    ) -> Result<Response<pb::ListRedEnvelopesResponse>, Status> {
        let request = request.into_inner();
        let filter = EnvelopeFilter {
            state: state_from_proto(request.state),
            citizen_account_id: request.citizen_account_id,
            complaint_id: request.complaint_id,
            day: request.day,
            month: request.month,
        };
        let (envelopes, next) = self
            .services
            .list_red_envelopes(filter, request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListRedEnvelopesResponse {
            envelopes: envelopes.iter().map(staff_envelope).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_reward_totals(
        &self,
        request: Request<pb::GetRewardTotalsRequest>,
    ) -> Result<Response<pb::RewardTotals>, Status> {
        let day = parse_day(&request.get_ref().day)?;
        let (daily, monthly) = self.services.reward_totals(day).await?;
        Ok(Response::new(pb::RewardTotals {
            day: Some(totals_to_proto(&daily)),
            month: Some(totals_to_proto(&monthly)),
        }))
    }

    async fn get_reconciliation_report(
        &self,
        _request: Request<pb::GetReconciliationReportRequest>,
    ) -> Result<Response<pb::ReconciliationReport>, Status> {
        let report = self.services.reconciliation_report().await?;
        let ledger = &report.ledger;
        Ok(Response::new(pb::ReconciliationReport {
            balanced: report.balanced(),
            entry_count: ledger.entry_count,
            posting_count: ledger.posting_count,
            budget_account_fen: ledger.budget_fen,
            owed_account_fen: ledger.owed_fen,
            paid_out_account_fen: ledger.paid_out_fen,
            unbalanced_entry_ids: ledger
                .unbalanced_entries
                .iter()
                .map(i64::to_string)
                .collect(),
            discrepancies: report.discrepancies.clone(),
            flagged: report.flagged.iter().map(staff_envelope).collect(),
        }))
    }

    async fn withdraw_red_envelope(
        &self,
        request: Request<pb::WithdrawRedEnvelopeRequest>,
    ) -> Result<Response<pb::WithdrawRedEnvelopeResponse>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let (envelope, cancelled) = self
            .services
            .withdraw_red_envelope(&staff, id, &request.reason)
            .await?;
        Ok(Response::new(pb::WithdrawRedEnvelopeResponse {
            envelope: envelope.as_ref().map(staff_envelope),
            cancelled,
        }))
    }
}
