//! Storage for the personal-data duties: re-encrypting stored values under
//! the current key, a citizen's export and deletion, and the retention
//! purge.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::AccountId;
use crate::domain::audit::AuditDraft;
use crate::domain::complaint::ComplaintId;
use crate::domain::personal_data::{PurgeCutoffs, PurgeReport};

/// A column that holds ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherColumn {
    ComplaintContactPhone,
    CitizenPhone,
    StaffTotpSecret,
}

impl CipherColumn {
    pub const ALL: [CipherColumn; 3] = [
        CipherColumn::ComplaintContactPhone,
        CipherColumn::CitizenPhone,
        CipherColumn::StaffTotpSecret,
    ];

    /// "table.column", as progress reports and audit records name it.
    pub fn name(self) -> &'static str {
        match self {
            CipherColumn::ComplaintContactPhone => "complaints.contact_phone_cipher",
            CipherColumn::CitizenPhone => "accounts.phone_cipher",
            CipherColumn::StaffTotpSecret => "staff_credentials.totp_secret_cipher",
        }
    }

    /// (table, primary key, column).
    pub fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            CipherColumn::ComplaintContactPhone => ("complaints", "id", "contact_phone_cipher"),
            CipherColumn::CitizenPhone => ("accounts", "id", "phone_cipher"),
            CipherColumn::StaffTotpSecret => {
                ("staff_credentials", "account_id", "totp_secret_cipher")
            }
        }
    }
}

/// How many values a column holds, and how many are under the current key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CipherCensus {
    pub total: u64,
    pub current: u64,
}

/// Re-encrypts one stored value under the current algorithm and key.
pub type Reseal<'a> = &'a (dyn Fn(&str) -> anyhow::Result<String> + Send + Sync);

/// A WeChat identity as linked to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedWeChat {
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub linked_at: DateTime<Utc>,
}

/// What deleting a citizen's account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenDeletion {
    /// The sign-in sessions revoked, for the bus to end them everywhere.
    pub revoked_families: Vec<String>,
    /// Complaints kept for the record, stripped of the contact phone.
    pub complaints_kept: u64,
}

#[async_trait]
pub trait PersonalDataStore: Send + Sync + 'static {
    /// Claims up to `limit` values of a column not written under
    /// `current_prefix` (rows another replica holds are skipped), re-encrypts
    /// them with `reseal` and writes them back in one transaction, with
    /// `audit` when any changed; how many changed.
    async fn reencrypt_batch(
        &self,
        column: CipherColumn,
        current_prefix: &str,
        limit: u32,
        reseal: Reseal<'_>,
        audit: &AuditDraft,
    ) -> anyhow::Result<u64>;

    async fn cipher_census(
        &self,
        column: CipherColumn,
        current_prefix: &str,
    ) -> anyhow::Result<CipherCensus>;

    async fn linked_wechat(&self, citizen: AccountId) -> anyhow::Result<Vec<LinkedWeChat>>;

    /// The contact phone ciphertexts of a citizen's complaints.
    async fn contact_ciphers(
        &self,
        citizen: AccountId,
    ) -> anyhow::Result<Vec<(ComplaintId, String)>>;

    /// Deletes a citizen's account in one transaction: revokes its sessions,
    /// unlinks WeChat, forgets its phone and name, frees its sign-in subject
    /// so the same person signing in again gets a new account, and removes
    /// the contact phone from its complaints, which stay; writes `audit`.
    /// `None` when the account is no citizen's or already deleted.
    async fn delete_citizen(
        &self,
        citizen: AccountId,
        now: DateTime<Utc>,
        audit: &AuditDraft,
    ) -> anyhow::Result<Option<CitizenDeletion>>;

    /// Removes what is past its retention, with `audit` when anything went.
    async fn purge_personal_data(
        &self,
        cutoffs: &PurgeCutoffs,
        audit: &AuditDraft,
    ) -> anyhow::Result<PurgeReport>;
}
