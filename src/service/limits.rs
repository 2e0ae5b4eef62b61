//! Applying the rate-limit policies to the subjects of a request, and what
//! a refusal means to the caller.

use super::Services;
use crate::domain::account::Principal;
use crate::domain::client::ClientContext;
use crate::domain::error::DomainError;
use crate::domain::phone::PhoneNumber;
use crate::limiter::{Check, Policy, Refusal, Subject};

/// The credential a sign-in attempt names, counted by `signin.account`.
#[derive(Debug, Clone, Copy)]
pub enum SignInAttempt<'a> {
    Dev {
        subject: &'a str,
    },
    Staff {
        username: &'a str,
    },
    Phone {
        phone: &'a str,
    },
    /// A `wx.login` code names nobody until WeChat answers; the account is
    /// counted after the exchange.
    WeChat,
}

impl Services {
    /// Counts the request against every check, or says why it may not go on.
    pub(crate) async fn enforce(&self, checks: &[Check]) -> Result<(), DomainError> {
        self.limits.check(checks).await.map_err(refusal)
    }

    /// One read call by a signed-in session (`read.session`).
    pub async fn limit_read(&self, reader: &Principal) -> Result<(), DomainError> {
        let session = Subject::new("session", &reader.session_id);
        self.enforce(&[Check::new(Policy::ReadSession, session)])
            .await
    }

    /// One sign-in attempt, before its credential is checked: per account
    /// or credential (`signin.account`), then per address (`signin.ip`).
    pub async fn limit_sign_in(
        &self,
        client: &ClientContext,
        attempt: SignInAttempt<'_>,
    ) -> Result<(), DomainError> {
        let account = match attempt {
            SignInAttempt::Dev { subject } => Some(Subject::private("dev", subject.trim())),
            SignInAttempt::Staff { username } => {
                Some(Subject::private("staff", &username.trim().to_lowercase()))
            }
            // A malformed number is refused by the sign-in itself.
            SignInAttempt::Phone { phone } => PhoneNumber::parse("phone", phone)
                .ok()
                .map(|phone| Subject::new("phone", &self.cipher.blind_index(&phone))),
            SignInAttempt::WeChat => None,
        };
        let mut checks: Vec<Check> = account
            .map(|account| Check::new(Policy::SignInAccount, account))
            .into_iter()
            .collect();
        checks.extend(address_check(Policy::SignInIp, client));
        self.enforce(&checks).await
    }
}

/// The check of `policy` on the client's address, when it has one.
pub(crate) fn address_check(policy: Policy, client: &ClientContext) -> Option<Check> {
    let bucket = client.address_bucket()?;
    Some(Check::new(policy, Subject::new("ip", &bucket)))
}

/// The check of `policy` on the client's device, when it named one.
pub(crate) fn device_check(policy: Policy, client: &ClientContext) -> Option<Check> {
    let device = client.device.as_ref()?;
    Some(Check::new(policy, Subject::new("device", device.as_str())))
}

fn refusal(refusal: Refusal) -> DomainError {
    match refusal {
        Refusal::Limited { retry_after, .. } => DomainError::RateLimited { retry_after },
        Refusal::Unavailable { policy } => DomainError::Unavailable(match policy {
            Policy::SmsPhone | Policy::SmsPhoneDaily | Policy::SmsIp => {
                "sign-in codes cannot be sent right now; try again later".to_owned()
            }
            _ => format!(
                "{} cannot be checked right now; try again later",
                policy.name()
            ),
        }),
    }
}
