//! Storage of citizens' own sign-ins: WeChat openids per app id, the phone
//! number (ciphertext and blind index, never the number), one-time SMS
//! codes (keyed hashes), the accepted privacy notice, and the revocations
//! replicas read to refuse signed-out access tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::account::{Account, AccountId};
use crate::domain::citizen::{CodeCheck, LinkOutcome};

/// A citizen's account with what it signs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenRecord {
    pub account: Account,
    /// The phone number's ciphertext ("v<key version>:…").
    pub phone_cipher: Option<String>,
    pub phone_index: Option<String>,
    /// The mini-programs (WeChat app ids) the citizen signs in through.
    pub wechat_app_ids: Vec<String>,
    pub privacy_notice: Option<NoticeAcceptance>,
}

/// What WeChat vouched for: the openid within one app id, and the unionid
/// when the app belongs to an open-platform account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatIdentity {
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
}

/// A phone number as stored: encrypted, and its blind index for look-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPhone {
    pub index: String,
    pub cipher: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeAcceptance {
    pub version: String,
    pub accepted_at: DateTime<Utc>,
}

/// A freshly sent code, replacing any earlier one for the same phone.
#[derive(Debug, Clone)]
pub struct NewSmsCode {
    pub phone_index: String,
    pub code_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A code a caller presented for a phone.
#[derive(Debug, Clone)]
pub struct PresentedCode {
    pub phone_index: String,
    pub code_hash: Vec<u8>,
    pub now: DateTime<Utc>,
    pub max_attempts: u32,
}

#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    async fn citizen(&self, id: AccountId) -> anyhow::Result<Option<CitizenRecord>>;

    async fn citizen_by_wechat(
        &self,
        app_id: &str,
        openid: &str,
    ) -> anyhow::Result<Option<CitizenRecord>>;

    async fn citizen_by_phone(&self, phone_index: &str) -> anyhow::Result<Option<CitizenRecord>>;

    /// The citizen's WeChat identity in one app: red envelopes are paid to
    /// its openid.
    async fn wechat_identity(
        &self,
        citizen: AccountId,
        app_id: &str,
    ) -> anyhow::Result<Option<WeChatIdentity>>;

    /// Finds the citizen of a WeChat identity, creating the account on
    /// first sign-in; keeps a newly learnt unionid; records the notice.
    async fn sign_in_wechat(
        &self,
        identity: &WeChatIdentity,
        notice: Option<&NoticeAcceptance>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Account>;

    /// Stores a phone's code, replacing its earlier one.
    async fn save_sms_code(&self, code: &NewSmsCode) -> anyhow::Result<()>;

    /// Compares a presented code with the live one without using it up;
    /// a wrong one counts against the code's attempts, atomically.
    async fn check_sms_code(&self, presented: &PresentedCode) -> anyhow::Result<CodeCheck>;

    /// Uses up the code and finds or creates the citizen of the phone, in
    /// one transaction; records the notice. `None` when the code was no
    /// longer usable (used meanwhile by a concurrent request).
    async fn sign_in_phone(
        &self,
        presented: &PresentedCode,
        phone: &StoredPhone,
        notice: Option<&NoticeAcceptance>,
    ) -> anyhow::Result<Option<Account>>;

    /// Uses up the code and gives the citizen the phone, unless another
    /// account holds it or the citizen has another. `None` as above.
    async fn link_phone(
        &self,
        citizen: AccountId,
        presented: &PresentedCode,
        phone: &StoredPhone,
    ) -> anyhow::Result<Option<LinkOutcome>>;

    /// Gives the citizen a WeChat identity, unless another account holds it
    /// or the citizen has another openid in that app.
    async fn link_wechat(
        &self,
        citizen: AccountId,
        identity: &WeChatIdentity,
        now: DateTime<Utc>,
    ) -> anyhow::Result<LinkOutcome>;

    /// Sessions revoked after `since` (revocation time as written by the
    /// replica that revoked them).
    async fn revoked_sessions_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<String>>;
}
