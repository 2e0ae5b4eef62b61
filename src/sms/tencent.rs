//! Tencent Cloud SMS (`SendSms` and `PullSmsSendStatus`, API version
//! 2021-01-11), signed with TC3-HMAC-SHA256 as Tencent Cloud's API
//! documentation specifies.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CodeMessage, DeliveryReport, NoticeMessage, SmsError, SmsSender};
use crate::notify::DeliveryError;
use crate::security::Secret;

pub const DEFAULT_ENDPOINT: &str = "https://sms.tencentcloudapi.com";
pub const DEFAULT_REGION: &str = "ap-guangzhou";
const SERVICE: &str = "sms";
const SEND: &str = "SendSms";
const PULL_STATUS: &str = "PullSmsSendStatus";
/// Delivery reports asked for per call (the API's maximum).
const PULL_LIMIT: u32 = 100;
const VERSION: &str = "2021-01-11";
const ALGORITHM: &str = "TC3-HMAC-SHA256";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const SIGNED_HEADERS: &str = "content-type;host;x-tc-action";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct TencentSmsConfig {
    /// `https://sms.tencentcloudapi.com`; tests point it at a local fake.
    pub endpoint: String,
    pub region: String,
    pub secret_id: String,
    pub secret_key: Secret,
    pub sdk_app_id: String,
    /// The approved signature (签名) shown in front of the text.
    pub sign_name: String,
    /// An approved template with two parameters: the code, then the
    /// minutes it stays valid.
    pub template_id: String,
}

pub struct TencentSms {
    http: reqwest::Client,
    config: TencentSmsConfig,
    /// The Host header as signed: host, and port when not the default.
    host: String,
}

impl std::fmt::Debug for TencentSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TencentSms({})", self.host)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendSms<'a> {
    phone_number_set: [String; 1],
    sms_sdk_app_id: &'a str,
    sign_name: &'a str,
    template_id: &'a str,
    template_param_set: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    session_context: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PullSmsSendStatus<'a> {
    limit: u32,
    sms_sdk_app_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response: Reply,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    #[serde(default)]
    error: Option<Failure>,
    #[serde(default)]
    send_status_set: Vec<Failure>,
    #[serde(default)]
    pull_sms_send_status_set: Vec<Status>,
}

/// An error, or one number's status; both carry a `Code`. Messages are
/// not read: they may repeat the phone number.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Failure {
    code: String,
    #[serde(default)]
    serial_no: Option<String>,
}

/// One delivery report. The phone number fields are not read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    serial_no: String,
    report_status: String,
    #[serde(default)]
    user_receive_time: Option<String>,
}

impl TencentSms {
    pub fn new(config: TencentSmsConfig) -> anyhow::Result<TencentSms> {
        let url = reqwest::Url::parse(&config.endpoint).context("Bad Tencent SMS endpoint")?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => anyhow::bail!("the Tencent SMS endpoint names no host"),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("Failed to build the Tencent SMS HTTP client")?;
        Ok(TencentSms { http, config, host })
    }

    fn send_payload(
        &self,
        phone: &crate::domain::phone::PhoneNumber,
        template_id: &str,
        params: &[String],
        context: &str,
    ) -> anyhow::Result<String> {
        let request = SendSms {
            phone_number_set: [format!("+86{}", phone.expose())],
            sms_sdk_app_id: &self.config.sdk_app_id,
            sign_name: &self.config.sign_name,
            template_id,
            template_param_set: params,
            session_context: context,
        };
        serde_json::to_string(&request).context("Failed to encode SendSms")
    }

    /// Calls one action and reads its answer.
    async fn call(
        &self,
        action: &str,
        payload: String,
        now: DateTime<Utc>,
    ) -> Result<Reply, CallError> {
        let signing = Signing {
            secret_id: &self.config.secret_id,
            secret_key: self.config.secret_key.expose(),
            host: &self.host,
            action,
            timestamp: now.timestamp(),
        };
        let response = self
            .http
            .post(&self.config.endpoint)
            .header("Content-Type", CONTENT_TYPE)
            .header("X-TC-Action", action)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Region", &self.config.region)
            .header("X-TC-Timestamp", signing.timestamp.to_string())
            .header("Authorization", signing.authorization(payload.as_bytes()))
            .body(payload)
            .send()
            .await
            .map_err(CallError::Http)?
            .error_for_status()
            .map_err(CallError::Http)?;
        let body = response
            .bytes()
            .await
            .map_err(|_| CallError::BrokenAnswer)?;
        let envelope: Envelope =
            serde_json::from_slice(&body).map_err(|_| CallError::BrokenAnswer)?;
        Ok(envelope.response)
    }
}

