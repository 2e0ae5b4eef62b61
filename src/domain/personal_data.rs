//! Citizens' personal data: how long each kind of record is kept, what a
//! citizen's export holds, and what deleting an account asks of the caller.

use chrono::{DateTime, Duration, Utc};

use super::account::AccountId;
use super::complaint::{Complaint, ComplaintEvent};
use super::error::FieldViolation;
use super::phone::PhoneNumber;

/// What a citizen types to confirm that their account is to go: deletion
/// cannot be undone, so an app must ask explicitly.
pub const DELETION_CONFIRMATION: &str = "DELETE MY ACCOUNT";

pub fn check_deletion_confirmation(field: &str, raw: &str) -> Result<(), FieldViolation> {
    if raw.trim() == DELETION_CONFIRMATION {
        Ok(())
    } else {
        Err(FieldViolation::new(
            field,
            format!("must be \"{DELETION_CONFIRMATION}\": deleting an account cannot be undone"),
        ))
    }
}

/// How long each kind of record is kept past the moment it stops being
/// needed. Audit records have their own setting (see `audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Refresh-token rows, counted from their expiry.
    pub sessions: Duration,
    /// One-time SMS codes, counted from their expiry.
    pub sms_codes: Duration,
    /// The contact phone of a closed, rejected or withdrawn complaint,
    /// counted from its last change: follow-up calls happen within weeks.
    pub closed_complaint_contact: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            sessions: Duration::days(30),
            sms_codes: Duration::days(1),
            closed_complaint_contact: Duration::days(180),
        }
    }
}

impl RetentionPolicy {
    /// Revocations must stay readable while their access tokens may be
    /// valid; a day covers every access token's life (see `config`).
    pub fn check(&self) -> Result<(), String> {
        if self.sessions < Duration::days(1) {
            return Err("sessions must be kept at least a day past expiry".to_owned());
        }
        if self.sms_codes < Duration::zero() || self.closed_complaint_contact < Duration::zero() {
            return Err("retention periods cannot be negative".to_owned());
        }
        Ok(())
    }

    pub fn cutoffs(&self, now: DateTime<Utc>) -> PurgeCutoffs {
        PurgeCutoffs {
            sessions_expired_before: now - self.sessions,
            sms_codes_expired_before: now - self.sms_codes,
            contacts_closed_before: now - self.closed_complaint_contact,
        }
    }
}

/// Records older than these go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    pub sessions_expired_before: DateTime<Utc>,
    pub sms_codes_expired_before: DateTime<Utc>,
    pub contacts_closed_before: DateTime<Utc>,
}

/// What one purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    pub sessions: u64,
    pub sms_codes: u64,
    pub complaint_contacts: u64,
}

impl PurgeReport {
    pub fn is_empty(&self) -> bool {
        *self == PurgeReport::default()
    }

    /// For the audit record: counts only, never what was removed.
    pub fn summary(&self) -> String {
        format!(
            "{} sessions, {} SMS codes, {} complaint contact phones",
            self.sessions, self.sms_codes, self.complaint_contacts
        )
    }
}

/// Everything the system holds about a citizen, for the citizen: nothing
/// masked, since it is their own.
#[derive(Debug, Clone)]
pub struct CitizenExport {
    pub account_id: AccountId,
    pub display_name: String,
    pub phone: Option<PhoneNumber>,
    pub wechat: Vec<ExportedWeChat>,
    /// The privacy notice version accepted, and when.
    pub privacy_notice: Option<(String, DateTime<Utc>)>,
    pub complaints: Vec<ExportedComplaint>,
    pub exported_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedWeChat {
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ExportedComplaint {
    pub complaint: Complaint,
    pub contact_phone: Option<PhoneNumber>,
    /// The events the citizen sees; staff-internal ones are not theirs.
    pub timeline: Vec<ComplaintEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_needs_the_exact_confirmation() {
        assert!(check_deletion_confirmation("c", " DELETE MY ACCOUNT ").is_ok());
        assert!(check_deletion_confirmation("c", "delete").is_err());
        assert!(check_deletion_confirmation("c", "").is_err());
    }

    #[test]
    fn cutoffs_count_back_from_now() {
        let now = DateTime::UNIX_EPOCH + Duration::days(1000);
        let cutoffs = RetentionPolicy::default().cutoffs(now);
        assert_eq!(cutoffs.sessions_expired_before, now - Duration::days(30));
        assert_eq!(cutoffs.sms_codes_expired_before, now - Duration::days(1));
        assert_eq!(cutoffs.contacts_closed_before, now - Duration::days(180));
    }

    #[test]
    fn sessions_are_kept_long_enough_for_revocations() {
        let mut policy = RetentionPolicy::default();
        assert!(policy.check().is_ok());
        policy.sessions = Duration::hours(1);
        assert!(policy.check().is_err());
    }
}
