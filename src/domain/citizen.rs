//! Citizens' own sign-ins: the credentials they present, the one-time SMS
//! code rules, the privacy notice, and the refusals an app acts on.

use std::fmt;
use std::time::Duration;

use super::error::{DomainError, FieldViolation, Refusal};

/// Digits in a one-time SMS code.
pub const CODE_DIGITS: usize = 6;

/// A one-time SMS code. `Debug` hides it, so a stray `{:?}` cannot log it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    pub fn parse(field: &str, raw: &str) -> Result<OneTimeCode, FieldViolation> {
        let code = raw.trim();
        if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldViolation::new(
                field,
                "must be the 6-digit code sent by SMS",
            ));
        }
        Ok(OneTimeCode(code.to_owned()))
    }

    /// The code for a number below 10^6, zero-padded.
    pub fn from_number(number: u32) -> OneTimeCode {
        OneTimeCode(format!("{:06}", number % 1_000_000))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(******)")
    }
}

/// The code `wx.login` gave a mini-program: valid once, for a few minutes.
#[derive(Clone, PartialEq, Eq)]
pub struct WeChatLoginCode(String);

impl WeChatLoginCode {
    pub fn parse(field: &str, raw: &str) -> Result<WeChatLoginCode, FieldViolation> {
        let code = raw.trim();
        let printable = code.bytes().all(|b| b.is_ascii_graphic());
        if code.is_empty() || code.len() > 128 || !printable {
            return Err(FieldViolation::new(
                field,
                "must be the code wx.login returned (1 to 128 printable characters)",
            ));
        }
        Ok(WeChatLoginCode(code.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WeChatLoginCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeChatLoginCode(..)")
    }
}

/// How one-time codes live and die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    pub ttl: Duration,
    /// Wrong attempts after which a code is dead.
    pub max_attempts: u32,
}

impl Default for CodePolicy {
    fn default() -> CodePolicy {
        CodePolicy {
            ttl: Duration::from_secs(5 * 60),
            max_attempts: 5,
        }
    }
}

impl CodePolicy {
    /// Whole minutes, as the SMS text states them.
    pub fn ttl_minutes(&self) -> u32 {
        u32::try_from(self.ttl.as_secs().div_ceil(60)).unwrap_or(u32::MAX)
    }
}

/// What checking a presented code against the stored one found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Matched,
    /// Wrong; the code survives this many more attempts.
    Wrong {
        attempts_left: u32,
    },
    /// No code, expired, or dead after too many wrong attempts.
    Unusable,
}

impl CodeCheck {
    pub fn into_result(self) -> Result<(), DomainError> {
        match self {
            CodeCheck::Matched => Ok(()),
            CodeCheck::Wrong { attempts_left: 0 } | CodeCheck::Unusable => {
                Err(DomainError::Unauthenticated(
                    "no valid SMS code for this number; request a new one".to_owned(),
                ))
            }
            CodeCheck::Wrong { attempts_left } => Err(DomainError::Unauthenticated(format!(
                "the SMS code is wrong; {attempts_left} attempts left"
            ))),
        }
    }
}

/// Whether a sign-in may go ahead as far as the privacy notice goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeDecision {
    /// The account accepted the current version before.
    AlreadyAccepted,
    /// The request accepts the current version: record it now.
    AcceptNow,
    /// Neither: the app must show the notice and ask again.
    Required,
}

/// `offered` is the version the request says the citizen accepted,
/// `recorded` the one stored with the account (if there is one). The first
/// acceptance of a version is the one kept.
pub fn privacy_notice_decision(
    current: &str,
    offered: &str,
    recorded: Option<&str>,
) -> NoticeDecision {
    if recorded == Some(current) {
        NoticeDecision::AlreadyAccepted
    } else if offered.trim() == current {
        NoticeDecision::AcceptNow
    } else {
        NoticeDecision::Required
    }
}

