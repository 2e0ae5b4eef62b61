//! Configuration of citizens' own sign-ins: WeChat, SMS codes and the
//! privacy notice. Secrets are wrapped so that `Debug` cannot print them.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::domain::citizen::CodePolicy;
use crate::security::Secret;
use crate::sms::{SmsConfig, TencentSmsConfig};
use crate::wechat::WeChatConfig;

#[derive(Debug, Clone)]
pub struct CitizenSignInConfig {
    /// The privacy notice in force; citizens must have accepted it.
    pub privacy_notice_version: String,
    /// `None`: WeChat sign-in is refused (no app id configured).
    pub wechat: Option<WeChatConfig>,
    /// `None`: SMS codes are refused (no provider configured).
    pub sms: Option<SmsConfig>,
    pub codes: CodePolicy,
}

impl CitizenSignInConfig {
    /// The embedded default: no WeChat, SMS codes logged by the
    /// development sender.
    pub fn embedded() -> CitizenSignInConfig {
        CitizenSignInConfig {
            privacy_notice_version: "2026-01".to_owned(),
            wechat: None,
            sms: Some(SmsConfig::Development),
            codes: CodePolicy::default(),
        }
    }

    /// Reads the `HUYING_PRIVACY_*`, `HUYING_WECHAT_*`, `HUYING_SMS_*` and
    /// `HUYING_TENCENT_SMS_*` variables over the defaults.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        embedded: bool,
    ) -> anyhow::Result<CitizenSignInConfig> {
        let mut config = CitizenSignInConfig::embedded();
        if let Some(version) = var("HUYING_PRIVACY_NOTICE_VERSION") {
            config.privacy_notice_version = version.trim().to_owned();
        }
        config.wechat = wechat_from_env(var)?;
        config.sms = match var("HUYING_SMS_PROVIDER").as_deref() {
            Some("tencent") => Some(SmsConfig::Tencent(tencent_from_env(var)?)),
            Some("development") => Some(SmsConfig::Development),
            Some("none") => None,
            None if embedded => Some(SmsConfig::Development),
            None => None,
            Some(other) => {
                bail!("HUYING_SMS_PROVIDER must be tencent, development or none, not {other:?}")
            }
        };
        if let Some(secs) = var("HUYING_SMS_CODE_TTL_SECS") {
            config.codes.ttl =
                Duration::from_secs(secs.parse().context("HUYING_SMS_CODE_TTL_SECS")?);
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.privacy_notice_version.is_empty() {
            bail!("HUYING_PRIVACY_NOTICE_VERSION must not be empty");
        }
        if self.codes.ttl.is_zero() || self.codes.max_attempts == 0 {
            bail!("SMS codes need a lifetime and at least one attempt");
        }
        Ok(())
    }
}

fn wechat_from_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<WeChatConfig>> {
    match (var("HUYING_WECHAT_APP_ID"), var("HUYING_WECHAT_APP_SECRET")) {
        (Some(app_id), Some(secret)) => Ok(Some(WeChatConfig {
            api_base: var("HUYING_WECHAT_API_BASE")
                .unwrap_or_else(|| crate::wechat::DEFAULT_API_BASE.to_owned()),
            app_id,
            app_secret: Secret::new(secret),
        })),
        (None, None) => Ok(None),
        _ => bail!("set both HUYING_WECHAT_APP_ID and HUYING_WECHAT_APP_SECRET, or neither"),
    }
}

fn tencent_from_env(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<TencentSmsConfig> {
    let required = |name: &str| {
        var(name).with_context(|| format!("{name} is required with HUYING_SMS_PROVIDER=tencent"))
    };
    Ok(TencentSmsConfig {
        endpoint: var("HUYING_TENCENT_SMS_ENDPOINT")
            .unwrap_or_else(|| crate::sms::tencent::DEFAULT_ENDPOINT.to_owned()),
        region: var("HUYING_TENCENT_SMS_REGION")
            .unwrap_or_else(|| crate::sms::tencent::DEFAULT_REGION.to_owned()),
        secret_id: required("HUYING_TENCENT_SMS_SECRET_ID")?,
        secret_key: Secret::new(required("HUYING_TENCENT_SMS_SECRET_KEY")?),
        sdk_app_id: required("HUYING_TENCENT_SMS_SDK_APP_ID")?,
        sign_name: required("HUYING_TENCENT_SMS_SIGN_NAME")?,
        template_id: required("HUYING_TENCENT_SMS_TEMPLATE_ID")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)], embedded: bool) -> anyhow::Result<CitizenSignInConfig> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CitizenSignInConfig::from_env(&|name| vars.get(name).cloned(), embedded)
    }

    #[test]
    fn production_sends_no_sms_unless_a_provider_is_named() {
        assert!(from(&[], false).unwrap().sms.is_none());
        assert!(matches!(
            from(&[], true).unwrap().sms,
            Some(SmsConfig::Development)
        ));
        assert!(from(&[("HUYING_SMS_PROVIDER", "tencent")], false).is_err());
    }

    #[test]
    fn wechat_needs_both_app_id_and_secret_and_hides_the_secret() {
        assert!(from(&[("HUYING_WECHAT_APP_ID", "wx1")], false).is_err());
        let config = from(
            &[
                ("HUYING_WECHAT_APP_ID", "wx1"),
                ("HUYING_WECHAT_APP_SECRET", "very-secret"),
            ],
            false,
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret"));
        assert_eq!(config.wechat.unwrap().api_base, "https://api.weixin.qq.com");
    }
}
