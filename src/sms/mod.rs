//! Texting one-time sign-in codes and notifications. Every message costs
//! money, so senders are only reached after the rate limits passed (see
//! `service::identity` and `service::notify`).

pub mod tencent;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::tencent::{TencentSms, TencentSmsConfig};
use crate::domain::citizen::OneTimeCode;
use crate::domain::phone::PhoneNumber;
use crate::notify::DeliveryError;

/// One code to text.
#[derive(Debug, Clone)]
pub struct CodeMessage<'a> {
    pub phone: &'a PhoneNumber,
    pub code: &'a OneTimeCode,
    pub valid_minutes: u32,
    /// Signed requests carry the time; it comes from the server's clock.
    pub now: DateTime<Utc>,
}

/// One notification to text: an approved template and its parameters.
#[derive(Debug, Clone)]
pub struct NoticeMessage<'a> {
    pub phone: &'a PhoneNumber,
    pub template_id: &'a str,
    pub params: &'a [String],
    /// Echoed back in delivery reports (the attempt it belongs to).
    pub context: &'a str,
    pub now: DateTime<Utc>,
}

/// What the provider says about one text it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The provider's id of the message, as returned when it was sent.
    pub serial_no: String,
    pub delivered: bool,
    /// The provider's status word, e.g. "SUCCESS" or "FAIL".
    pub status: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider says the number cannot receive messages.
    #[error("the provider refused the phone number")]
    InvalidNumber,
    /// The provider's own per-number or per-day limits.
    #[error("the provider's sending limit was reached")]
    Limited,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    async fn send_code(&self, message: &CodeMessage<'_>) -> Result<(), SmsError>;

    /// Whether texts reach anyone: notifications are not counted as sent
    /// through a sender that only logs.
    fn delivers(&self) -> bool {
        true
    }

    /// Texts a notification; the provider's id of the message when it
    /// gives one.
    async fn send_notice(
        &self,
        message: &NoticeMessage<'_>,
    ) -> Result<Option<String>, DeliveryError>;

    /// Delivery reports the provider has not handed out yet (each is
    /// handed out once); none from senders that do not report.
    async fn delivery_reports(
        &self,
        _now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryReport>, DeliveryError> {
        Ok(Vec::new())
    }
}

/// Which sender a server uses.
#[derive(Debug, Clone)]
pub enum SmsConfig {
    /// Logs instead of texting: the embedded default.
    Development,
    Tencent(TencentSmsConfig),
}

/// Sends nothing: says at info that a code went to a (masked) number, and
/// gives the code itself only at debug level, for a developer's terminal.
#[derive(Debug, Default)]
pub struct DevelopmentSms;

#[async_trait]
impl SmsSender for DevelopmentSms {
    async fn send_code(&self, message: &CodeMessage<'_>) -> Result<(), SmsError> {
        let phone = message.phone.masked();
        tracing::info!(sms.phone = %phone, "development SMS: a sign-in code was sent");
        tracing::debug!(
            sms.phone = %phone,
            sms.code = message.code.expose(),
            "development SMS: the code"
        );
        Ok(())
    }

    fn delivers(&self) -> bool {
        false
    }

    async fn send_notice(
        &self,
        message: &NoticeMessage<'_>,
    ) -> Result<Option<String>, DeliveryError> {
        tracing::info!(
            sms.phone = %message.phone.masked(),
            sms.template = message.template_id,
            "development SMS: a notification was sent"
        );
        Ok(None)
    }
}
