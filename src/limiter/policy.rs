//! The policy table: how often each action may be taken per subject, and
//! what an outage of the shared limiter means for it. Quotas are
//! configuration (`HUYING_RATE_LIMITS`); the outage rule is not, since it
//! follows from what the action costs.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::Quota;

/// One limited thing: an action, counted per one kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Complaints filed per citizen.
    FileCitizen,
    /// Complaints filed per device (the `x-huying-device-id` metadata).
    FileDevice,
    /// Complaints filed per client address.
    FileIp,
    /// Sign-in codes texted per phone, short term.
    SmsPhone,
    /// Sign-in codes texted per phone, per day.
    SmsPhoneDaily,
    /// Sign-in codes requested per client address.
    SmsIp,
    /// Sign-in attempts per account or credential (any kind of sign-in).
    SignInAccount,
    /// Sign-in attempts per client address.
    SignInIp,
    /// Read calls per session.
    ReadSession,
    /// Notification texts per phone, per day.
    NotifySmsPhone,
}

/// What a check does while the shared limiter (Redis) cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Counts in this process instead: limits hold per replica, and
    /// citizens are not turned away because of an infrastructure fault.
    FallBack,
    /// Refuses with UNAVAILABLE: for whatever costs money (texts, payouts),
    /// where a per-replica limit multiplied by the replicas is too much.
    Refuse,
}

impl Policy {
    pub const ALL: [Policy; 10] = [
        Policy::FileCitizen,
        Policy::FileDevice,
        Policy::FileIp,
        Policy::SmsPhone,
        Policy::SmsPhoneDaily,
        Policy::SmsIp,
        Policy::SignInAccount,
        Policy::SignInIp,
        Policy::ReadSession,
        Policy::NotifySmsPhone,
    ];

    /// The name in `HUYING_RATE_LIMITS`, in logs and in Redis keys.
    pub fn name(self) -> &'static str {
        match self {
            Policy::FileCitizen => "file.citizen",
            Policy::FileDevice => "file.device",
            Policy::FileIp => "file.ip",
            Policy::SmsPhone => "sms.phone",
            Policy::SmsPhoneDaily => "sms.phone_daily",
            Policy::SmsIp => "sms.ip",
            Policy::SignInAccount => "signin.account",
            Policy::SignInIp => "signin.ip",
            Policy::ReadSession => "read.session",
            Policy::NotifySmsPhone => "notify.sms_phone",
        }
    }

    pub fn outage(self) -> Outage {
        match self {
            Policy::SmsPhone | Policy::SmsPhoneDaily | Policy::SmsIp | Policy::NotifySmsPhone => {
                Outage::Refuse
            }
            Policy::FileCitizen
            | Policy::FileDevice
            | Policy::FileIp
            | Policy::SignInAccount
            | Policy::SignInIp
            | Policy::ReadSession => Outage::FallBack,
        }
    }

    fn default_quota(self) -> Quota {
        let (burst, seconds) = match self {
            Policy::FileCitizen => (10, HOUR),
            Policy::FileDevice => (20, HOUR),
            Policy::FileIp => (60, HOUR),
            Policy::SmsPhone => (1, MINUTE),
            Policy::SmsPhoneDaily => (10, DAY),
            // Generous: carrier NAT puts many phones behind one address.
            Policy::SmsIp => (30, HOUR),
            Policy::SignInAccount => (10, 15 * MINUTE),
            Policy::SignInIp => (50, 15 * MINUTE),
            Policy::ReadSession => (600, MINUTE),
            // A case has about six citizen nodes; several cases a day is rare.
            Policy::NotifySmsPhone => (20, DAY),
        };
        Quota {
            burst,
            period: Duration::from_secs(seconds),
        }
    }

    fn index(self) -> usize {
        Policy::ALL
            .iter()
            .position(|policy| *policy == self)
            .expect("every policy is in ALL")
    }

    fn named(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|policy| policy.name() == name)
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The quota of every policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    quotas: [Quota; Policy::ALL.len()],
}

impl Default for Policies {
    fn default() -> Policies {
        Policies {
            quotas: Policy::ALL.map(Policy::default_quota),
        }
    }
}

impl Policies {
    pub fn quota(&self, policy: Policy) -> Quota {
        self.quotas[policy.index()]
    }

    pub fn set(&mut self, policy: Policy, quota: Quota) {
        self.quotas[policy.index()] = quota;
    }

    /// Overrides quotas from a list like `file.citizen=10/1h,sms.ip=30/1h`
    /// (periods in s, m, h or d); policies not named keep theirs. Nothing
    /// changes unless the whole list is valid.
    pub fn apply(&mut self, text: &str) -> anyhow::Result<()> {
        let mut changed = self.clone();
        let mut seen = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (policy, quota) = parse_entry(entry)?;
            if seen.contains(&policy) {
                bail!("{} is set twice", policy.name());
            }
            seen.push(policy);
            changed.set(policy, quota);
        }
        *self = changed;
        Ok(())
    }
}

impl fmt::Display for Policies {
    /// The same format `apply` reads, for the start-up log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, policy) in Policy::ALL.into_iter().enumerate() {
            let quota = self.quota(policy);
            let separator = if n == 0 { "" } else { "," };
            let period = format_period(quota.period);
            write!(f, "{separator}{}={}/{period}", policy.name(), quota.burst)?;
        }
        Ok(())
    }
}

