//! Citizens' own sign-ins: WeChat mini-program, phone and SMS code, the
//! links between them, and the privacy notice they accept.

use std::sync::Arc;

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use super::Services;
use super::auth::SignedIn;
use super::limits::address_check;
use crate::config::CitizenSignInConfig;
use crate::domain::account::{AccountId, Principal};
use crate::domain::citizen::{
    CodePolicy, NoticeDecision, OneTimeCode, WeChatLoginCode, notice_not_accepted,
    privacy_notice_decision,
};
use crate::domain::client::ClientContext;
use crate::domain::error::{DomainError, Violations};
use crate::domain::phone::PhoneNumber;
use crate::limiter::{Check, Policy, Subject};
use crate::security::otp::{self, CodeHasher};
use crate::sms::{CodeMessage, DevelopmentSms, SmsConfig, SmsError, SmsSender, TencentSms};
use crate::store::identity::{
    CitizenRecord, NewSmsCode, NoticeAcceptance, PresentedCode, StoredPhone, WeChatIdentity,
};
use crate::wechat::{WeChatClient, WeChatError};

/// What citizens' sign-ins need, built once at start-up.
pub struct CitizenSignIn {
    pub privacy_notice_version: String,
    pub wechat: Option<WeChatClient>,
    pub sms: Option<Arc<dyn SmsSender>>,
    pub codes: CodePolicy,
    pub code_hasher: CodeHasher,
}

impl CitizenSignIn {
    /// `secret` keys the hashes of SMS codes (the token secret serves).
    pub fn new(config: &CitizenSignInConfig, secret: &[u8]) -> anyhow::Result<CitizenSignIn> {
        let wechat = config.wechat.clone().map(WeChatClient::new).transpose()?;
        let sms: Option<Arc<dyn SmsSender>> = match &config.sms {
            None => None,
            Some(SmsConfig::Development) => Some(Arc::new(DevelopmentSms)),
            Some(SmsConfig::Tencent(tencent)) => Some(Arc::new(TencentSms::new(tencent.clone())?)),
        };
        Ok(CitizenSignIn {
            privacy_notice_version: config.privacy_notice_version.clone(),
            wechat,
            sms,
            codes: config.codes,
            code_hasher: CodeHasher::derived_from(secret),
        })
    }
}

/// A sign-in with a credential and the notice version the app showed.
#[derive(Debug, Clone)]
pub struct CitizenCredential {
    pub phone: String,
    pub code: String,
    pub accepted_privacy_notice_version: String,
}

/// The signed-in citizen's sign-ins, as the citizen may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenView {
    pub account_id: AccountId,
    pub phone_masked: Option<String>,
    pub wechat_linked: bool,
    pub privacy_notice: Option<NoticeAcceptance>,
}

impl Services {
    /// Signs a citizen in with a `wx.login` code, creating the account on
    /// first sign-in. `credential.phone` is unused.
    // TODO(identity): the unionid is kept but not yet used to recognise the
    // same person arriving through a second mini-program or official
    // account; with one app id configured it cannot happen.
    pub async fn sign_in_wechat(
        &self,
        credential: CitizenCredential,
    ) -> Result<SignedIn, DomainError> {
        let code = parse_wechat_code("wechat.code", &credential.code)?;
        let identity = self.exchange_wechat_code(&code).await?;
        let account = Subject::private("wechat", &identity.openid);
        self.enforce(&[Check::new(Policy::SignInAccount, account)])
            .await?;
        let now = self.clock.now();

        let known = self
            .store
            .citizen_by_wechat(&identity.app_id, &identity.openid)
            .await?;
        let notice =
            self.notice_to_record(&credential.accepted_privacy_notice_version, known, now)?;
        let account = self
            .store
            .sign_in_wechat(&identity, notice.as_ref(), now)
            .await?;

        tracing::info!(account.id = %account.id, "citizen signed in with WeChat");
        self.open_session(account, now).await
    }

    /// Texts a fresh code to a phone, replacing any earlier one. Answers the
    /// same whether or not the number has an account.
    pub async fn request_sms_code(
        &self,
        phone: &str,
        client: &ClientContext,
    ) -> Result<DateTime<Utc>, DomainError> {
        let phone = PhoneNumber::parse("phone", phone).map_err(one_violation)?;
        let Some(sender) = &self.citizen_sign_in.sms else {
            return Err(DomainError::FailedPrecondition(
                "SMS sign-in is not available on this server".to_owned(),
            ));
        };
        let now = self.clock.now();
        let phone_index = self.cipher.blind_index(&phone);
        // A blocked number gets no codes: no texts paid for, no new account.
        let blocked = crate::domain::block::BlockSubjects {
            phone_indexes: vec![phone_index.clone()],
            ..Default::default()
        };
        self.ensure_not_blocked(&blocked).await?;
        self.check_sms_limits(&phone_index, client).await?;

        let code = otp::new_code();
        let policy = self.citizen_sign_in.codes;
        let expires_at =
            now + chrono::Duration::from_std(policy.ttl).map_err(anyhow::Error::from)?;
        let stored = NewSmsCode {
            code_hash: self.citizen_sign_in.code_hasher.hash(&phone_index, &code),
            phone_index,
            created_at: now,
            expires_at,
        };
        self.store.save_sms_code(&stored).await?;
        let message = CodeMessage {
            phone: &phone,
            code: &code,
            valid_minutes: policy.ttl_minutes(),
            now,
        };
        sender.send_code(&message).await.map_err(sms_error)?;

        tracing::info!(sms.phone = %phone.masked(), "sign-in code sent");
        Ok(expires_at)
    }

