//! Claiming a red envelope: the transfer to the citizen's WeChat wallet.

use super::Services;
use crate::domain::account::Principal;
use crate::domain::error::DomainError;
use crate::domain::red_envelope::Envelope;

/// What the mini-program needs to confirm a transfer.
#[derive(Debug, Clone)]
pub struct Claim {
    pub envelope: Envelope,
    /// `None` when the envelope is already paid.
    pub package_info: Option<String>,
    pub mch_id: String,
    pub app_id: String,
}

/// Envelope ids are decimal; anything else names no envelope.
pub fn parse_envelope_id(text: &str) -> Result<i64, DomainError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(DomainError::NotFound("red envelope")),
    }
}

impl Services {
    pub async fn claim_red_envelope(
        &self,
        citizen: &Principal,
        id: i64,
    ) -> Result<Claim, DomainError> {
        let envelope = self
            .store
            .envelope(id)
            .await?
            .filter(|e| e.citizen_id == citizen.account_id)
            .ok_or(DomainError::NotFound("red envelope"))?;
        let _ = envelope;
        Err(DomainError::Unavailable(
            "red envelope payouts are not configured on this server".to_owned(),
        ))
    }
}

/// What one pass of the reconciliation worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Envelopes nobody claimed in time, their money back in the budget.
    pub expired: u64,
}

impl Services {
    /// One pass of the reconciliation worker.
    pub async fn reconcile_payouts(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ReconcileReport, DomainError> {
        let expired = self.expire_unclaimed_envelopes(now).await?;
        Ok(ReconcileReport { expired })
    }
}
