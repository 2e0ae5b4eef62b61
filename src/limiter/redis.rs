use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Quota, RateLimiter};

/// GCRA on the Redis server, atomically, on the server's own clock: the
/// replicas' clocks may disagree, and a request must not gain tokens by
/// reaching the replica whose clock runs ahead. KEYS[1] holds the arrival
/// time in milliseconds; ARGV = emission interval, period (ms). Returns
/// {1, 0} when allowed, {0, wait_ms} when limited. The key expires when its
/// arrival time has passed, since it then carries no information.
///
/// Redis before 5 replicated scripts verbatim and refused writes after
/// TIME; asking for effects replication keeps the script valid there.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
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

/// How long a request may wait for Redis before its policy's outage rule
/// applies: a slow Redis must not hold up filings.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(REDIS_TIMEOUT);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .context("Failed to connect to Redis")?;
        Ok(RedisLimiter {
            connection,
            prefix: prefix.to_owned(),
            script: Script::new(GCRA_SCRIPT),
        })
    }

    /// The namespace of this limiter's keys (it names the limiter in logs).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn acquire(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let mut connection = self.connection.clone();
        let (allowed, wait_ms): (i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(quota.emission_interval_ms())
            .arg(quota.period_ms())
            .invoke_async(&mut connection)
            .await
            .context("Failed to run the rate-limit script")?;

        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_millis(wait_ms.max(0) as u64),
            }
        })
    }
}
