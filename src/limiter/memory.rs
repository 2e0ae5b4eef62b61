use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Decision, Quota, RateLimiter, gcra};
use crate::clock::Clock;

/// Keys kept before expired ones are swept out.
const SWEEP_FLOOR: usize = 10_000;

/// An in-process limiter: the embedded default, where there is one server,
/// and the fallback of the shared limiter while Redis is unreachable. Time
/// comes from the injected clock, so tests move it.
pub struct MemoryLimiter {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    arrival_times: HashMap<String, i64>,
    /// Sweeping scans every key, so it waits until the map has doubled
    /// since the last sweep rather than running on every call.
    sweep_at: usize,
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryLimiter")
    }
}

impl MemoryLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> MemoryLimiter {
        MemoryLimiter {
            clock,
            state: Mutex::new(State::default()),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn acquire(&self, key: &str, quota: Quota) -> anyhow::Result<Decision> {
        let now_ms = self.clock.now().timestamp_millis();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());

        // A key whose arrival time has passed is back to a full burst,
        // exactly as if it had never been seen, so forgetting it is safe.
        if state.arrival_times.len() > state.sweep_at.max(SWEEP_FLOOR) {
            state.arrival_times.retain(|_, tat| *tat > now_ms);
            state.sweep_at = state.arrival_times.len() * 2;
        }

        let (decision, next) = gcra(state.arrival_times.get(key).copied(), now_ms, quota);
        if let Some(tat) = next {
            state.arrival_times.insert(key.to_owned(), tat);
        }
        Ok(decision)
    }
}
