//! Paying red envelopes: the provider trait, WeChat Pay's merchant
//! transfer (商家转账) and the simulated provider of the embedded server.

pub mod simulated;
pub mod wechat_pay;

use std::time::Duration;

use async_trait::async_trait;

/// A transfer to start. The same `out_bill_no` is the same transfer: the
/// provider never makes two bills of one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub out_bill_no: String,
    pub openid: String,
    pub amount_fen: i64,
    /// Shown to the citizen; at most 32 characters.
    pub remark: String,
}

/// Where a bill stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// Accepted, processing, transferring: the outcome will come.
    InFlight,
    /// Waiting for the citizen to confirm in WeChat.
    WaitingForConfirmation,
    Success,
    /// Being cancelled at our request.
    Cancelling,
    /// Closed without paying: failed, cancelled, or not confirmed in time.
    Closed,
}

impl ProviderState {
    /// Maps WeChat Pay's `state` of a transfer bill.
    pub fn from_wechat(state: &str) -> Option<ProviderState> {
        Some(match state {
            "ACCEPTED" | "PROCESSING" | "TRANSFERING" => ProviderState::InFlight,
            "WAIT_USER_CONFIRM" => ProviderState::WaitingForConfirmation,
            "SUCCESS" => ProviderState::Success,
            "CANCELING" => ProviderState::Cancelling,
            "FAIL" | "CANCELLED" => ProviderState::Closed,
            _ => return None,
        })
    }
}

/// A bill as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillStatus {
    pub out_bill_no: String,
    pub state: ProviderState,
    pub transfer_bill_no: Option<String>,
    /// Only in the answer that created the bill: what the mini-program
    /// passes to its confirmation call, good once.
    pub package_info: Option<String>,
    pub fail_reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    /// No answer in time, or an answer that does not say what happened:
    /// the transfer may or may not exist; query it before anything else.
    #[error("the payment provider's outcome is unknown")]
    Unknown(#[source] anyhow::Error),
    /// Too many requests, after backing off.
    #[error("the payment provider is rate limiting")]
    RateLimited { retry_after: Duration },
    /// The provider refused the request; nothing was created or changed.
    #[error("the payment provider refused: {code}")]
    Refused { code: String, message: String },
    /// A query for a bill the provider does not know.
    #[error("the payment provider has no such bill")]
    NotFound,
}

/// A notification the provider sent, once its signature is verified and
/// its content decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The provider's id of the notification, for replay protection.
    pub id: String,
    pub bill: BillStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("the notification's signature does not verify")]
    BadSignature,
    #[error("the notification's timestamp is not fresh")]
    Stale,
    #[error("the notification cannot be read: {0}")]
    Malformed(String),
}

/// The notification's HTTP headers the provider signs with.
#[derive(Debug, Clone, Default)]
pub struct SignedHeaders {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
}

#[async_trait]
pub trait PayoutProvider: Send + Sync + 'static {
    /// For logs and for staff: "wechat_pay" or "simulated".
    fn name(&self) -> &'static str;

    /// The longest one call may take, retries for rate limits included:
    /// leases on bills outlast the calls made under them.
    fn longest_call(&self) -> Duration;

    /// The merchant and app ids the mini-program passes with a package.
    fn merchant_id(&self) -> &str;
    fn app_id(&self) -> &str;

    async fn create_transfer(&self, request: &TransferRequest) -> Result<BillStatus, PayoutError>;

    async fn query_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError>;

    /// Asks to cancel a bill still waiting for confirmation.
    async fn cancel_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError>;

    /// Verifies and opens a notification posted to the callback endpoint.
    fn open_notification(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Notification, NotificationError>;
}

/// The remark WeChat shows with a transfer: at most 32 characters.
pub fn remark_for(complaint_id: i64) -> String {
    let remark = format!("坪山区诉求受理红包（诉求{complaint_id}）");
    remark.chars().take(32).collect()
}

/// The merchant bill number of an envelope's transfer attempt: letters
/// and digits only, at most 32, the same for every retry of one attempt.
pub fn out_bill_no(envelope_id: i64, attempt: u32) -> String {
    format!("HYRE{envelope_id}A{attempt}")
}

/// A random suffix that makes each lease holder distinct.
pub fn lease_nonce() -> String {
    let mut bytes = [0u8; 6];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