/// Why a call to Tencent Cloud got no usable answer.
enum CallError {
    Http(reqwest::Error),
    /// An answer came but could not be read: the request was received.
    BrokenAnswer,
}

impl CallError {
    fn for_codes(self) -> SmsError {
        match self {
            CallError::Http(error) => SmsError::Failed(
                anyhow::Error::new(error).context("Failed to call Tencent Cloud SMS"),
            ),
            CallError::BrokenAnswer => SmsError::Failed(anyhow::anyhow!(
                "Tencent Cloud SMS's answer is not the expected JSON"
            )),
        }
    }

    fn for_notices(self) -> DeliveryError {
        match self {
            CallError::Http(error) => DeliveryError::from_http("Tencent Cloud SMS", &error),
            CallError::BrokenAnswer => {
                DeliveryError::NoAnswer("Tencent Cloud SMS: unreadable answer".to_owned())
            }
        }
    }
}

#[async_trait]
impl SmsSender for TencentSms {
    async fn send_code(&self, message: &CodeMessage<'_>) -> Result<(), SmsError> {
        let params = [
            message.code.expose().to_owned(),
            message.valid_minutes.to_string(),
        ];
        let payload = self.send_payload(message.phone, &self.config.template_id, &params, "")?;
        let reply = self
            .call(SEND, payload, message.now)
            .await
            .map_err(CallError::for_codes)?;
        outcome(reply)
    }

    async fn send_notice(
        &self,
        message: &NoticeMessage<'_>,
    ) -> Result<Option<String>, DeliveryError> {
        let payload = self
            .send_payload(
                message.phone,
                message.template_id,
                message.params,
                message.context,
            )
            .map_err(|_| DeliveryError::Refused("the text could not be encoded".to_owned()))?;
        let reply = self
            .call(SEND, payload, message.now)
            .await
            .map_err(CallError::for_notices)?;
        notice_outcome(reply)
    }

    async fn delivery_reports(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryReport>, DeliveryError> {
        let request = PullSmsSendStatus {
            limit: PULL_LIMIT,
            sms_sdk_app_id: &self.config.sdk_app_id,
        };
        let payload = serde_json::to_string(&request)
            .map_err(|_| DeliveryError::Refused("the request could not be encoded".to_owned()))?;
        let reply = self
            .call(PULL_STATUS, payload, now)
            .await
            .map_err(CallError::for_notices)?;
        if let Some(error) = reply.error {
            return Err(DeliveryError::Busy(error.code));
        }
        Ok(reply
            .pull_sms_send_status_set
            .into_iter()
            .map(|status| DeliveryReport {
                delivered: status.report_status == "SUCCESS",
                at: status
                    .user_receive_time
                    .as_deref()
                    .and_then(district_time)
                    .unwrap_or(now),
                serial_no: status.serial_no,
                status: status.report_status,
            })
            .collect())
    }
}

/// "2026-12-03 10:00:05" in district time, as delivery reports give it.
fn district_time(text: &str) -> Option<DateTime<Utc>> {
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
    let at = local
        .and_local_timezone(crate::domain::time::shanghai())
        .single()?;
    Some(at.with_timezone(&Utc))
}

/// A notification's answer: the serial number, or what the refusal means
/// for trying again. Frequency limits and the provider's own faults pass;
/// a refused number, template or signature does not.
fn notice_outcome(reply: Reply) -> Result<Option<String>, DeliveryError> {
    let code = match (reply.error, reply.send_status_set.into_iter().next()) {
        (Some(error), _) => error.code,
        (None, Some(status)) if status.code == "Ok" => return Ok(status.serial_no),
        (None, Some(status)) => status.code,
        (None, None) => return Err(DeliveryError::NoAnswer("no send status".to_owned())),
    };
    if code.starts_with("LimitExceeded")
        || code.starts_with("InternalError")
        || code.starts_with("RequestLimitExceeded")
        || code == "FailedOperation.InsufficientBalanceInSmsPackage"
    {
        Err(DeliveryError::Busy(code))
    } else {
        Err(DeliveryError::Refused(code))
    }
}

fn outcome(reply: Reply) -> Result<(), SmsError> {
    let code = match (reply.error, reply.send_status_set.into_iter().next()) {
        (Some(error), _) => error.code,
        (None, Some(status)) if status.code == "Ok" => return Ok(()),
        (None, Some(status)) => status.code,
        (None, None) => "NoSendStatus".to_owned(),
    };
    if code.starts_with("LimitExceeded") {
        Err(SmsError::Limited)
    } else if code.contains("PhoneNumber") {
        Err(SmsError::InvalidNumber)
    } else {
        Err(SmsError::Failed(anyhow::anyhow!(
            "Tencent Cloud SMS refused to send: {code}"
        )))
    }
}

/// The inputs of one request's TC3-HMAC-SHA256 signature.
pub struct Signing<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub host: &'a str,
    /// The X-TC-Action header, which is signed.
    pub action: &'a str,
    /// Seconds since the epoch; also sent as X-TC-Timestamp.
    pub timestamp: i64,
}

