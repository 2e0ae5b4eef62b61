use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Decision, Quota, RateLimiter, gcra};

/// An in-process limiter for the embedded default, where there is one
/// server. Production uses [`super::RedisLimiter`], shared by all replicas.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    arrival_times: Mutex<HashMap<String, i64>>,
}

impl MemoryLimiter {
    pub fn new() -> MemoryLimiter {
        MemoryLimiter::default()
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn acquire(
        &self,
        key: &str,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        let now_ms = now.timestamp_millis();
        let mut times = self.arrival_times.lock().unwrap_or_else(|p| p.into_inner());

        // Forget keys whose arrival time has passed: they are back to a full
        // burst, exactly as if they had never been seen.
        if times.len() > 10_000 {
            times.retain(|_, tat| *tat > now_ms);
        }

        let (decision, next) = gcra(times.get(key).copied(), now_ms, quota);
        if let Some(tat) = next {
            times.insert(key.to_owned(), tat);
        }
        Ok(decision)
    }
}
