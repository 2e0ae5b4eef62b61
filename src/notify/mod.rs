//! The outside channels notifications leave through: WeChat subscribe
//! messages (with the access token every replica shares), and the staff
//! webhook. Texts go through `crate::sms`. Each call's failure says what
//! the sender may do about it.

pub mod token_cache;
pub mod webhook;
pub mod wechat;

use crate::domain::notification::AttemptOutcome;

/// Why a channel did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Refused for good (invalid number, unknown user, bad template): the
    /// same message will never pass.
    #[error("refused: {0}")]
    Refused(String),
    /// Busy, over a quota, or unreachable before the request went out:
    /// worth trying again later.
    #[error("busy: {0}")]
    Busy(String),
    /// The request may have reached the channel, and no answer came: it
    /// must not be repeated, or the citizen might be told twice.
    #[error("no answer: {0}")]
    NoAnswer(String),
}

impl DeliveryError {
    /// How the attempt is recorded, and the detail kept with it.
    pub fn outcome(&self) -> (AttemptOutcome, &str) {
        match self {
            DeliveryError::Refused(detail) => (AttemptOutcome::Permanent, detail),
            DeliveryError::Busy(detail) => (AttemptOutcome::Transient, detail),
            DeliveryError::NoAnswer(detail) => (AttemptOutcome::Unknown, detail),
        }
    }

    /// Classifies a failed HTTP call: a connection that never opened sent
    /// nothing; anything later may have.
    pub fn from_http(what: &str, error: &reqwest::Error) -> DeliveryError {
        if error.is_connect() {
            DeliveryError::Busy(format!("{what}: connection failed"))
        } else if let Some(status) = error.status() {
            if status.is_server_error() || status.as_u16() == 429 {
                DeliveryError::Busy(format!("{what}: HTTP {}", status.as_u16()))
            } else {
                DeliveryError::Refused(format!("{what}: HTTP {}", status.as_u16()))
            }
        } else if error.is_timeout() {
            DeliveryError::NoAnswer(format!("{what}: timed out"))
        } else {
            DeliveryError::NoAnswer(format!("{what}: the call broke off"))
        }
    }
}
