//! Configuration of red envelope payouts: which provider pays, and WeChat
//! Pay's merchant credentials.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::payout::wechat_pay::{DEFAULT_API_BASE, WeChatPayConfig};
use crate::security::Secret;

#[derive(Debug, Clone)]
pub enum PayoutConfig {
    /// Claims are refused (UNAVAILABLE): the default beside PostgreSQL.
    None,
    /// Records transfers locally and pays nobody: the embedded default,
    /// refused beside PostgreSQL.
    Simulated,
    WeChatPay(Box<WeChatPayConfig>),
}

impl PayoutConfig {
    pub fn name(&self) -> &'static str {
        match self {
            PayoutConfig::None => "none",
            PayoutConfig::Simulated => "simulated",
            PayoutConfig::WeChatPay(_) => "wechat_pay",
        }
    }

    /// Reads `HUYING_PAYOUT_PROVIDER` and, for `wechat_pay`, the merchant's
    /// `HUYING_WECHAT_PAY_*` variables.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        embedded: bool,
        mini_program_app_id: Option<&str>,
    ) -> anyhow::Result<PayoutConfig> {
        let default = if embedded { "simulated" } else { "none" };
        let provider = var("HUYING_PAYOUT_PROVIDER").unwrap_or_else(|| default.to_owned());
        match provider.as_str() {
            "none" => Ok(PayoutConfig::None),
            "simulated" if embedded => Ok(PayoutConfig::Simulated),
            "simulated" => {
                bail!("HUYING_PAYOUT_PROVIDER=simulated pays nobody; it is refused with PostgreSQL")
            }
            "wechat_pay" => Ok(PayoutConfig::WeChatPay(Box::new(wechat_pay_from_env(
                var,
                mini_program_app_id,
            )?))),
            other => {
                bail!("HUYING_PAYOUT_PROVIDER must be wechat_pay, simulated or none, not {other:?}")
            }
        }
    }
}

fn wechat_pay_from_env(
    var: &dyn Fn(&str) -> Option<String>,
    mini_program_app_id: Option<&str>,
) -> anyhow::Result<WeChatPayConfig> {
    let required =
        |name: &str| var(name).with_context(|| format!("{name} is required with wechat_pay"));
    let read_file = |name: &str| -> anyhow::Result<String> {
        let path = required(name)?;
        std::fs::read_to_string(&path).with_context(|| format!("Failed to read {name} ({path})"))
    };
    let app_id = var("HUYING_WECHAT_PAY_APP_ID")
        .or_else(|| mini_program_app_id.map(str::to_owned))
        .context(
            "HUYING_WECHAT_PAY_APP_ID (or HUYING_WECHAT_APP_ID) is required with wechat_pay",
        )?;
    let timeout: u64 = var("HUYING_WECHAT_PAY_TIMEOUT_SECS")
        .map(|s| s.parse().context("HUYING_WECHAT_PAY_TIMEOUT_SECS"))
        .transpose()?
        .unwrap_or(10);
    Ok(WeChatPayConfig {
        api_base: var("HUYING_WECHAT_PAY_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
        mch_id: required("HUYING_WECHAT_PAY_MCH_ID")?,
        app_id,
        merchant_serial: required("HUYING_WECHAT_PAY_MERCHANT_SERIAL")?,
        merchant_key_pem: Secret::new(read_file("HUYING_WECHAT_PAY_MERCHANT_KEY_FILE")?),
        platform_public_key_pem: read_file("HUYING_WECHAT_PAY_PUBLIC_KEY_FILE")?,
        platform_key_id: required("HUYING_WECHAT_PAY_PUBLIC_KEY_ID")?,
        api_v3_key: Secret::new(required("HUYING_WECHAT_PAY_API_V3_KEY")?),
        notify_url: required("HUYING_WECHAT_PAY_NOTIFY_URL")?,
        scene_id: var("HUYING_WECHAT_PAY_SCENE_ID").unwrap_or_else(|| "1000".to_owned()),
        activity_name: var("HUYING_WECHAT_PAY_ACTIVITY_NAME")
            .unwrap_or_else(|| "民生诉求有奖反映".to_owned()),
        reward_description: var("HUYING_WECHAT_PAY_REWARD_DESCRIPTION")
            .unwrap_or_else(|| "投诉受理立案红包".to_owned()),
        request_timeout: Duration::from_secs(timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_provider_is_never_chosen_beside_postgres() {
        let none = |_: &str| None;
        let config = PayoutConfig::from_env(&none, false, None).unwrap();
        assert_eq!(config.name(), "none");
        let simulated =
            |name: &str| (name == "HUYING_PAYOUT_PROVIDER").then(|| "simulated".to_owned());
        assert!(PayoutConfig::from_env(&simulated, false, None).is_err());
        let embedded = PayoutConfig::from_env(&none, true, None).unwrap();
        assert_eq!(embedded.name(), "simulated");
    }

    #[test]
    fn wechat_pay_needs_its_credentials() {
        let only_provider =
            |name: &str| (name == "HUYING_PAYOUT_PROVIDER").then(|| "wechat_pay".to_owned());
        let error = PayoutConfig::from_env(&only_provider, false, Some("wx1")).unwrap_err();
        assert!(error.to_string().contains("HUYING_WECHAT_PAY_MCH_ID"));
    }
}
