//! Revoked sessions, known on every replica within seconds.
//!
//! Access tokens are checked without a database round trip, so each
//! replica keeps the sessions it knows to be revoked in memory (in the
//! bus, see `bus::Revocations`). It learns them from the bus as they
//! happen, and, so that a lost pub/sub message only delays, by reading the
//! sessions revoked since its previous read every few seconds.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Services;

/// How far each read reaches back before the previous one started:
/// a revocation whose transaction committed late, or that a replica with
/// a slightly different clock stamped, is still found.
const OVERLAP: chrono::Duration = chrono::Duration::seconds(60);

impl Services {
    /// Reads the sessions revoked after `since` and remembers them on this
    /// replica; returns how many there were.
    pub async fn learn_revocations(&self, since: DateTime<Utc>) -> anyhow::Result<usize> {
        let revoked = self.store.revoked_sessions_since(since).await?;
        for session_id in &revoked {
            self.bus.note_revoked(session_id);
        }
        Ok(revoked.len())
    }

    /// Where a replica's first read starts: any earlier revocation's access
    /// tokens have expired by now.
    pub fn revocations_worth_knowing(&self) -> DateTime<Utc> {
        self.clock.now() - self.signer.access_ttl
    }
}

/// Every replica runs this after its first read (made at start).
pub async fn learn_revocations_forever(services: Arc<Services>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    let mut since = services.clock.now() - OVERLAP;
    loop {
        ticks.tick().await;
        let started = services.clock.now();
        match services.learn_revocations(since).await {
            Ok(_) => since = started - OVERLAP,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "reading revocations failed")
            }
        }
    }
}
