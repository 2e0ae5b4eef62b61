//! Where the WeChat access token is kept between calls. Every replica must
//! use the same token: each fetch counts against the app's daily quota, and
//! tokens from the stable-token endpoint are shared rather than replaced,
//! so there is no reason for two replicas to hold two. With Redis the
//! token lives there; the embedded server keeps it in its own memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::clock::Clock;
use crate::security::Secret;

#[async_trait]
pub trait TokenCache: Send + Sync + 'static {
    async fn get(&self, app_id: &str) -> anyhow::Result<Option<Secret>>;

    /// Keeps a token for `ttl`.
    async fn put(&self, app_id: &str, token: &Secret, ttl: Duration) -> anyhow::Result<()>;

    /// Forgets the token WeChat called invalid, unless another replica
    /// already replaced it.
    async fn forget(&self, app_id: &str, token: &Secret) -> anyhow::Result<()>;
}

/// The embedded server's cache, on the injected clock.
pub struct MemoryTokenCache {
    clock: Arc<dyn Clock>,
    tokens: Mutex<HashMap<String, (Secret, DateTime<Utc>)>>,
}

impl MemoryTokenCache {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryTokenCache {
        MemoryTokenCache {
            clock,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Secret, DateTime<Utc>)>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl TokenCache for MemoryTokenCache {
    async fn get(&self, app_id: &str) -> anyhow::Result<Option<Secret>> {
        let now = self.clock.now();
        Ok(self
            .tokens()
            .get(app_id)
            .filter(|(_, until)| *until > now)
            .map(|(token, _)| token.clone()))
    }

    async fn put(&self, app_id: &str, token: &Secret, ttl: Duration) -> anyhow::Result<()> {
        let until = self.clock.now() + chrono::Duration::from_std(ttl)?;
        self.tokens()
            .insert(app_id.to_owned(), (token.clone(), until));
        Ok(())
    }

    async fn forget(&self, app_id: &str, token: &Secret) -> anyhow::Result<()> {
        let mut tokens = self.tokens();
        if tokens
            .get(app_id)
            .is_some_and(|(kept, _)| kept.expose() == token.expose())
        {
            tokens.remove(app_id);
        }
        Ok(())
    }
}

/// Deletes the key only if it still holds the token being forgotten.
const FORGET_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The cache every replica shares.
pub struct RedisTokenCache {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisTokenCache {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisTokenCache> {
        let client = redis::Client::open(url).context("Bad Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .context("Failed to connect to Redis")?;
        Ok(RedisTokenCache {
            connection,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, app_id: &str) -> String {
        format!("{}wechat:access_token:{app_id}", self.prefix)
    }
}

#[async_trait]
impl TokenCache for RedisTokenCache {
    async fn get(&self, app_id: &str) -> anyhow::Result<Option<Secret>> {
        let mut connection = self.connection.clone();
        let token: Option<String> = redis::cmd("GET")
            .arg(self.key(app_id))
            .query_async(&mut connection)
            .await
            .context("Failed to read the WeChat access token from Redis")?;
        Ok(token.map(Secret::new))
    }

    async fn put(&self, app_id: &str, token: &Secret, ttl: Duration) -> anyhow::Result<()> {
        let mut connection = self.connection.clone();
        let () = redis::cmd("SET")
            .arg(self.key(app_id))
            .arg(token.expose())
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut connection)
            .await
            .context("Failed to keep the WeChat access token in Redis")?;
        Ok(())
    }

    async fn forget(&self, app_id: &str, token: &Secret) -> anyhow::Result<()> {
        let mut connection = self.connection.clone();
        let _: i64 = redis::Script::new(FORGET_SCRIPT)
            .key(self.key(app_id))
            .arg(token.expose())
            .invoke_async(&mut connection)
            .await
            .context("Failed to forget the WeChat access token in Redis")?;
        Ok(())
    }
}
