//! WeChat Pay API v3, merchant transfer (商家转账): create a transfer bill,
//! query it by the merchant's number, cancel it while it waits for the
//! citizen's confirmation, and read the notifications WeChat Pay posts.
//!
//! Requests are signed with the merchant's RSA key (the
//! `WECHATPAY2-SHA256-RSA2048` authorization); answers and notifications
//! are verified against the WeChat Pay public key over their raw body,
//! and refused unless their timestamp is within five minutes of ours.
//! Notification content is AEAD_AES_256_GCM with the APIv3 key.

use std::sync::Arc;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    BillStatus, Notification, NotificationError, PayoutError, PayoutProvider, ProviderState,
    SignedHeaders, TransferRequest,
};
use crate::clock::Clock;
use crate::security::Secret;

pub const DEFAULT_API_BASE: &str = "https://api.mch.weixin.qq.com";
const TRANSFER_PATH: &str = "/v3/fund-app/mch-transfer/transfer-bills";
/// How far a signed timestamp may be from our clock.
const FRESHNESS: i64 = 300;
/// Attempts of one call while WeChat Pay answers 429, and the first pause.
const RATE_LIMIT_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The merchant's credentials and transfer settings, from configuration.
#[derive(Debug, Clone)]
pub struct WeChatPayConfig {
    /// `https://api.mch.weixin.qq.com`; tests point it at a local fake.
    pub api_base: String,
    pub mch_id: String,
    /// The mini-program's app id, whose openids are paid.
    pub app_id: String,
    /// The serial number of the merchant's API certificate.
    pub merchant_serial: String,
    /// The merchant's API private key, PKCS#8 PEM.
    pub merchant_key_pem: Secret,
    /// The WeChat Pay public key (PEM) and its id ("PUB_KEY_ID_…").
    pub platform_public_key_pem: String,
    pub platform_key_id: String,
    /// The APIv3 key: 32 characters.
    pub api_v3_key: Secret,
    /// Where WeChat Pay posts notifications (HTTPS in production).
    pub notify_url: String,
    /// The transfer scene the merchant applied for: 1000 is 现金营销.
    pub scene_id: String,
    /// The scene's report fields: 活动名称 and 奖励说明 for 现金营销.
    pub activity_name: String,
    pub reward_description: String,
    pub request_timeout: Duration,
}

pub struct WeChatPay {
    http: reqwest::Client,
    config: WeChatPayConfig,
    merchant_key: RsaPrivateKey,
    platform_key: RsaPublicKey,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WeChatPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeChatPay({})", self.config.mch_id)
    }
}

/// A bill in WeChat Pay's answers and notifications.
#[derive(Debug, Deserialize)]
struct Bill {
    out_bill_no: String,
    #[serde(default)]
    transfer_bill_no: Option<String>,
    state: String,
    #[serde(default)]
    package_info: Option<String>,
    #[serde(default)]
    fail_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorReply {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    resource: Resource,
}

#[derive(Debug, Deserialize)]
struct Resource {
    algorithm: String,
    ciphertext: String,
    #[serde(default)]
    associated_data: String,
    nonce: String,
}

impl WeChatPay {
    pub fn new(config: WeChatPayConfig, clock: Arc<dyn Clock>) -> anyhow::Result<WeChatPay> {
        let merchant_key = RsaPrivateKey::from_pkcs8_pem(config.merchant_key_pem.expose())
            .context("The WeChat Pay merchant key is not a PKCS#8 PEM RSA key")?;
        let platform_key = RsaPublicKey::from_public_key_pem(&config.platform_public_key_pem)
            .context("The WeChat Pay public key is not a PEM RSA public key")?;
        anyhow::ensure!(
            config.api_v3_key.expose().len() == 32,
            "the WeChat Pay APIv3 key must be 32 characters"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(config.request_timeout)
            .build()
            .context("Failed to build the WeChat Pay HTTP client")?;
        Ok(WeChatPay {
            http,
            config,
            merchant_key,
            platform_key,
            clock,
        })
    }

    /// The `Authorization` header of a request.
    fn authorization(&self, method: &str, path: &str, body: &str) -> anyhow::Result<String> {
        let timestamp = self.clock.now().timestamp().to_string();
        let nonce = nonce();
        let message = format!("{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n");
        let digest = Sha256::digest(message.as_bytes());
        let signature = self
            .merchant_key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .context("Failed to sign a WeChat Pay request")?;
        Ok(format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",\
             signature=\"{}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.config.mch_id,
            B64.encode(signature),
            self.config.merchant_serial
        ))
    }