fn parse_entry(entry: &str) -> anyhow::Result<(Policy, Quota)> {
    let shape = || format!("{entry:?} must look like name=count/period, e.g. file.citizen=10/1h");
    let (name, quota) = entry.split_once('=').with_context(shape)?;
    let (burst, period) = quota.split_once('/').with_context(shape)?;
    let name = name.trim();
    let Some(policy) = Policy::named(name) else {
        let known: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        bail!("unknown policy {name:?}; known: {}", known.join(", "));
    };
    let burst: u32 = burst
        .trim()
        .parse()
        .ok()
        .filter(|burst| *burst > 0)
        .with_context(|| format!("{name}: the count must be a whole number above zero"))?;
    let period = parse_period(period.trim())
        .with_context(|| format!("{name}: the period must be like 30s, 15m, 1h or 1d"))?;
    Ok((policy, Quota { burst, period }))
}

fn parse_period(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    let (number, unit) = text.split_at_checked(split)?;
    let unit = match unit {
        "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => return None,
    };
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    Some(Duration::from_secs(number.checked_mul(unit)?))
}

fn format_period(period: Duration) -> String {
    let seconds = period.as_secs();
    for (unit, size) in [("d", DAY), ("h", HOUR), ("m", MINUTE)] {
        if seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// Who a policy counts: `citizen:42`, `ip:203.0.113.7`, `device:…`. It
/// becomes the Redis hash tag of the subject's keys, so one subject's
/// counters live in one cluster slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    /// `id` is kept as it is when it is short and plain; anything else
    /// (free text like a username, or characters that would end a hash
    /// tag) is replaced by a digest, which also keeps it out of Redis.
    pub fn new(kind: &str, id: &str) -> Subject {
        let plain = |c: char| c.is_ascii_alphanumeric() || "._-:+/=".contains(c);
        if !id.is_empty() && id.len() <= 64 && id.chars().all(plain) {
            return Subject(format!("{kind}:{id}"));
        }
        Subject::private(kind, id)
    }

    /// A subject whose id is personal (an openid, a username): always a
    /// digest, so that operators reading Redis do not see it.
    pub fn private(kind: &str, id: &str) -> Subject {
        let digest = Sha256::digest(id.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Subject(format!("{kind}:#{hex}"))
    }

    /// The key of this subject's counter for `policy`, below the prefix.
    pub fn key(&self, policy: Policy) -> String {
        format!("rl:{{{}}}:{}", self.0, policy.name())
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(burst: u32, seconds: u64) -> Quota {
        Quota {
            burst,
            period: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn the_brief_example_parses_and_round_trips() {
        let text = "file.citizen=10/1h,file.device=20/1h,file.ip=60/1h,sms.phone=1/1m,\
                    sms.phone_daily=10/1d,sms.ip=30/1h,signin.account=10/15m,\
                    signin.ip=50/15m,read.session=600/1m,notify.sms_phone=20/1d";
        let mut policies = Policies::default();
        policies.apply(text).unwrap();

        assert_eq!(policies, Policies::default());
        assert_eq!(policies.to_string(), text.replace(' ', ""));
    }

    #[test]
    fn named_policies_change_and_the_rest_keep_their_defaults() {
        let mut policies = Policies::default();
        policies
            .apply(" file.citizen = 5/2h , sms.ip=7/90s,")
            .unwrap();

        assert_eq!(policies.quota(Policy::FileCitizen), quota(5, 7200));
        assert_eq!(policies.quota(Policy::SmsIp), quota(7, 90));
        assert_eq!(policies.quota(Policy::FileIp), quota(60, 3600));
    }

    #[test]
    fn mistakes_are_named_and_change_nothing() {
        let cases = [
            (
                "file.citzen=1/1h",
                "unknown policy \"file.citzen\"; known: file.citizen",
            ),
            ("file.citizen=10", "must look like name=count/period"),
            ("file.citizen", "must look like name=count/period"),
            (
                "file.citizen=0/1h",
                "file.citizen: the count must be a whole number above",
            ),
            ("file.citizen=-1/1h", "the count must be"),
            ("file.citizen=1/1w", "file.citizen: the period must be like"),
            ("file.citizen=1/0m", "the period must be"),
            ("file.citizen=1/h", "the period must be"),
            ("file.citizen=1/", "the period must be"),
            ("file.ip=1/1h,file.ip=2/1h", "file.ip is set twice"),
        ];
        for (text, expected) in cases {
            let mut policies = Policies::default();
            let error = format!("{:#}", policies.apply(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
            assert_eq!(policies, Policies::default(), "{text} changed something");
        }
    }

    #[test]
    fn money_fails_closed_and_the_rest_falls_back() {
        let refusing: Vec<&str> = Policy::ALL
            .into_iter()
            .filter(|p| p.outage() == Outage::Refuse)
            .map(Policy::name)
            .collect();
        assert_eq!(
            refusing,
            ["sms.phone", "sms.phone_daily", "sms.ip", "notify.sms_phone"]
        );
    }

    #[test]
    fn one_subjects_keys_share_a_hash_tag() {
        let citizen = Subject::new("citizen", "42");
        assert_eq!(
            citizen.key(Policy::FileCitizen),
            "rl:{citizen:42}:file.citizen"
        );
        assert_eq!(
            Subject::new("ip", "2001:db8::/64").key(Policy::SmsIp),
            "rl:{ip:2001:db8::/64}:sms.ip"
        );
    }

    #[test]
    fn free_text_subjects_become_digests_without_braces() {
        let tricky = Subject::new("staff", "a}b{c");
        let long = Subject::new("dev", &"x".repeat(65));

        for subject in [&tricky, &long] {
            let text = subject.to_string();
            assert!(text.contains(":#"), "{text}");
            assert!(!text[1..].contains(['{', '}']), "{text}");
        }
        assert_eq!(tricky, Subject::new("staff", "a}b{c"));
        assert_eq!(
            Subject::private("wechat", "o-1").to_string().len(),
            "wechat:#".len() + 24
        );
        assert_ne!(tricky, Subject::new("staff", "a}b{d"));
    }
}