    /// Signs a citizen in with a phone and the code texted to it, creating
    /// the account on first sign-in. A refusal for the privacy notice
    /// leaves the code usable for the retry.
    pub async fn sign_in_phone(
        &self,
        credential: CitizenCredential,
    ) -> Result<SignedIn, DomainError> {
        let (phone, code) = parse_phone_and_code("phone.", &credential.phone, &credential.code)?;
        let now = self.clock.now();
        let presented = self.presented_code(&phone, &code, now);
        self.store.check_sms_code(&presented).await?.into_result()?;

        let known = self.store.citizen_by_phone(&presented.phone_index).await?;
        let notice =
            self.notice_to_record(&credential.accepted_privacy_notice_version, known, now)?;
        let stored = self.stored_phone(&phone, &presented)?;
        let account = self
            .store
            .sign_in_phone(&presented, &stored, notice.as_ref())
            .await?
            .ok_or_else(code_used_meanwhile)?;

        tracing::info!(account.id = %account.id, "citizen signed in with a phone");
        self.open_session(account, now).await
    }

    // TODO(identity): a citizen cannot change or remove a linked phone or
    // WeChat identity, and two accounts of one person stay two; both need a
    // staff-assisted procedure that moves complaints and red envelopes.
    /// Adds a phone to the citizen's account. The code is checked first,
    /// so that only the phone's owner learns whether another account has it.
    pub async fn link_phone(
        &self,
        citizen: &Principal,
        phone: &str,
        code: &str,
    ) -> Result<CitizenView, DomainError> {
        let (phone, code) = parse_phone_and_code("", phone, code)?;
        let presented = self.presented_code(&phone, &code, self.clock.now());
        self.store.check_sms_code(&presented).await?.into_result()?;

        let stored = self.stored_phone(&phone, &presented)?;
        self.store
            .link_phone(citizen.account_id, &presented, &stored)
            .await?
            .ok_or_else(code_used_meanwhile)?
            .phone()?;

        tracing::info!(account.id = %citizen.account_id, "phone linked");
        self.my_identity(citizen).await
    }

    /// Adds the WeChat identity of a fresh `wx.login` code to the
    /// citizen's account.
    pub async fn link_wechat(
        &self,
        citizen: &Principal,
        code: &str,
    ) -> Result<CitizenView, DomainError> {
        let code = parse_wechat_code("code", code)?;
        let identity = self.exchange_wechat_code(&code).await?;
        self.store
            .link_wechat(citizen.account_id, &identity, self.clock.now())
            .await?
            .wechat()?;

        tracing::info!(account.id = %citizen.account_id, "WeChat linked");
        self.my_identity(citizen).await
    }

    pub async fn my_identity(&self, citizen: &Principal) -> Result<CitizenView, DomainError> {
        let record = self
            .store
            .citizen(citizen.account_id)
            .await?
            .ok_or(DomainError::NotFound("citizen"))?;
        let phone_masked = record
            .phone_cipher
            .as_deref()
            .map(|cipher| self.cipher.decrypt(cipher).map(|phone| phone.masked()))
            .transpose()?;
        let app_id = self
            .citizen_sign_in
            .wechat
            .as_ref()
            .map(WeChatClient::app_id);
        Ok(CitizenView {
            account_id: record.account.id,
            phone_masked,
            wechat_linked: app_id.is_some_and(|id| record.wechat_app_ids.iter().any(|a| a == id)),
            privacy_notice: record.privacy_notice,
        })
    }

    /// The openid a red envelope for this citizen is paid to, in this
    /// server's mini-program; `None` when the citizen never linked WeChat.
    pub async fn payout_openid(&self, citizen: AccountId) -> anyhow::Result<Option<String>> {
        let Some(wechat) = &self.citizen_sign_in.wechat else {
            return Ok(None);
        };
        let identity = self.store.wechat_identity(citizen, wechat.app_id()).await?;
        Ok(identity.map(|identity| identity.openid))
    }

    async fn exchange_wechat_code(
        &self,
        code: &WeChatLoginCode,
    ) -> Result<WeChatIdentity, DomainError> {
        let Some(wechat) = &self.citizen_sign_in.wechat else {
            return Err(DomainError::FailedPrecondition(
                "WeChat sign-in is not available on this server".to_owned(),
            ));
        };
        wechat.exchange(code).await.map_err(wechat_error)
    }

