use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    Decision, MemoryLimiter, Outage, Policies, Policy, RateLimiter, RedisLimiter, Subject,
};
use crate::clock::Clock;

/// How often an outage of the shared limiter is logged while it lasts:
/// every request would flood the log exactly when operators read it.
pub const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// One policy applied to one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub policy: Policy,
    pub subject: Subject,
}

impl Check {
    pub fn new(policy: Policy, subject: Subject) -> Check {
        Check { policy, subject }
    }
}

/// Why a request may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Limited {
        policy: Policy,
        retry_after: Duration,
    },
    /// The shared limiter cannot answer and the policy refuses then.
    Unavailable { policy: Policy },
}

/// The policies, applied on the shared limiter when there is one, else (and
/// during its outages, for policies that allow it) in this process.
pub struct Limits {
    policies: Policies,
    shared: Option<Shared>,
    local: MemoryLimiter,
    clock: Arc<dyn Clock>,
}

struct Shared {
    limiter: Arc<dyn RateLimiter>,
    /// Names the shared limiter in logs (its key prefix).
    name: String,
    down: AtomicBool,
    fallback_logged: Throttle,
    refusal_logged: Throttle,
}

impl Limits {
    /// The embedded default: one server, limits in this process.
    pub fn in_process(policies: Policies, clock: Arc<dyn Clock>) -> Limits {
        Limits {
            policies,
            shared: None,
            local: MemoryLimiter::new(Arc::clone(&clock)),
            clock,
        }
    }

    /// Limits shared by every replica through Redis.
    pub fn shared(policies: Policies, redis: RedisLimiter, clock: Arc<dyn Clock>) -> Limits {
        let name = redis.prefix().to_owned();
        Limits::over(policies, Arc::new(redis), name, clock)
    }

    /// Limits on any shared limiter, `name`d in logs.
    pub fn over(
        policies: Policies,
        limiter: Arc<dyn RateLimiter>,
        name: String,
        clock: Arc<dyn Clock>,
    ) -> Limits {
        let shared = Shared {
            limiter,
            name,
            down: AtomicBool::new(false),
            fallback_logged: Throttle::default(),
            refusal_logged: Throttle::default(),
        };
        Limits {
            policies,
            shared: Some(shared),
            local: MemoryLimiter::new(Arc::clone(&clock)),
            clock,
        }
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Counts the request against each check in turn and stops at the first
    /// refusal. Put the narrowest subject first, so that one caller's
    /// excess is refused before it spends a budget others share.
    pub async fn check(&self, checks: &[Check]) -> Result<(), Refusal> {
        // Once Redis has failed this request, its other checks do not wait
        // for it again.
        let mut unreachable = false;
        for check in checks {
            if let Decision::Limited { retry_after } = self.acquire(check, &mut unreachable).await?
            {
                return Err(Refusal::Limited {
                    policy: check.policy,
                    retry_after,
                });
            }
        }
        Ok(())
    }

    // TODO(limits): while Redis is down every request still tries it once
    // (a refused connection fails at once, a silent one after a second); a
    // circuit breaker that skips Redis for a few seconds after a failure
    // would spare the wait when packets are dropped rather than refused.
    async fn acquire(&self, check: &Check, unreachable: &mut bool) -> Result<Decision, Refusal> {
        let key = check.subject.key(check.policy);
        let quota = self.policies.quota(check.policy);
        let Some(shared) = &self.shared else {
            return Ok(self.local_decision(&key, quota).await);
        };

        let error = if *unreachable {
            anyhow::anyhow!("Redis failed earlier in this request")
        } else {
            match shared.limiter.acquire(&key, quota).await {
                Ok(decision) => {
                    if shared.down.swap(false, Ordering::Relaxed) {
                        tracing::info!(limiter = %shared.name, "rate limiter reachable again");
                    }
                    return Ok(decision);
                }
                Err(error) => error,
            }
        };
        *unreachable = true;
        shared.down.store(true, Ordering::Relaxed);
        let now = self.clock.now();
        match check.policy.outage() {
            Outage::FallBack => {
                if shared.fallback_logged.due(now) {
                    tracing::warn!(
                        limiter = %shared.name,
                        error = %format!("{error:#}"),
                        "rate limiter unreachable; counting in this process meanwhile"
                    );
                }
                Ok(self.local_decision(&key, quota).await)
            }
            Outage::Refuse => {
                if shared.refusal_logged.due(now) {
                    tracing::error!(
                        limiter = %shared.name,
                        limit.policy = check.policy.name(),
                        error = %format!("{error:#}"),
                        "rate limiter unreachable; refusing what it must guard"
                    );
                }
                Err(Refusal::Unavailable {
                    policy: check.policy,
                })
            }
        }
    }

    async fn local_decision(&self, key: &str, quota: super::Quota) -> Decision {
        // The in-process limiter cannot fail; if it ever did, the request
        // would be better refused than let through unlimited.
        self.local
            .acquire(key, quota)
            .await
            .unwrap_or(Decision::Limited {
                retry_after: quota.period,
            })
    }
}

/// Says "due" at most once per [`OUTAGE_LOG_INTERVAL`] of the clock.
#[derive(Default)]
struct Throttle(Mutex<Option<DateTime<Utc>>>);

impl Throttle {
    fn due(&self, now: DateTime<Utc>) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let interval = chrono::Duration::from_std(OUTAGE_LOG_INTERVAL).unwrap_or_default();
        if last.is_some_and(|last| now - last < interval) {
            return false;
        }
        *last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::limiter::Quota;

