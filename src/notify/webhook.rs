//! Reminders and escalations to a unit's staff through an HTTP webhook, in
//! the shape enterprise messaging robots take (WeCom's group robot: a JSON
//! `{"msgtype": "text", "text": {"content": …}}` POST, answered with
//! `errcode`). Each unit may have its own robot; a unit without one uses
//! the nearest unit above it that has one, then the default (`*`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::DeliveryError;
use crate::domain::directory::Directory;
use crate::security::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Robots refuse longer texts.
pub const MAX_CONTENT_BYTES: usize = 2048;

/// Which robot each unit's messages go to. URLs carry the robot's key, so
/// they are secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookRoutes(Vec<(String, Secret)>);

impl WebhookRoutes {
    /// `unit=url` entries separated by commas; `*` names the default.
    pub fn parse(text: &str) -> anyhow::Result<WebhookRoutes> {
        let mut routes = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((unit, url)) = entry.split_once('=') else {
                anyhow::bail!("webhook entries look like unit=https://…");
            };
            let (unit, url) = (unit.trim(), url.trim());
            let parsed = reqwest::Url::parse(url)
                .map_err(|_| anyhow::anyhow!("the webhook of {unit} is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                anyhow::bail!("the webhook of {unit} must be http or https");
            }
            if routes.iter().any(|(known, _)| known == unit) {
                anyhow::bail!("{unit} has two webhooks");
            }
            routes.push((unit.to_owned(), Secret::new(url)));
        }
        Ok(WebhookRoutes(routes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The robot for a unit: its own, its nearest ancestor's, or the default.
    pub fn for_unit(&self, unit: &str, directory: &Directory) -> Option<&Secret> {
        let find = |id: &str| self.0.iter().find(|(u, _)| u == id).map(|(_, url)| url);
        let mut current = unit.to_owned();
        loop {
            if let Some(url) = find(&current) {
                return Some(url);
            }
            match directory.parent(&current) {
                Some(parent) => current = parent.id.clone(),
                None => return find("*"),
            }
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
}

#[derive(Debug)]
pub struct Webhook {
    http: reqwest::Client,
}

impl Webhook {
    pub fn new() -> anyhow::Result<Webhook> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Webhook { http })
    }

    /// Posts one text; errcode 45009 (the robot's per-minute limit) is busy.
    pub async fn send(&self, url: &Secret, content: &str) -> Result<(), DeliveryError> {
        let body = json!({ "msgtype": "text", "text": { "content": fit(content) } });
        let response = self
            .http
            .post(url.expose())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| DeliveryError::from_http("webhook", &e.without_url()))?
            .error_for_status()
            .map_err(|e| DeliveryError::from_http("webhook", &e.without_url()))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|_| DeliveryError::NoAnswer("webhook: the answer broke off".to_owned()))?;
        let reply: Reply = serde_json::from_slice(&bytes)
            .map_err(|_| DeliveryError::NoAnswer("webhook: the answer is not JSON".to_owned()))?;
        match reply.errcode {
            0 => Ok(()),
            -1 | 45009 => Err(DeliveryError::Busy(format!("errcode {}", reply.errcode))),
            errcode => Err(DeliveryError::Refused(format!("errcode {errcode}"))),
        }
    }
}

/// The text cut to the robot's limit, on a character boundary.
fn fit(content: &str) -> &str {
    if content.len() <= MAX_CONTENT_BYTES {
        return content;
    }
    let mut end = MAX_CONTENT_BYTES;
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    &content[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_refuse_garbage() {
        let routes =
            WebhookRoutes::parse("*=https://a.example/x?key=1, cm:heping=http://b/y").unwrap();
        assert!(!routes.is_empty());
        assert!(!format!("{routes:?}").contains("key=1"));
        assert!(WebhookRoutes::parse("cm:heping").is_err());
        assert!(WebhookRoutes::parse("a=ftp://x").is_err());
        assert!(WebhookRoutes::parse("a=http://x,a=http://y").is_err());
    }

    #[test]
    fn long_texts_are_cut_on_a_character() {
        let text = "督".repeat(1000);
        let cut = fit(&text);
        assert!(cut.len() <= MAX_CONTENT_BYTES);
        assert_eq!(cut.chars().count(), MAX_CONTENT_BYTES / 3);
    }
}
