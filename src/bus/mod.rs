//! Fan-out of freshly written timeline events to open progress streams.
//!
//! The store is the source of truth: the bus only says "something new",
//! and a stream that misses a message (a lag, a lost notification) re-reads
//! the timeline from the store. So a lost message may delay an event, never
//! lose it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::domain::account::AccountId;
use crate::domain::complaint::{ComplaintEvent, ComplaintId};

mod redis;

pub use self::redis::RedisBus;

/// Events a slow subscriber may fall behind by before it is told to re-read.
const TOPIC_CAPACITY: usize = 64;

pub trait EventBus: Send + Sync + 'static {
    /// Announces an event after its transaction committed.
    fn publish(&self, event: &ComplaintEvent);

    /// Starts listening to one complaint's events.
    fn subscribe(&self, complaint: ComplaintId) -> Subscription;

    /// Starts listening to the citizen-visible events of all of one
    /// citizen's complaints.
    fn subscribe_citizen(&self, citizen: AccountId) -> Subscription;

    /// Starts listening to every event (staff queues filter what they need).
    fn subscribe_all(&self) -> Subscription;

    /// Announces that a sign-in session was revoked, to every replica.
    fn publish_revocation(&self, session_id: &str);

    /// Remembers on this replica alone a revocation learnt elsewhere (read
    /// from the store).
    fn note_revoked(&self, session_id: &str);

    /// Whether this replica heard of the session's revocation lately. The
    /// store stays the authority; this spares streams a query per heartbeat
    /// and lets every call refuse a revoked session's access tokens.
    fn heard_revoked(&self, session_id: &str) -> bool;
}

/// Sessions heard revoked, forgotten after a day: by then every access token
/// of the session has expired (configuration keeps their lifetime under a
/// day), and streams also ask the store now and then.
#[derive(Debug, Default)]
pub struct Revocations(Mutex<HashMap<String, std::time::Instant>>);

impl Revocations {
    const KEEP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    pub fn record(&self, session_id: &str) {
        let mut heard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        heard.retain(|_, at| now.duration_since(*at) < Self::KEEP);
        heard.insert(session_id.to_owned(), now);
    }

    pub fn contains(&self, session_id: &str) -> bool {
        let heard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        heard.contains_key(session_id)
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMessage {
    Event(ComplaintEvent),
    /// Messages were dropped; re-read from the store.
    Gap,
}

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Complaint(ComplaintId),
    Citizen(AccountId),
    All,
}

type Topics = Arc<Mutex<HashMap<Topic, broadcast::Sender<BusMessage>>>>;

pub struct Subscription {
    receiver: broadcast::Receiver<BusMessage>,
    topic: Topic,
    topics: Topics,
}

impl Subscription {
    /// The next message; `None` once the bus is gone.
    pub async fn next(&mut self) -> Option<BusMessage> {
        match self.receiver.recv().await {
            Ok(message) => Some(message),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(BusMessage::Gap),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // This receiver still counts until it is dropped after this body.
        if let Some(sender) = topics.get(&self.topic)
            && sender.receiver_count() <= 1
        {
            topics.remove(&self.topic);
        }
    }
}

/// Fan-out within one process: the embedded default, where one server is
/// all there is, and the last hop of [`RedisBus`] on every replica.
#[derive(Default)]
pub struct LocalBus {
    topics: Topics,
    revocations: Revocations,
}

impl LocalBus {
    pub fn new() -> LocalBus {
        LocalBus::default()
    }

    fn subscribe_to(&self, topic: Topic) -> Subscription {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let sender = topics
            .entry(topic)
            .or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0);
        Subscription {
            receiver: sender.subscribe(),
            topic,
            topics: Arc::clone(&self.topics),
        }
    }

    /// Tells every open subscription that messages may have been lost.
    pub fn announce_gap(&self) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        for sender in topics.values() {
            let _ = sender.send(BusMessage::Gap);
        }
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: &ComplaintEvent) {
        let topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let citizen = event.citizen_id.map(Topic::Citizen);
        let all = Some(Topic::All);
        for topic in [Some(Topic::Complaint(event.complaint_id)), citizen, all]
            .into_iter()
            .flatten()
        {
            if let Some(sender) = topics.get(&topic) {
                // No receiver left is not an error: nobody is watching.
                let _ = sender.send(BusMessage::Event(event.clone()));
            }
        }
    }

    fn subscribe(&self, complaint: ComplaintId) -> Subscription {
        self.subscribe_to(Topic::Complaint(complaint))
    }

    fn subscribe_citizen(&self, citizen: AccountId) -> Subscription {
        self.subscribe_to(Topic::Citizen(citizen))
    }

    fn subscribe_all(&self) -> Subscription {
        self.subscribe_to(Topic::All)
    }

    fn publish_revocation(&self, session_id: &str) {
        self.revocations.record(session_id);
    }

    fn note_revoked(&self, session_id: &str) {
        self.revocations.record(session_id);
    }

    fn heard_revoked(&self, session_id: &str) -> bool {
        self.revocations.contains(session_id)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::complaint::{ComplaintStatus, EventKind};

    fn event(complaint: i64, sequence: u64) -> ComplaintEvent {
        ComplaintEvent {
            complaint_id: ComplaintId(complaint),
            sequence,
            kind: EventKind::Progress,
            status: ComplaintStatus::InProgress,
            message: String::new(),
            visible_to_citizen: true,
            actor_id: None,
            unit_id: None,
            occurred_at: Utc::now(),
            citizen_id: None,
            citizen_sequence: None,
        }
    }

    #[tokio::test]
    async fn a_subscriber_gets_only_its_complaint() {
        let bus = LocalBus::new();
        let mut watching = bus.subscribe(ComplaintId(1));
        bus.publish(&event(2, 1));
        let expected = event(1, 5);
        bus.publish(&expected);
        assert_eq!(watching.next().await, Some(BusMessage::Event(expected)));
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_to_re_read() {
        let bus = LocalBus::new();
        let mut slow = bus.subscribe(ComplaintId(1));
        for sequence in 0..(TOPIC_CAPACITY as u64 + 5) {
            bus.publish(&event(1, sequence));
        }
        assert_eq!(slow.next().await, Some(BusMessage::Gap));
    }

    #[test]
    fn the_last_subscriber_leaving_removes_the_topic() {
        let bus = LocalBus::new();
        let first = bus.subscribe(ComplaintId(1));
        let second = bus.subscribe(ComplaintId(1));
        drop(first);
        assert_eq!(bus.topics.lock().unwrap().len(), 1);
        drop(second);
        assert!(bus.topics.lock().unwrap().is_empty());
    }
}