    /// Checks WeChat Pay's signature over `timestamp\nnonce\nbody\n` and
    /// the timestamp's freshness.
    fn verify(&self, headers: &SignedHeaders, body: &[u8]) -> Result<(), NotificationError> {
        if headers.serial != self.config.platform_key_id {
            return Err(NotificationError::BadSignature);
        }
        let timestamp: i64 = headers
            .timestamp
            .parse()
            .map_err(|_| NotificationError::Malformed("bad timestamp".to_owned()))?;
        if (self.clock.now().timestamp() - timestamp).abs() > FRESHNESS {
            return Err(NotificationError::Stale);
        }
        let mut message = format!("{}\n{}\n", headers.timestamp, headers.nonce).into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        let signature = B64
            .decode(&headers.signature)
            .map_err(|_| NotificationError::BadSignature)?;
        let digest = Sha256::digest(&message);
        self.platform_key
            .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
            .map_err(|_| NotificationError::BadSignature)
    }

    /// Sends one signed request, backing off while rate limited, and
    /// returns the verified status and body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), PayoutError> {
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=RATE_LIMIT_ATTEMPTS {
            let (status, bytes) = self
                .send_once(method.clone(), path, body.as_deref())
                .await?;
            if status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Ok((status, bytes));
            }
            if attempt < RATE_LIMIT_ATTEMPTS {
                tracing::info!(payout.path = path, "WeChat Pay rate limited; backing off");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        Err(PayoutError::RateLimited { retry_after: pause })
    }

    async fn send_once(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), PayoutError> {
        let unknown = |error: anyhow::Error| PayoutError::Unknown(error);
        let authorization = self
            .authorization(method.as_str(), path, body.unwrap_or(""))
            .map_err(unknown)?;
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", authorization)
            .header("accept", "application/json")
            .header("wechatpay-serial", &self.config.platform_key_id);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .map_err(|e| unknown(anyhow::Error::new(e).context("Failed to reach WeChat Pay")))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // Nothing was done; whether or not the answer is signed, the
            // only thing to do is to wait and send again.
            return Ok((status, Vec::new()));
        }
        let headers = signed_headers(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unknown(anyhow::Error::new(e).context("Failed to read WeChat Pay")))?;
        // Only a verified answer is believed; anything else leaves the
        // outcome unknown, to be settled by a query.
        self.verify(&headers, &bytes).map_err(|error| {
            unknown(anyhow::anyhow!(
                "WeChat Pay's answer did not verify: {error}"
            ))
        })?;
        Ok((status, bytes.to_vec()))
    }

    fn bill(&self, status: reqwest::StatusCode, body: &[u8]) -> Result<BillStatus, PayoutError> {
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(PayoutError::NotFound);
        }
        if status.is_server_error() {
            return Err(PayoutError::Unknown(anyhow::anyhow!(
                "WeChat Pay answered {status}"
            )));
        }
        if !status.is_success() {
            let error: ErrorReply = serde_json::from_slice(body).unwrap_or(ErrorReply {
                code: status.to_string(),
                message: String::new(),
            });
            return Err(PayoutError::Refused {
                code: error.code,
                message: error.message,
            });
        }
        let bill: Bill = serde_json::from_slice(body)
            .context("WeChat Pay's bill is not the expected JSON")
            .map_err(PayoutError::Unknown)?;
        bill_status(bill).map_err(PayoutError::Unknown)
    }

    fn transfer_body(&self, request: &TransferRequest) -> String {
        json!({
            "appid": self.config.app_id,
            "out_bill_no": request.out_bill_no,
            "transfer_scene_id": self.config.scene_id,
            "openid": request.openid,
            "transfer_amount": request.amount_fen,
            "transfer_remark": request.remark,
            "notify_url": self.config.notify_url,
            "user_recv_perception": "活动奖励",
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": self.config.activity_name},
                {"info_type": "奖励说明", "info_content": self.config.reward_description},
            ],
        })
        .to_string()
    }
}

