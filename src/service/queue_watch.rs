//! A staff member's queue, live. The queue is state rather than a log: the
//! stream sends the open cases in scope, then each case that enters,
//! changes in or leaves the queue. A reconnect (or a suspected gap) sends
//! the state again, so nothing is missed and no cursor is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::Services;
use super::cases::QueueFilter;
use super::streams::StreamEnd;
use crate::bus::{BusMessage, Subscription};
use crate::domain::account::Principal;
use crate::domain::case::Case;
use crate::domain::complaint::{ComplaintId, ComplaintStatus};
use crate::domain::error::DomainError;

/// Cases sent in one snapshot at most; a unit with more open cases reads
/// the rest with `ListQueue`.
const SNAPSHOT_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub enum QueueItem {
    Upsert(Box<Case>),
    Removed(ComplaintId),
    SnapshotComplete { cases: u32 },
    Heartbeat,
}

pub struct QueueStream {
    pub items: mpsc::Receiver<QueueItem>,
    pub end: Arc<Mutex<Option<StreamEnd>>>,
}

impl Services {
    pub async fn watch_queue(
        self: &Arc<Self>,
        staff: &Principal,
    ) -> Result<QueueStream, DomainError> {
        // Subscribe first: a change written while the snapshot is read is
        // then seen twice at worst, never missed.
        let subscription = self.bus.subscribe_all();
        let (sender, items) = mpsc::channel(self.streams.buffer.max(16));
        let end = Arc::new(Mutex::new(None));
        let watch = QueueWatch {
            services: Arc::clone(self),
            staff: staff.clone(),
            sent: HashMap::new(),
            sender,
            end: Arc::clone(&end),
        };
        tokio::spawn(watch.run(subscription));
        Ok(QueueStream { items, end })
    }
}

struct QueueWatch {
    services: Arc<Services>,
    staff: Principal,
    /// Case → the version the client holds.
    sent: HashMap<ComplaintId, u64>,
    sender: mpsc::Sender<QueueItem>,
    end: Arc<Mutex<Option<StreamEnd>>>,
}

struct Stop;

impl QueueWatch {
    async fn run(mut self, mut subscription: Subscription) {
        let _ = self.serve(&mut subscription).await;
    }

    async fn serve(&mut self, subscription: &mut Subscription) -> Result<(), Stop> {
        let mut stopping = self.services.stopping.clone();
        let mut heartbeat = tokio::time::interval(self.services.streams.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        heartbeat.tick().await;

        self.snapshot().await?;
        loop {
            tokio::select! {
                _ = self.sender.closed() => return Err(Stop),
                _ = super::streams::stopped(&mut stopping) => return self.finish(StreamEnd::ShuttingDown),
                _ = heartbeat.tick() => {
                    if self.services.bus.heard_revoked(&self.staff.session_id) {
                        return self.finish(StreamEnd::Revoked);
                    }
                    self.send(QueueItem::Heartbeat, false).await?;
                }
                message = subscription.next() => match message {
                    Some(BusMessage::Event(event)) => {
                        self.refresh(event.complaint_id).await?;
                        heartbeat.reset();
                    }
                    Some(BusMessage::Gap) => self.snapshot().await?,
                    None => return self.finish(StreamEnd::ShuttingDown),
                },
            }
        }
    }

    /// Sends the whole queue, and removals for cases that left it unseen.
    async fn snapshot(&mut self) -> Result<(), Stop> {
        let mut cases = Vec::new();
        let mut token = String::new();
        while cases.len() < SNAPSHOT_LIMIT {
            let page = self
                .services
                .list_queue(&self.staff, QueueFilter::default(), 100, &token)
                .await;
            let (page, next) = match page {
                Ok(page) => page,
                Err(error) => return self.finish(StreamEnd::Failed(error)),
            };
            cases.extend(page);
            match next {
                Some(next) => token = next,
                None => break,
            }
        }

        let current: HashMap<ComplaintId, u64> = cases
            .iter()
            .map(|c| (c.id(), c.complaint.version))
            .collect();
        let gone: Vec<ComplaintId> = self
            .sent
            .keys()
            .filter(|id| !current.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.sent.remove(&id);
            self.send(QueueItem::Removed(id), true).await?;
        }
        let count = cases.len() as u32;
        for case in cases {
            self.upsert(case, true).await?;
        }
        self.send(QueueItem::SnapshotComplete { cases: count }, true)
            .await
    }

    /// Re-reads one case after an event and tells the client what changed.
    ///
    /// TODO(streams): every queue stream re-reads the case of every event in
    /// the district; the event's units should be checked against the
    /// caller's scope before reading.
    async fn refresh(&mut self, id: ComplaintId) -> Result<(), Stop> {
        let in_queue = match self.services.get_case(&self.staff, id).await {
            Ok(case)
                if is_open(case.complaint.status)
                    && case.complaint.handling.merged_into.is_none() =>
            {
                Some(case)
            }
            Ok(_) | Err(DomainError::NotFound(_)) => None,
            Err(error) => return self.finish(StreamEnd::Failed(error)),
        };
        match in_queue {
            Some(case) => self.upsert(case, false).await,
            None if self.sent.remove(&id).is_some() => {
                self.send(QueueItem::Removed(id), false).await
            }
            None => Ok(()),
        }
    }

    async fn upsert(&mut self, case: Case, waiting: bool) -> Result<(), Stop> {
        let version = case.complaint.version;
        if self.sent.insert(case.id(), version) == Some(version) {
            return Ok(());
        }
        self.send(QueueItem::Upsert(Box::new(case)), waiting).await
    }

    /// Snapshots wait for the client; live changes never do: a client
    /// whose buffer is full is told to reconnect.
    async fn send(&mut self, item: QueueItem, waiting: bool) -> Result<(), Stop> {
        if waiting {
            return self.sender.send(item).await.map_err(|_| Stop);
        }
        match self.sender.try_send(item) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => self.finish(StreamEnd::FellBehind),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop),
        }
    }

    fn finish(&mut self, reason: StreamEnd) -> Result<(), Stop> {
        *self.end.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        Err(Stop)
    }
}

fn is_open(status: ComplaintStatus) -> bool {
    matches!(
        status,
        ComplaintStatus::Received
            | ComplaintStatus::Accepted
            | ComplaintStatus::Dispatched
            | ComplaintStatus::InProgress
    )
}
