//! WeChat mini-program sign-in: trading the code `wx.login` gave the
//! mini-program for the citizen's openid ("code2Session",
//! `GET /sns/jscode2session`).
//!
//! WeChat also returns a `session_key`. It is never read into memory here,
//! let alone stored: it only serves to decrypt data the mini-program gets
//! from WeChat (and phone numbers now come through a separate code), so
//! keeping it would be a liability with no use.

use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::domain::citizen::WeChatLoginCode;
use crate::security::Secret;
use crate::store::identity::WeChatIdentity;

pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The mini-program's credentials, from configuration.
#[derive(Debug, Clone)]
pub struct WeChatConfig {
    /// `https://api.weixin.qq.com`; tests point it at a local fake.
    pub api_base: String,
    pub app_id: String,
    pub app_secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum WeChatError {
    /// The code is unknown, expired or used (errcode 40029, 40163).
    #[error("the wx.login code is invalid or used")]
    InvalidCode,
    /// WeChat holds this user for risk control (errcode 40226).
    #[error("WeChat blocked this user")]
    UserBlocked,
    /// Busy (-1) or over the API's quota (45011): try again shortly.
    #[error("WeChat is busy (errcode {errcode})")]
    Busy { errcode: i64 },
    /// No answer, or one that makes no sense.
    #[error("WeChat could not be reached")]
    Unreachable(#[source] anyhow::Error),
    /// Anything else: a wrong app id or secret (40013, 40125), ….
    #[error("WeChat refused the exchange (errcode {errcode})")]
    Refused { errcode: i64 },
}

/// code2Session's answer; `session_key` is deliberately not read.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    errcode: i64,
}

pub struct WeChatClient {
    http: reqwest::Client,
    config: WeChatConfig,
}

impl std::fmt::Debug for WeChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeChatClient({})", self.config.app_id)
    }
}

impl WeChatClient {
    pub fn new(config: WeChatConfig) -> anyhow::Result<WeChatClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("Failed to build the WeChat HTTP client")?;
        Ok(WeChatClient { http, config })
    }

    pub fn app_id(&self) -> &str {
        &self.config.app_id
    }

    /// Asks WeChat who the code belongs to.
    pub async fn exchange(&self, code: &WeChatLoginCode) -> Result<WeChatIdentity, WeChatError> {
        let url = format!(
            "{}/sns/jscode2session",
            self.config.api_base.trim_end_matches('/')
        );
        let query = [
            ("appid", self.config.app_id.as_str()),
            ("secret", self.config.app_secret.expose()),
            ("js_code", code.expose()),
            ("grant_type", "authorization_code"),
        ];
        // The URL carries the secret: errors are stripped of it before
        // they can reach a log.
        let response = self
            .http
            .get(url)
            .query(&query)
            .send()
            .await
            .map_err(|error| unreachable(error.without_url()))?
            .error_for_status()
            .map_err(|error| unreachable(error.without_url()))?;
        // WeChat answers with text/plain, so the body is parsed as is.
        let body = response
            .bytes()
            .await
            .map_err(|error| unreachable(error.without_url()))?;
        let reply: Reply = serde_json::from_slice(&body)
            .context("WeChat's answer is not the expected JSON")
            .map_err(WeChatError::Unreachable)?;
        self.identity(reply)
    }

    fn identity(&self, reply: Reply) -> Result<WeChatIdentity, WeChatError> {
        match reply.errcode {
            0 => {}
            40029 | 40163 => return Err(WeChatError::InvalidCode),
            40226 => return Err(WeChatError::UserBlocked),
            -1 | 45011 => {
                return Err(WeChatError::Busy {
                    errcode: reply.errcode,
                });
            }
            errcode => return Err(WeChatError::Refused { errcode }),
        }
        let openid = reply
            .openid
            .filter(|openid| !openid.is_empty())
            .context("WeChat's answer has no openid")
            .map_err(WeChatError::Unreachable)?;
        Ok(WeChatIdentity {
            app_id: self.config.app_id.clone(),
            openid,
            unionid: reply.unionid.filter(|unionid| !unionid.is_empty()),
        })
    }
}

fn unreachable(error: reqwest::Error) -> WeChatError {
    WeChatError::Unreachable(anyhow::Error::new(error).context("Failed to call code2Session"))
}
