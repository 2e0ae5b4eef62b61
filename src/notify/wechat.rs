//! WeChat mini-program subscribe messages (`subscribeMessage.send`), with
//! the access token from the stable-token endpoint (`/cgi-bin/stable_token`,
//! never with `force_refresh`, which would cut other holders' tokens short),
//! kept in the shared [`TokenCache`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::DeliveryError;
use super::token_cache::TokenCache;
use crate::security::Secret;
use crate::wechat::WeChatConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How a send answered "invalid or expired token" is told apart.
const TOKEN_REFUSED: &str = "token refused";
/// A token is dropped from the cache this long before WeChat expires it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// One message to send.
#[derive(Debug, Clone)]
pub struct SubscribeMessage<'a> {
    pub openid: &'a str,
    pub template_id: &'a str,
    pub page: String,
    /// Template keys and their values.
    pub data: Vec<(String, String)>,
}

/// Why WeChat did not send a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// The user refused, or cancelled the subscription (errcode 43101):
    /// whatever grants were recorded for the template are void.
    Unsubscribed,
    /// Anything else; the grant was not used unless it is `NoAnswer`.
    Failed(DeliveryError),
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

// TODO(notifications): WeChat reports whether each subscribe message
// reached the user only as an event pushed to the mini-program's message
// push URL (subscribe_msg_sent_event); nothing here receives it, so WeChat
// messages are counted sent but never delivered.
pub struct SubscribeMessenger {
    http: reqwest::Client,
    config: WeChatConfig,
    tokens: Arc<dyn TokenCache>,
    /// "formal", "trial" or "developer": which version of the
    /// mini-program the card opens.
    miniprogram_state: String,
}

impl std::fmt::Debug for SubscribeMessenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubscribeMessenger({})", self.config.app_id)
    }
}

impl SubscribeMessenger {
    pub fn new(
        config: WeChatConfig,
        tokens: Arc<dyn TokenCache>,
        miniprogram_state: String,
    ) -> anyhow::Result<SubscribeMessenger> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(SubscribeMessenger {
            http,
            config,
            tokens,
            miniprogram_state,
        })
    }

    pub fn app_id(&self) -> &str {
        &self.config.app_id
    }

    /// Sends one message; a token WeChat calls invalid is replaced once.
    pub async fn send(&self, message: &SubscribeMessage<'_>) -> Result<(), SubscribeError> {
        let token = self.token().await.map_err(SubscribeError::Failed)?;
        match self.send_with(&token, message).await {
            Err(SubscribeError::Failed(DeliveryError::Busy(detail)))
                if detail.starts_with(TOKEN_REFUSED) =>
            {
                if let Err(error) = self.tokens.forget(&self.config.app_id, &token).await {
                    tracing::warn!(error = %format!("{error:#}"), "could not drop a stale token");
                }
                let fresh = self.token().await.map_err(SubscribeError::Failed)?;
                self.send_with(&fresh, message).await
            }
            other => other,
        }
    }

    async fn send_with(
        &self,
        token: &Secret,
        message: &SubscribeMessage<'_>,
    ) -> Result<(), SubscribeError> {
        let data: Map<String, Value> = message
            .data
            .iter()
            .map(|(key, value)| (key.clone(), json!({ "value": value })))
            .collect();
        let mut body = json!({
            "touser": message.openid,
            "template_id": message.template_id,
            "data": data,
            "miniprogram_state": self.miniprogram_state,
            "lang": "zh_CN",
        });
        if !message.page.is_empty() {
            body["page"] = json!(message.page);
        }
        let url = format!("{}/cgi-bin/message/subscribe/send", self.base());
        let reply = self
            .post(&url, Some(token), &body, "subscribeMessage.send")
            .await
            .map_err(SubscribeError::Failed)?;
        match reply.errcode {
            0 => Ok(()),
            43101 => Err(SubscribeError::Unsubscribed),
            40001 | 40014 | 42001 => Err(SubscribeError::Failed(DeliveryError::Busy(format!(
                "{TOKEN_REFUSED} (errcode {})",
                reply.errcode
            )))),
            -1 | 45009 | 45011 => Err(SubscribeError::Failed(DeliveryError::Busy(format!(
                "errcode {}",
                reply.errcode
            )))),
            errcode => Err(SubscribeError::Failed(DeliveryError::Refused(format!(
                "errcode {errcode}"
            )))),
        }
    }

    /// The shared token, fetched from the stable-token endpoint when the
    /// cache has none.
    async fn token(&self) -> Result<Secret, DeliveryError> {
        let app_id = &self.config.app_id;
        match self.tokens.get(app_id).await {
            Ok(Some(token)) => return Ok(token),
            Ok(None) => {}
            // Without the cache the token is fetched anyway: the stable
            // endpoint hands out the same one.
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "token cache unavailable"),
        }
        let body = json!({
            "grant_type": "client_credential",
            "appid": app_id,
            "secret": self.config.app_secret.expose(),
            "force_refresh": false,
        });
        let url = format!("{}/cgi-bin/stable_token", self.base());
        // No message went out yet, so an unanswered token call is only busy.
        let reply =
            self.post(&url, None, &body, "stable_token")
                .await
                .map_err(|error| match error {
                    DeliveryError::NoAnswer(detail) => DeliveryError::Busy(detail),
                    other => other,
                })?;
        let (Some(token), Some(expires_in)) = (reply.access_token, reply.expires_in) else {
            return Err(match reply.errcode {
                -1 | 45009 | 45011 => {
                    DeliveryError::Busy(format!("token errcode {}", reply.errcode))
                }
                errcode => DeliveryError::Refused(format!("token errcode {errcode}")),
            });
        };
        let token = Secret::new(token);
        let ttl = Duration::from_secs(expires_in).saturating_sub(EXPIRY_MARGIN);
        if !ttl.is_zero()
            && let Err(error) = self.tokens.put(app_id, &token, ttl).await
        {
            tracing::warn!(error = %format!("{error:#}"), "could not share the WeChat token");
        }
        Ok(token)
    }

    async fn post(
        &self,
        url: &str,
        token: Option<&Secret>,
        body: &Value,
        what: &str,
    ) -> Result<Reply, DeliveryError> {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.query(&[("access_token", token.expose())]);
        }
        // The URL carries the token: errors are logged without it.
        let response = request
            .send()
            .await
            .map_err(|e| DeliveryError::from_http(what, &e.without_url()))?
            .error_for_status()
            .map_err(|e| DeliveryError::from_http(what, &e.without_url()))?;
        let body = response
            .bytes()
            .await
            .map_err(|_| DeliveryError::NoAnswer(format!("{what}: the answer broke off")))?;
        serde_json::from_slice(&body)
            .map_err(|_| DeliveryError::NoAnswer(format!("{what}: the answer is not JSON")))
    }

    fn base(&self) -> &str {
        self.config.api_base.trim_end_matches('/')
    }
}