pub const PRIVACY_NOTICE_NOT_ACCEPTED: &str = "PRIVACY_NOTICE_NOT_ACCEPTED";
pub const PHONE_BELONGS_TO_ANOTHER_ACCOUNT: &str = "PHONE_BELONGS_TO_ANOTHER_ACCOUNT";
pub const ACCOUNT_HAS_ANOTHER_PHONE: &str = "ACCOUNT_HAS_ANOTHER_PHONE";
pub const WECHAT_BELONGS_TO_ANOTHER_ACCOUNT: &str = "WECHAT_BELONGS_TO_ANOTHER_ACCOUNT";
pub const ACCOUNT_HAS_ANOTHER_WECHAT: &str = "ACCOUNT_HAS_ANOTHER_WECHAT";

pub fn notice_not_accepted(current: &str) -> DomainError {
    DomainError::Refused(
        Refusal::new(
            PRIVACY_NOTICE_NOT_ACCEPTED,
            "accept the current privacy notice to sign in",
        )
        .with("current_version", current),
    )
}

/// What linking a sign-in to an account came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked now, or it already was linked to this account.
    Linked,
    /// Another account holds it. Accounts are never merged: both may hold
    /// complaints and red envelopes of their own.
    HeldByAnother,
    /// This account already holds a different one.
    AccountHasAnother,
}

impl LinkOutcome {
    pub fn phone(self) -> Result<(), DomainError> {
        self.into_result(
            (
                PHONE_BELONGS_TO_ANOTHER_ACCOUNT,
                "this phone number signs in to another account",
            ),
            (
                ACCOUNT_HAS_ANOTHER_PHONE,
                "this account already has another phone number",
            ),
        )
    }

    pub fn wechat(self) -> Result<(), DomainError> {
        self.into_result(
            (
                WECHAT_BELONGS_TO_ANOTHER_ACCOUNT,
                "this WeChat user signs in to another account",
            ),
            (
                ACCOUNT_HAS_ANOTHER_WECHAT,
                "this account is already linked to another WeChat user",
            ),
        )
    }

    fn into_result(
        self,
        held: (&'static str, &str),
        has_another: (&'static str, &str),
    ) -> Result<(), DomainError> {
        let (reason, message) = match self {
            LinkOutcome::Linked => return Ok(()),
            LinkOutcome::HeldByAnother => held,
            LinkOutcome::AccountHasAnother => has_another,
        };
        Err(DomainError::Refused(Refusal::new(reason, message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_never_printed() {
        assert_eq!(
            OneTimeCode::parse("c", " 012345 ").unwrap().expose(),
            "012345"
        );
        for raw in ["12345", "1234567", "12345a", ""] {
            assert!(OneTimeCode::parse("c", raw).is_err(), "{raw} was accepted");
        }
        assert_eq!(OneTimeCode::from_number(42).expose(), "000042");
        assert!(!format!("{:?}", OneTimeCode::from_number(123456)).contains("123456"));
    }

    #[test]
    fn the_notice_is_accepted_by_the_request_or_on_record() {
        use NoticeDecision::*;
        assert_eq!(
            privacy_notice_decision("2026-01", "2026-01", None),
            AcceptNow
        );
        assert_eq!(
            privacy_notice_decision("2026-01", "", Some("2026-01")),
            AlreadyAccepted
        );
        assert_eq!(
            privacy_notice_decision("2026-01", "2026-01", Some("2026-01")),
            AlreadyAccepted
        );
        assert_eq!(
            privacy_notice_decision("2026-01", "2026-01", Some("2025-06")),
            AcceptNow
        );
        assert_eq!(
            privacy_notice_decision("2026-01", "2025-06", Some("2025-06")),
            Required
        );
        assert_eq!(privacy_notice_decision("2026-01", "", None), Required);
    }

    #[test]
    fn the_last_wrong_attempt_says_to_request_a_new_code() {
        let last = CodeCheck::Wrong { attempts_left: 0 }.into_result();
        assert!(matches!(last, Err(DomainError::Unauthenticated(m)) if m.contains("request")));
        assert!(CodeCheck::Matched.into_result().is_ok());
    }
}
