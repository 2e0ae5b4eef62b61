//! Showing staff a reporter's full contact phone. Cases carry it masked;
//! the full number is for a supervisor who states why, and each reveal is
//! in the audit log before the number leaves the server. This is the only
//! path on which staff see personal data unmasked.
//!
//! TODO(audit): staff reads of complaint texts and addresses (GetCase,
//! ListQueue, WatchQueue) are not audit-logged; they are the daily work of
//! every handler, and logging them would need a sampled or summarised
//! record to keep the log readable.

use super::Services;
use crate::domain::account::Principal;
use crate::domain::audit::{AuditAction, AuditDraft, parse_reason};
use crate::domain::complaint::ComplaintId;
use crate::domain::error::DomainError;
use crate::domain::phone::PhoneNumber;

impl Services {
    pub async fn reveal_reporter_contact(
        &self,
        staff: &Principal,
        id: ComplaintId,
        reason: &str,
    ) -> Result<PhoneNumber, DomainError> {
        let reason =
            parse_reason("reason", reason).map_err(|v| DomainError::InvalidInput(vec![v]))?;
        // Outside the caller's reach, the case does not exist for them.
        self.get_case(staff, id).await?;

        let audit = AuditDraft::by(
            staff,
            AuditAction::ContactRevealed,
            format!("complaint:{id}"),
            self.clock.now(),
        )
        .because(reason);
        let Some(cipher) = self.store.reveal_contact(id, &audit).await? else {
            return Err(DomainError::FailedPrecondition(
                "the reporter left no contact phone".to_owned(),
            ));
        };
        let phone = self.cipher.decrypt(&cipher)?;

        tracing::info!(complaint.id = %id, "reporter contact revealed");
        Ok(phone)
    }
}
