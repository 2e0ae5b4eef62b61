//! Configuration of notifications: the templates, quiet hours, retries,
//! the sender's batches and leases, and the staff webhooks. WeChat and SMS
//! credentials are the sign-in ones (`HUYING_WECHAT_*`, `HUYING_SMS_*`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::domain::notification::{QuietHours, RetryPolicy};
use crate::domain::notification_templates::NotificationTemplates;
use crate::notify::webhook::WebhookRoutes;

#[derive(Debug, Clone)]
pub struct NotificationConfig {
    pub templates: NotificationTemplates,
    /// Non-urgent messages to citizens wait while these hours last.
    pub quiet_hours: Option<QuietHours>,
    pub retry: RetryPolicy,
    /// Notifications a sender takes per pass.
    pub batch: u32,
    /// How long a taken notification stays with its sender; longer than
    /// any pass can take, since another replica takes it over after.
    pub lease: Duration,
    /// "formal", "trial" or "developer": which mini-program a WeChat card opens.
    pub miniprogram_state: String,
    pub staff_webhooks: WebhookRoutes,
}

impl Default for NotificationConfig {
    fn default() -> NotificationConfig {
        NotificationConfig {
            templates: NotificationTemplates::bundled(),
            quiet_hours: Some(QuietHours::parse("22:00-08:00").expect("valid default")),
            retry: RetryPolicy::default(),
            batch: 20,
            lease: Duration::from_secs(300),
            miniprogram_state: "formal".to_owned(),
            staff_webhooks: WebhookRoutes::default(),
        }
    }
}

impl NotificationConfig {
    /// Reads `HUYING_NOTIFICATION_TEMPLATES_FILE`, `HUYING_QUIET_HOURS`,
    /// `HUYING_NOTIFY_*`, `HUYING_WECHAT_MINIPROGRAM_STATE` and
    /// `HUYING_STAFF_WEBHOOKS` over the defaults.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<NotificationConfig> {
        let mut config = NotificationConfig::default();
        if let Some(path) = var("HUYING_NOTIFICATION_TEMPLATES_FILE").map(PathBuf::from) {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            config.templates = NotificationTemplates::from_json(&text)
                .context("HUYING_NOTIFICATION_TEMPLATES_FILE")?;
        }
        if let Some(hours) = var("HUYING_QUIET_HOURS") {
            config.quiet_hours = match hours.trim() {
                "off" | "none" => None,
                text => Some(
                    QuietHours::parse(text)
                        .map_err(|reason| anyhow::anyhow!("HUYING_QUIET_HOURS: {reason}"))?,
                ),
            };
        }
        let seconds = |name: &str| -> anyhow::Result<Option<Duration>> {
            var(name)
                .map(|v| {
                    Ok(Duration::from_secs(
                        v.parse().with_context(|| name.to_owned())?,
                    ))
                })
                .transpose()
        };
        if let Some(delay) = seconds("HUYING_NOTIFY_RETRY_FIRST_SECS")? {
            config.retry.first_delay = delay;
        }
        if let Some(delay) = seconds("HUYING_NOTIFY_RETRY_MAX_SECS")? {
            config.retry.max_delay = delay;
        }
        if let Some(n) = var("HUYING_NOTIFY_ATTEMPTS_PER_CHANNEL") {
            config.retry.attempts_per_channel =
                n.parse().context("HUYING_NOTIFY_ATTEMPTS_PER_CHANNEL")?;
        }
        if let Some(n) = var("HUYING_NOTIFY_BATCH") {
            config.batch = n.parse().context("HUYING_NOTIFY_BATCH")?;
        }
        if let Some(lease) = seconds("HUYING_NOTIFY_LEASE_SECS")? {
            config.lease = lease;
        }
        if let Some(state) = var("HUYING_WECHAT_MINIPROGRAM_STATE") {
            config.miniprogram_state = state.trim().to_owned();
        }
        if let Some(routes) = var("HUYING_STAFF_WEBHOOKS") {
            config.staff_webhooks =
                WebhookRoutes::parse(&routes).context("HUYING_STAFF_WEBHOOKS")?;
        }
        config.check()?;
        Ok(config)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.batch == 0 || self.retry.attempts_per_channel == 0 {
            bail!("HUYING_NOTIFY_BATCH and HUYING_NOTIFY_ATTEMPTS_PER_CHANNEL must be above zero");
        }
        if self.retry.first_delay.is_zero() || self.retry.max_delay < self.retry.first_delay {
            bail!("notification retries need a first delay above zero and a maximum above it");
        }
        // Two senders per minute of calls: a pass of a batch takes at most
        // a few timed-out calls per notification, all at once.
        if self.lease < Duration::from_secs(60) {
            bail!("HUYING_NOTIFY_LEASE_SECS must be at least 60");
        }
        if !matches!(
            self.miniprogram_state.as_str(),
            "formal" | "trial" | "developer"
        ) {
            bail!("HUYING_WECHAT_MINIPROGRAM_STATE must be formal, trial or developer");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> anyhow::Result<NotificationConfig> {
        let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
        NotificationConfig::from_env(&|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_and_overrides() {
        let config = from(&[]).unwrap();
        assert!(config.quiet_hours.is_some());
        assert!(config.staff_webhooks.is_empty());
        let config = from(&[
            ("HUYING_QUIET_HOURS", "off"),
            ("HUYING_NOTIFY_ATTEMPTS_PER_CHANNEL", "5"),
            (
                "HUYING_STAFF_WEBHOOKS",
                "*=https://robot.example/send?key=k",
            ),
        ])
        .unwrap();
        assert!(config.quiet_hours.is_none());
        assert_eq!(config.retry.attempts_per_channel, 5);
        assert!(!config.staff_webhooks.is_empty());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("HUYING_QUIET_HOURS", "late"),
            ("HUYING_NOTIFY_BATCH", "0"),
            ("HUYING_NOTIFY_LEASE_SECS", "5"),
            ("HUYING_WECHAT_MINIPROGRAM_STATE", "beta"),
            ("HUYING_STAFF_WEBHOOKS", "nowhere"),
            (
                "HUYING_NOTIFICATION_TEMPLATES_FILE",
                "/nonexistent/templates.json",
            ),
        ] {
            let error = format!("{:#}", from(&[(name, value)]).unwrap_err());
            let named = error.contains(name)
                || error.contains("HUYING_NOTIFY")
                || error.contains("/nonexistent");
            assert!(named, "{name}: {error}");
        }
    }
}