    /// A shared limiter that is down, counting how often it was asked.
    #[derive(Default)]
    struct Unreachable(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl RateLimiter for Unreachable {
        async fn acquire(&self, _key: &str, _quota: Quota) -> anyhow::Result<Decision> {
            self.0.fetch_add(1, Ordering::Relaxed);
            anyhow::bail!("connection refused")
        }
    }

    fn limits_without_redis(text: &str) -> (Limits, Arc<Unreachable>) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let mut policies = Policies::default();
        policies.apply(text).unwrap();
        let redis = Arc::new(Unreachable::default());
        let limits = Limits::over(policies, redis.clone(), "test".to_owned(), clock);
        (limits, redis)
    }

    #[tokio::test]
    async fn a_request_asks_a_failed_redis_only_once() {
        let (limits, redis) = limits_without_redis("");
        let checks = [check(Policy::FileCitizen, "1"), check(Policy::FileIp, "a")];

        limits.check(&checks).await.unwrap();
        limits.check(&checks).await.unwrap();

        assert_eq!(redis.0.load(Ordering::Relaxed), 2);
    }

    fn check(policy: Policy, id: &str) -> Check {
        Check::new(policy, Subject::new("t", id))
    }

    #[tokio::test]
    async fn an_outage_falls_back_or_refuses_by_policy() {
        let (limits, _) = limits_without_redis("file.citizen=2/1h");
        let file = [check(Policy::FileCitizen, "1")];

        assert_eq!(limits.check(&file).await, Ok(()));
        assert_eq!(limits.check(&file).await, Ok(()));
        assert!(matches!(
            limits.check(&file).await,
            Err(Refusal::Limited {
                policy: Policy::FileCitizen,
                ..
            })
        ));
        assert_eq!(
            limits.check(&[check(Policy::SmsPhone, "1")]).await,
            Err(Refusal::Unavailable {
                policy: Policy::SmsPhone
            })
        );
    }

    #[test]
    fn the_throttle_speaks_once_per_interval() {
        let throttle = Throttle::default();
        let start = chrono::Utc::now();
        let interval = chrono::Duration::from_std(OUTAGE_LOG_INTERVAL).unwrap();

        assert!(throttle.due(start));
        assert!(!throttle.due(start + interval - chrono::Duration::seconds(1)));
        assert!(throttle.due(start + interval));
    }

    #[tokio::test]
    async fn a_refused_check_stops_the_later_ones() {
        let (limits, _) = limits_without_redis("file.citizen=1/1h,file.ip=5/1h");
        let checks = [check(Policy::FileCitizen, "1"), check(Policy::FileIp, "a")];
        limits.check(&checks).await.unwrap();
        limits.check(&checks).await.unwrap_err();

        // The refused request did not spend the shared address's budget.
        for n in 2..=5 {
            let other = [
                check(Policy::FileCitizen, &n.to_string()),
                checks[1].clone(),
            ];
            limits.check(&other).await.unwrap();
        }
        let sixth = [check(Policy::FileCitizen, "6"), checks[1].clone()];
        assert!(limits.check(&sixth).await.is_err());
    }
}
