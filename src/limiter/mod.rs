//! Rate limiting with the generic cell rate algorithm (GCRA): each key keeps
//! one number, the "theoretical arrival time" of its next request, which
//! allows a burst of `quota.burst` requests and then one per
//! `period / burst`.
//!
//! [`Limits`] is what the use cases call: it applies the configured
//! [`Policies`] to the subjects of a request (a citizen, a device, a client
//! address, …) on the shared Redis limiter, and decides per policy what an
//! outage of Redis means (fall back to this process's own limiter, or
//! refuse).

mod limits;
mod memory;
mod policy;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::limits::{Check, Limits, Refusal};
pub use self::memory::MemoryLimiter;
pub use self::policy::{Outage, Policies, Policy, Subject};
pub use self::redis::RedisLimiter;

/// At most `burst` requests within any `period`, refilled evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: u32,
    pub period: Duration,
}

impl Quota {
    fn emission_interval_ms(self) -> i64 {
        (self.period.as_millis() / u128::from(self.burst.max(1))) as i64
    }

    fn period_ms(self) -> i64 {
        self.period.as_millis() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `key` if the quota allows it. Each
    /// limiter reads its own clock: the Redis server's for the shared one,
    /// the injected one in process.
    async fn acquire(&self, key: &str, quota: Quota) -> anyhow::Result<Decision>;
}

/// One GCRA step: given the stored arrival time (if any), decide and return
/// the arrival time to store when allowed. The Redis script performs the
/// same arithmetic atomically on the server.
fn gcra(stored_tat_ms: Option<i64>, now_ms: i64, quota: Quota) -> (Decision, Option<i64>) {
    let tat = stored_tat_ms.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat + quota.emission_interval_ms();
    let ahead = new_tat - now_ms;
    if ahead > quota.period_ms() {
        let wait = (ahead - quota.period_ms()) as u64;
        return (
            Decision::Limited {
                retry_after: Duration::from_millis(wait),
            },
            None,
        );
    }
    (Decision::Allowed, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        burst: 3,
        period: Duration::from_secs(30),
    };

    #[test]
    fn a_burst_is_allowed_then_one_per_interval() {
        let mut tat = None;
        for _ in 0..3 {
            let (decision, next) = gcra(tat, 0, QUOTA);
            assert_eq!(decision, Decision::Allowed);
            tat = next;
        }
        let (decision, _) = gcra(tat, 0, QUOTA);
        assert_eq!(
            decision,
            Decision::Limited {
                retry_after: Duration::from_secs(10)
            }
        );
        assert_eq!(gcra(tat, 10_000, QUOTA).0, Decision::Allowed);
    }
}