fn bill_status(bill: Bill) -> anyhow::Result<BillStatus> {
    let state = ProviderState::from_wechat(&bill.state)
        .with_context(|| format!("unknown transfer state {:?}", bill.state))?;
    Ok(BillStatus {
        out_bill_no: bill.out_bill_no,
        state,
        transfer_bill_no: bill.transfer_bill_no,
        package_info: bill.package_info.filter(|p| !p.is_empty()),
        fail_reason: bill.fail_reason.filter(|r| !r.is_empty()),
    })
}

fn signed_headers(headers: &reqwest::header::HeaderMap) -> SignedHeaders {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    SignedHeaders {
        timestamp: get("wechatpay-timestamp"),
        nonce: get("wechatpay-nonce"),
        signature: get("wechatpay-signature"),
        serial: get("wechatpay-serial"),
    }
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Merchant bill numbers are letters and digits, so they need no escaping
/// in a path; anything else is refused rather than sent.
fn bill_path(out_bill_no: &str) -> Result<String, PayoutError> {
    if out_bill_no.is_empty() || !out_bill_no.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(PayoutError::Refused {
            code: "PARAM_ERROR".to_owned(),
            message: "out_bill_no must be letters and digits".to_owned(),
        });
    }
    Ok(format!("{TRANSFER_PATH}/out-bill-no/{out_bill_no}"))
}

#[async_trait]
impl PayoutProvider for WeChatPay {
    fn name(&self) -> &'static str {
        "wechat_pay"
    }

    fn longest_call(&self) -> Duration {
        // Every attempt may time out, with the pauses between them.
        let pauses = FIRST_BACKOFF * (2u32.pow(RATE_LIMIT_ATTEMPTS - 1) - 1);
        self.config.request_timeout * RATE_LIMIT_ATTEMPTS + pauses
    }

    fn merchant_id(&self) -> &str {
        &self.config.mch_id
    }

    fn app_id(&self) -> &str {
        &self.config.app_id
    }

    async fn create_transfer(&self, request: &TransferRequest) -> Result<BillStatus, PayoutError> {
        let body = self.transfer_body(request);
        let (status, bytes) = self
            .call(reqwest::Method::POST, TRANSFER_PATH, Some(body))
            .await?;
        self.bill(status, &bytes)
    }

    async fn query_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError> {
        let path = bill_path(out_bill_no)?;
        let (status, bytes) = self.call(reqwest::Method::GET, &path, None).await?;
        self.bill(status, &bytes)
    }

    async fn cancel_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError> {
        let path = format!("{}/cancel", bill_path(out_bill_no)?);
        let (status, bytes) = self
            .call(reqwest::Method::POST, &path, Some(String::new()))
            .await?;
        self.bill(status, &bytes)
    }

    fn open_notification(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Notification, NotificationError> {
        self.verify(headers, body)?;
        let malformed = |what: &str| NotificationError::Malformed(what.to_owned());
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|_| malformed("not the expected JSON"))?;
        let resource = envelope.resource;
        if resource.algorithm != "AEAD_AES_256_GCM" {
            return Err(malformed("unknown algorithm"));
        }
        let nonce: [u8; 12] = resource
            .nonce
            .as_bytes()
            .try_into()
            .map_err(|_| malformed("the nonce is not 12 bytes"))?;
        let ciphertext = B64
            .decode(&resource.ciphertext)
            .map_err(|_| malformed("the ciphertext is not base64"))?;
        let key: [u8; 32] = self
            .config
            .api_v3_key
            .expose()
            .as_bytes()
            .try_into()
            .map_err(|_| malformed("the APIv3 key is not 32 bytes"))?;
        let payload = Payload {
            msg: &ciphertext,
            aad: resource.associated_data.as_bytes(),
        };
        let plain = Aes256Gcm::new(&key.into())
            .decrypt(&Nonce::<Aes256Gcm>::from(nonce), payload)
            .map_err(|_| NotificationError::BadSignature)?;
        let bill: Bill =
            serde_json::from_slice(&plain).map_err(|_| malformed("the bill is not JSON"))?;
        let bill = bill_status(bill).map_err(|e| NotificationError::Malformed(e.to_string()))?;
        Ok(Notification {
            id: envelope.id,
            bill,
        })
    }
}
