//! Storage of staff credentials and of the audit log. Every write here that
//! records a privileged action takes the action's audit record along and
//! writes both in one transaction: no action without its record.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::account::{Account, AccountId, Role};
use crate::domain::audit::{AuditDraft, AuditQuery, AuditRecord};
use crate::domain::calendar::DayKind;
use crate::domain::complaint::ComplaintId;
use crate::domain::directory::Unit;
use crate::domain::staff::{LockoutPolicy, StaffCredential, Username};

/// A staff account about to be created, with its first password.
#[derive(Debug, Clone)]
pub struct NewStaffAccount {
    pub username: Username,
    pub role: Role,
    pub unit_id: String,
    pub display_name: String,
    pub password_hash: String,
    /// An already active TOTP secret (sealed), for roles that need one.
    pub factor_cipher: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaffCreation {
    Created(Account),
    UsernameTaken,
    /// Only when creating the first administrator: one already exists.
    AdminExists,
}

/// One change to a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialChange {
    /// An administrator sets a new initial password, clears the lock, and
    /// optionally replaces the second factor with a new active one. The
    /// account's sessions end.
    ResetPassword {
        password_hash: String,
        new_factor_cipher: Option<String>,
    },
    /// The owner sets a password of their own.
    ChangePassword {
        password_hash: String,
    },
    Unlock,
    /// The account's sessions end.
    Disable,
    Enable,
    /// A new pending secret; refused while a factor is active.
    EnrollFactor {
        secret_cipher: String,
    },
    /// Activates the pending secret the code was checked against, if it is
    /// still the pending one; `step` is the confirming code's.
    ConfirmFactor {
        secret_cipher: String,
        step: u64,
    },
}

impl CredentialChange {
    pub fn ends_sessions(&self) -> bool {
        matches!(
            self,
            CredentialChange::ResetPassword { .. } | CredentialChange::Disable
        )
    }
}

#[async_trait]
pub trait StaffStore: Send + Sync + 'static {
    /// The credential a username signs in with.
    async fn staff_credential(&self, username: &str) -> anyhow::Result<Option<StaffCredential>>;

    async fn staff_credential_of(&self, id: AccountId) -> anyhow::Result<Option<StaffCredential>>;

    /// Staff accounts with a password, optionally of one unit, by id.
    async fn staff_credentials(
        &self,
        unit_id: Option<&str>,
    ) -> anyhow::Result<Vec<StaffCredential>>;

    /// Creates the account and its credential, and writes `audit` with the
    /// new account as its target. With `first_admin_only`,
    /// refuses when an enabled system administrator with a password exists
    /// (checked and written under one lock, so two runs cannot both pass).
    async fn create_staff_account(
        &self,
        new: &NewStaffAccount,
        first_admin_only: bool,
        audit: &AuditDraft,
    ) -> anyhow::Result<StaffCreation>;

    /// Applies a change at the audit record's time. `None` when no
    /// credential has the id, or the change does not apply (a factor to
    /// confirm that is not pending, one to enroll while one is active);
    /// otherwise the sign-in sessions it ended.
    async fn change_staff_credential(
        &self,
        id: AccountId,
        change: &CredentialChange,
        audit: &AuditDraft,
    ) -> anyhow::Result<Option<Vec<String>>>;

    /// Counts a failed sign-in; the failure that reaches the policy's limit
    /// locks the account, resets the count and writes `lockout`. Returns
    /// whether this failure locked it.
    async fn record_sign_in_failure(
        &self,
        id: AccountId,
        policy: &LockoutPolicy,
        lockout: &AuditDraft,
    ) -> anyhow::Result<bool>;

    /// Clears the failure count of a successful sign-in and, with a code,
    /// marks its time step used. `false` when that step (or a later one)
    /// was used first: the code was replayed.
    async fn record_sign_in_success(
        &self,
        id: AccountId,
        factor_step: Option<u64>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// `CaseStore::update_staff` with its audit record.
    async fn update_staff_audited(
        &self,
        account: &Account,
        audit: &AuditDraft,
    ) -> anyhow::Result<Option<Account>>;

    /// `CaseStore::save_units` for one unit, with its audit record.
    async fn save_unit_audited(&self, unit: &Unit, audit: &AuditDraft) -> anyhow::Result<()>;

    /// `CaseStore::save_calendar_year` with its audit record.
    async fn save_calendar_year_audited(
        &self,
        year: i32,
        exceptions: &[(NaiveDate, DayKind)],
        audit: &AuditDraft,
    ) -> anyhow::Result<()>;

    /// The reporter's encrypted contact phone, recording the read first in
    /// the same transaction. `None` (and nothing recorded) when the
    /// complaint has no phone or does not exist.
    async fn reveal_contact(
        &self,
        id: ComplaintId,
        audit: &AuditDraft,
    ) -> anyhow::Result<Option<String>>;

    async fn audit_records(&self, query: &AuditQuery) -> anyhow::Result<Vec<AuditRecord>>;

    /// Deletes records older than `before` (and, whatever `before` says,
    /// only those the database's own floor lets go), then writes `audit`
    /// with the count, in one transaction. Returns the count.
    async fn purge_audit_records(
        &self,
        before: DateTime<Utc>,
        audit: &AuditDraft,
    ) -> anyhow::Result<u64>;
}