impl Signing<'_> {
    /// The `Authorization` header for a POST of this action with this body.
    pub fn authorization(&self, payload: &[u8]) -> String {
        let date = DateTime::<Utc>::from_timestamp(self.timestamp, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let scope = format!("{date}/{SERVICE}/tc3_request");
        // Method, path, query (none), the signed headers (names and values
        // lower-cased), their names, and the body's digest.
        let canonical_headers = format!(
            "content-type:{CONTENT_TYPE}\nhost:{}\nx-tc-action:{}\n",
            self.host,
            self.action.to_ascii_lowercase(),
        );
        let canonical_request = format!(
            "POST\n/\n\n{canonical_headers}\n{SIGNED_HEADERS}\n{}",
            hex(&Sha256::digest(payload)),
        );
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{scope}\n{}",
            self.timestamp,
            hex(&Sha256::digest(canonical_request.as_bytes())),
        );

        let secret_date = hmac(
            format!("TC3{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let secret_service = hmac(&secret_date, SERVICE.as_bytes());
        let secret_signing = hmac(&secret_service, b"tc3_request");
        let signature = hex(&hmac(&secret_signing, string_to_sign.as_bytes()));
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={SIGNED_HEADERS}, \
             Signature={signature}",
            self.secret_id
        )
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_names_the_key_scope_and_signed_headers() {
        let signing = Signing {
            secret_id: "AKIDexample",
            secret_key: "key",
            host: "sms.tencentcloudapi.com",
            action: "SendSms",
            timestamp: 1_764_720_000, // 2025-12-03 00:00:00 UTC
        };
        let header = signing.authorization(b"{}");
        assert!(header.starts_with(
            "TC3-HMAC-SHA256 Credential=AKIDexample/2025-12-03/sms/tc3_request, \
             SignedHeaders=content-type;host;x-tc-action, Signature="
        ));
        let signature = header.rsplit("Signature=").next().unwrap();
        assert_eq!(signature.len(), 64);
        assert_ne!(header, signing.authorization(b"{ }"), "the body is signed");
    }

    #[test]
    fn notification_answers_say_whether_to_try_again() {
        let status = |code: &str| Reply {
            error: None,
            send_status_set: vec![Failure {
                code: code.to_owned(),
                serial_no: Some("serial-1".to_owned()),
            }],
            pull_sms_send_status_set: vec![],
        };
        assert_eq!(
            notice_outcome(status("Ok")),
            Ok(Some("serial-1".to_owned()))
        );
        assert!(matches!(
            notice_outcome(status("LimitExceeded.PhoneNumberThirtySecondLimit")),
            Err(DeliveryError::Busy(_))
        ));
        assert!(matches!(
            notice_outcome(status("InvalidParameterValue.IncorrectPhoneNumber")),
            Err(DeliveryError::Refused(_))
        ));
        assert!(matches!(
            notice_outcome(status("InternalError.Timeout")),
            Err(DeliveryError::Busy(_))
        ));
    }

    #[test]
    fn provider_codes_map_to_what_a_caller_can_act_on() {
        let status = |code: &str| Reply {
            error: None,
            send_status_set: vec![Failure {
                code: code.to_owned(),
                serial_no: None,
            }],
            pull_sms_send_status_set: vec![],
        };
        assert!(outcome(status("Ok")).is_ok());
        assert!(matches!(
            outcome(status("LimitExceeded.PhoneNumberDailyLimit")),
            Err(SmsError::Limited)
        ));
        assert!(matches!(
            outcome(status("InvalidParameterValue.IncorrectPhoneNumber")),
            Err(SmsError::InvalidNumber)
        ));
        let signature_failure = Reply {
            error: Some(Failure {
                code: "AuthFailure.SignatureFailure".to_owned(),
                serial_no: None,
            }),
            send_status_set: vec![],
            pull_sms_send_status_set: vec![],
        };
        assert!(matches!(
            outcome(signature_failure),
            Err(SmsError::Failed(_))
        ));
    }
}
