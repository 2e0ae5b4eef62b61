use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Decision, Quota, RateLimiter};

/// GCRA on the Redis server, atomically. KEYS[1] holds the arrival time in
/// milliseconds; ARGV = now, emission interval, period (all ms). Returns
/// {1, 0} when allowed, {0, wait_ms} when limited. The key expires when its
/// arrival time has passed, since it then carries no information.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > period then
  return {0, ahead - period}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(ahead, 1))
return {1, 0}
";

/// A limiter shared by every replica through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    prefix: String,
    script: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisLimiter({})", self.prefix)
    }
}

impl RedisLimiter {
    /// `prefix` namespaces the keys, so that several deployments (or test
    /// runs) can share one Redis.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisLimiter> {
        let client = redis::Client::open(url).context("Bad Redis URL")?;
        let connection = ConnectionManager::new(client)
            .await
            .context("Failed to connect to Redis")?;
        Ok(RedisLimiter {
            connection,
            prefix: format!("{prefix}rl:"),
            script: Script::new(GCRA_SCRIPT),
        })
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn acquire(
        &self,
        key: &str,
        quota: Quota,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        let mut connection = self.connection.clone();
        let (allowed, wait_ms): (i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(now.timestamp_millis())
            .arg(quota.emission_interval_ms())
            .arg(quota.period_ms())
            .invoke_async(&mut connection)
            .await
            .context("Failed to run the rate-limit script")?;

        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: std::time::Duration::from_millis(wait_ms.max(0) as u64),
            }
        })
    }
}
