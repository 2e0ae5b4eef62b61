//! Fan-out between replicas through Redis pub/sub.
//!
//! Every replica publishes each committed event (after its transaction, so
//! no database lock is held for it) and subscribes to the one channel,
//! handing what arrives to its local subscriptions. Pub/sub delivers at
//! most once: a message lost while a replica is disconnected is found by
//! the streams themselves, which re-read the store on reconnect (a gap is
//! announced) and at every heartbeat.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::DateTime;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::{EventBus, LocalBus, Subscription};
use crate::domain::account::AccountId;
use crate::domain::complaint::{ComplaintEvent, ComplaintId, ComplaintStatus, EventKind};

/// Marks a revocation on the channel; events are JSON objects, so they
/// never start with it.
const REVOCATION_PREFIX: &str = "revoked:";

/// Events waiting to be published; past this, publishing drops and streams
/// pick the events up from the store at their next heartbeat.
const PUBLISH_QUEUE: usize = 10_000;

pub struct RedisBus {
    local: Arc<LocalBus>,
    outbox: mpsc::Sender<String>,
}

/// An event as it travels between replicas.
#[derive(Serialize, Deserialize)]
struct WireEvent {
    complaint_id: i64,
    sequence: u64,
    kind: String,
    status: String,
    message: String,
    visible_to_citizen: bool,
    actor_id: Option<i64>,
    unit_id: Option<String>,
    occurred_at_micros: i64,
    citizen_id: Option<i64>,
    citizen_sequence: Option<u64>,
}

impl WireEvent {
    fn from_event(event: &ComplaintEvent) -> WireEvent {
        WireEvent {
            complaint_id: event.complaint_id.0,
            sequence: event.sequence,
            kind: event.kind.as_str().to_owned(),
            status: event.status.as_str().to_owned(),
            message: event.message.clone(),
            visible_to_citizen: event.visible_to_citizen,
            actor_id: event.actor_id.map(|a| a.0),
            unit_id: event.unit_id.clone(),
            occurred_at_micros: event.occurred_at.timestamp_micros(),
            citizen_id: event.citizen_id.map(|c| c.0),
            citizen_sequence: event.citizen_sequence,
        }
    }

    fn into_event(self) -> Option<ComplaintEvent> {
        Some(ComplaintEvent {
            complaint_id: ComplaintId(self.complaint_id),
            sequence: self.sequence,
            kind: EventKind::parse(&self.kind)?,
            status: ComplaintStatus::parse(&self.status)?,
            message: self.message,
            visible_to_citizen: self.visible_to_citizen,
            actor_id: self.actor_id.map(AccountId),
            unit_id: self.unit_id,
            occurred_at: DateTime::from_timestamp_micros(self.occurred_at_micros)?,
            citizen_id: self.citizen_id.map(AccountId),
            citizen_sequence: self.citizen_sequence,
        })
    }
}

impl RedisBus {
    /// Connects, subscribes, and starts the publishing and receiving tasks.
    /// `prefix` namespaces the channel like every other Redis key.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisBus> {
        let client = redis::Client::open(url).context("Bad Redis URL")?;
        let channel = format!("{prefix}events");
        let publisher = ConnectionManager::new(client.clone())
            .await
            .context("Failed to connect to Redis for publishing")?;

        let local = Arc::new(LocalBus::new());
        let (outbox, queued) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_forever(publisher, channel.clone(), queued));

        // The first subscription is made before returning, so that this
        // replica hears every event published after it started.
        let pubsub = subscribe(&client, &channel).await?;
        tokio::spawn(receive_forever(client, channel, pubsub, Arc::clone(&local)));
        Ok(RedisBus { local, outbox })
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: &ComplaintEvent) {
        let payload = match serde_json::to_string(&WireEvent::from_event(event)) {
            Ok(payload) => payload,
            Err(error) => return tracing::error!(%error, "failed to encode an event"),
        };
        if self.outbox.try_send(payload).is_err() {
            tracing::warn!("event publishing is backed up; streams will catch up from the store");
        }
    }

    fn subscribe(&self, complaint: ComplaintId) -> Subscription {
        self.local.subscribe(complaint)
    }

    fn subscribe_citizen(&self, citizen: AccountId) -> Subscription {
        self.local.subscribe_citizen(citizen)
    }

    fn subscribe_all(&self) -> Subscription {
        self.local.subscribe_all()
    }

    fn publish_revocation(&self, session_id: &str) {
        // This replica knows at once; the others when the message arrives.
        self.local.publish_revocation(session_id);
        let payload = format!("{REVOCATION_PREFIX}{session_id}");
        if self.outbox.try_send(payload).is_err() {
            tracing::warn!("revocation publishing is backed up; streams will find it in the store");
        }
    }

    fn note_revoked(&self, session_id: &str) {
        self.local.note_revoked(session_id);
    }

    fn heard_revoked(&self, session_id: &str) -> bool {
        self.local.heard_revoked(session_id)
    }
}

async fn publish_forever(
    mut connection: ConnectionManager,
    channel: String,
    mut queued: mpsc::Receiver<String>,
) {
    while let Some(payload) = queued.recv().await {
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut connection)
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "failed to publish an event; streams will catch up from the store");
        }
    }
}

async fn subscribe(client: &redis::Client, channel: &str) -> anyhow::Result<redis::aio::PubSub> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .context("Failed to open a Redis subscription")?;
    pubsub
        .subscribe(channel)
        .await
        .context("Failed to subscribe to the event channel")?;
    Ok(pubsub)
}

async fn receive_forever(
    client: redis::Client,
    channel: String,
    mut pubsub: redis::aio::PubSub,
    local: Arc<LocalBus>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                if let Some(session_id) = payload.strip_prefix(REVOCATION_PREFIX) {
                    local.publish_revocation(session_id);
                    continue;
                }
                match serde_json::from_str::<WireEvent>(&payload)
                    .ok()
                    .and_then(WireEvent::into_event)
                {
                    Some(event) => local.publish(&event),
                    None => tracing::warn!("ignored a malformed event message"),
                }
            }
        }

        // The subscription dropped: reconnect, then let every stream re-read
        // what it may have missed meanwhile.
        tracing::warn!("lost the Redis event subscription; reconnecting");
        pubsub = loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match subscribe(&client, &channel).await {
                Ok(pubsub) => break pubsub,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "Redis subscription failed")
                }
            }
        };
        local.announce_gap();
    }
}