    /// What to record about the privacy notice, or the refusal that makes
    /// the app show it.
    fn notice_to_record(
        &self,
        offered: &str,
        known: Option<CitizenRecord>,
        now: DateTime<Utc>,
    ) -> Result<Option<NoticeAcceptance>, DomainError> {
        let current = &self.citizen_sign_in.privacy_notice_version;
        let recorded = known.and_then(|citizen| citizen.privacy_notice);
        let recorded = recorded.as_ref().map(|notice| notice.version.as_str());
        match privacy_notice_decision(current, offered, recorded) {
            NoticeDecision::AlreadyAccepted => Ok(None),
            NoticeDecision::AcceptNow => Ok(Some(NoticeAcceptance {
                version: current.clone(),
                accepted_at: now,
            })),
            NoticeDecision::Required => Err(notice_not_accepted(current)),
        }
    }

    /// Per phone first, then per address. SMS costs money, so these
    /// policies refuse while the shared limiter is down (unlike filing,
    /// which lets citizens through).
    async fn check_sms_limits(
        &self,
        phone_index: &str,
        client: &ClientContext,
    ) -> Result<(), DomainError> {
        let phone = Subject::new("phone", phone_index);
        let mut checks = vec![
            Check::new(Policy::SmsPhone, phone.clone()),
            Check::new(Policy::SmsPhoneDaily, phone),
        ];
        checks.extend(address_check(Policy::SmsIp, client));
        self.enforce(&checks).await
    }

    fn presented_code(
        &self,
        phone: &PhoneNumber,
        code: &OneTimeCode,
        now: DateTime<Utc>,
    ) -> PresentedCode {
        let phone_index = self.cipher.blind_index(phone);
        PresentedCode {
            code_hash: self.citizen_sign_in.code_hasher.hash(&phone_index, code),
            phone_index,
            now,
            max_attempts: self.citizen_sign_in.codes.max_attempts,
        }
    }

    fn stored_phone(
        &self,
        phone: &PhoneNumber,
        presented: &PresentedCode,
    ) -> Result<StoredPhone, DomainError> {
        Ok(StoredPhone {
            index: presented.phone_index.clone(),
            cipher: self.cipher.encrypt(phone)?,
        })
    }
}

fn parse_wechat_code(field: &str, raw: &str) -> Result<WeChatLoginCode, DomainError> {
    WeChatLoginCode::parse(field, raw).map_err(one_violation)
}

/// Both fields' problems at once; `prefix` names the credential ("phone.").
fn parse_phone_and_code(
    prefix: &str,
    phone: &str,
    code: &str,
) -> Result<(PhoneNumber, OneTimeCode), DomainError> {
    let mut violations = Violations::default();
    let phone = violations.check(PhoneNumber::parse(&format!("{prefix}phone"), phone));
    let code = violations.check(OneTimeCode::parse(&format!("{prefix}code"), code));
    violations.into_result()?;
    match (phone, code) {
        (Some(phone), Some(code)) => Ok((phone, code)),
        _ => Err(anyhow!("parsed fields went missing").into()),
    }
}

fn one_violation(violation: crate::domain::FieldViolation) -> DomainError {
    DomainError::InvalidInput(vec![violation])
}

fn code_used_meanwhile() -> DomainError {
    DomainError::Unauthenticated("the SMS code was used meanwhile; request a new one".to_owned())
}

fn wechat_error(error: WeChatError) -> DomainError {
    match error {
        WeChatError::InvalidCode => DomainError::Unauthenticated(
            "the WeChat login code is invalid, expired or used; call wx.login again".to_owned(),
        ),
        WeChatError::UserBlocked => {
            DomainError::PermissionDenied("WeChat has restricted this user".to_owned())
        }
        WeChatError::Busy { errcode } => {
            tracing::warn!(wechat.errcode = errcode, "WeChat is busy");
            DomainError::Unavailable("WeChat is busy; try again shortly".to_owned())
        }
        WeChatError::Unreachable(error) => {
            tracing::warn!(error = %format!("{error:#}"), "WeChat unreachable");
            DomainError::Unavailable("WeChat cannot be reached; try again shortly".to_owned())
        }
        WeChatError::Refused { errcode } => DomainError::Unexpected(anyhow!(
            "WeChat refused code2Session with errcode {errcode}; check the app id and secret"
        )),
    }
}

fn sms_error(error: SmsError) -> DomainError {
    match error {
        SmsError::InvalidNumber => {
            DomainError::invalid("phone", "this number cannot receive text messages")
        }
        SmsError::Limited => DomainError::RateLimited {
            retry_after: std::time::Duration::from_secs(60),
        },
        SmsError::Failed(error) => {
            tracing::error!(error = %format!("{error:#}"), "SMS sending failed");
            DomainError::Unavailable("the code could not be sent; try again later".to_owned())
        }
    }
}
