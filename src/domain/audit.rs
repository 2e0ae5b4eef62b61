//! The audit log: who did what privileged thing, or read which personal
//! data, when and why. Records are only ever added; the database refuses
//! changes, and deletion of anything younger than the retention floor.

use chrono::{DateTime, Duration, Utc};

use super::account::{AccountId, Principal};
use super::error::FieldViolation;

/// The least time a record is kept: six months, as the Cybersecurity Law
/// asks of network logs. The database enforces the same number of days.
pub const RETENTION_FLOOR_DAYS: i64 = 183;

pub fn retention_floor() -> Duration {
    Duration::days(RETENTION_FLOOR_DAYS)
}

/// The role recorded for actions the system takes on its own (lock-outs,
/// purges) or that an operator takes at the console (the first
/// administrator).
pub const SYSTEM_ACTOR: &str = "system";

macro_rules! audit_actions {
    ($($variant:ident => $text:literal),+ $(,)?) => {
        /// Everything the log records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction { $($variant),+ }

        impl AuditAction {
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(AuditAction::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<AuditAction> {
                AuditAction::ALL.iter().copied().find(|a| a.as_str() == text)
            }
        }
    };
}

audit_actions! {
    AdminBootstrapped => "staff.bootstrapped",
    StaffCreated => "staff.created",
    PasswordReset => "staff.password_reset",
    PasswordChanged => "staff.password_changed",
    StaffUnlocked => "staff.unlocked",
    StaffLockedOut => "staff.locked_out",
    StaffDisabled => "staff.disabled",
    StaffEnabled => "staff.enabled",
    FactorEnrolled => "staff.factor_enrolled",
    StaffMoved => "staff.moved",
    UnitSaved => "directory.unit_saved",
    CalendarLoaded => "directory.calendar_loaded",
    ContactRevealed => "case.contact_revealed",
    AuditPurged => "audit.purged",
    BlockAdded => "abuse.block_added",
    BlockLifted => "abuse.block_lifted",
    AccountDeleted => "citizen.account_deleted",
    DataReencrypted => "personal_data.reencrypted",
    RetentionPurged => "personal_data.retention_purged",
    RewardPolicyChanged => "reward.policy_changed",
    RedEnvelopeWithdrawn => "reward.envelope_withdrawn",
}

/// A record about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub occurred_at: DateTime<Utc>,
    /// `None` for the system itself.
    pub actor_id: Option<AccountId>,
    pub actor_role: String,
    pub actor_unit_id: Option<String>,
    pub action: AuditAction,
    /// What was acted on or read, e.g. "account:12" or "complaint:7".
    pub target: String,
    /// Why, in the actor's words, where the action asks for a reason.
    pub reason: String,
    /// What changed, in a few words; never personal data.
    pub detail: String,
}

impl AuditDraft {
    /// An action a signed-in staff member takes.
    pub fn by(
        actor: &Principal,
        action: AuditAction,
        target: impl Into<String>,
        now: DateTime<Utc>,
    ) -> AuditDraft {
        AuditDraft {
            occurred_at: now,
            actor_id: Some(actor.account_id),
            actor_role: actor.role.as_str().to_owned(),
            actor_unit_id: actor.unit_id.clone(),
            action,
            target: target.into(),
            reason: String::new(),
            detail: String::new(),
        }
    }

    /// An action the system takes, or an operator at the console.
    pub fn by_system(action: AuditAction, target: impl Into<String>, now: DateTime<Utc>) -> Self {
        AuditDraft {
            occurred_at: now,
            actor_id: None,
            actor_role: SYSTEM_ACTOR.to_owned(),
            actor_unit_id: None,
            action,
            target: target.into(),
            reason: String::new(),
            detail: String::new(),
        }
    }

    pub fn because(mut self, reason: impl Into<String>) -> AuditDraft {
        self.reason = reason.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditDraft {
        self.detail = detail.into();
        self
    }
}

/// The target string of an account.
pub fn account_target(id: AccountId) -> String {
    format!("account:{id}")
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub draft: AuditDraft,
}

/// Filters of an audit listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_id: Option<AccountId>,
    pub action: Option<AuditAction>,
    pub target: Option<String>,
    /// From this time on, inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Before this time, exclusive.
    pub until: Option<DateTime<Utc>>,
    /// Only records older than this one (the page cursor).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Why a staff member needs to see personal data: required, 2 to 200
/// characters, so that a reviewer can judge it later.
pub fn parse_reason(field: &str, raw: &str) -> Result<String, FieldViolation> {
    let reason = raw.trim();
    let chars = reason.chars().count();
    if !(2..=200).contains(&chars) {
        return Err(FieldViolation::new(
            field,
            "must say why, in 2 to 200 characters",
        ));
    }
    Ok(reason.to_owned())
}

/// The oldest time a purge may delete before: `retention` back from `now`,
/// never less than the floor.
pub fn purge_cutoff(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    now - retention.max(retention_floor())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(*action));
        }
        assert_eq!(AuditAction::parse("staff.deleted"), None);
    }

    #[test]
    fn a_reason_must_say_something() {
        assert_eq!(parse_reason("r", "  回访核实  ").unwrap(), "回访核实");
        assert!(parse_reason("r", "   ").is_err());
        assert!(parse_reason("r", "x").is_err());
        assert!(parse_reason("r", &"因".repeat(201)).is_err());
    }

    #[test]
    fn a_purge_never_reaches_inside_the_floor() {
        let now = DateTime::UNIX_EPOCH + Duration::days(1000);
        assert_eq!(
            purge_cutoff(now, Duration::days(30)),
            now - Duration::days(183)
        );
        assert_eq!(
            purge_cutoff(now, Duration::days(400)),
            now - Duration::days(400)
        );
    }
}
