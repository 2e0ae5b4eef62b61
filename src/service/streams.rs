//! Progress streams: a complaint's timeline from a position, then live.
//!
//! The store is the source of truth and the bus only a hint: a stream reads
//! what it missed from the store whenever a message reveals a gap, whenever
//! the bus reports a lag, and every few heartbeats, so a lost notification
//! delays an event by about a minute at most and never loses it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::Services;
use crate::bus::{BusMessage, Subscription};
use crate::domain::account::{AccountId, Principal};
use crate::domain::complaint::{ComplaintEvent, ComplaintId};
use crate::domain::error::DomainError;

/// Timeline events read from the store per query while catching up.
const CATCH_UP_BATCH: u32 = 200;
/// Every this many heartbeats a stream asks the store directly, in case a
/// bus message was lost: a lost event or revocation is late by at most
/// this many heartbeat intervals.
const STORE_CHECK_EVERY: u32 = 4;

/// How streams behave; the same on every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPolicy {
    /// A heartbeat (and a check of the store) after this much silence.
    pub heartbeat: Duration,
    /// Items a stream may hold for a slow client before it is told to resume.
    pub buffer: usize,
    /// gRPC-Web streams end cleanly before this, since mini-program
    /// requests are cut by the platform after about a minute.
    pub web_max_duration: Duration,
}

impl Default for StreamPolicy {
    fn default() -> StreamPolicy {
        StreamPolicy {
            heartbeat: Duration::from_secs(15),
            buffer: 64,
            web_max_duration: Duration::from_secs(50),
        }
    }
}

/// What a stream sends.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// Boxed: a stream's channel reserves room for many items, and most
    /// streams are idle.
    Event(Box<ComplaintEvent>),
    Heartbeat {
        resume_after: u64,
    },
}

/// Why a stream ended, when the server ended it.
#[derive(Debug)]
pub enum StreamEnd {
    /// The server is stopping: resume on another replica.
    ShuttingDown,
    /// The client did not keep up: resume from its last position.
    FellBehind,
    /// The gRPC-Web time limit: resume with a new request.
    TimeLimit,
    /// The viewer signed out, or the session was revoked.
    Revoked,
    Failed(DomainError),
}

/// The client side of one stream: items, then (maybe) the reason it ended.
pub struct EventStream {
    pub items: mpsc::Receiver<StreamItem>,
    pub end: Arc<Mutex<Option<StreamEnd>>>,
}

/// The sequence a stream follows.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// One complaint's timeline, by its sequence numbers.
    Complaint(ComplaintId),
    /// All of a citizen's complaints, by the citizen's feed numbers.
    Citizen(AccountId),
}

impl Feed {
    /// An event's place in this feed; `None` for events not in it.
    fn position(self, event: &ComplaintEvent) -> Option<u64> {
        match self {
            Feed::Complaint(_) => Some(event.sequence),
            Feed::Citizen(_) => event.citizen_sequence,
        }
    }

    async fn read_after(
        self,
        services: &Services,
        after: u64,
    ) -> anyhow::Result<Vec<ComplaintEvent>> {
        match self {
            Feed::Complaint(id) => services.store.events_after(id, after, CATCH_UP_BATCH).await,
            Feed::Citizen(id) => {
                services
                    .store
                    .citizen_events_after(id, after, CATCH_UP_BATCH)
                    .await
            }
        }
    }
}

impl Services {
    /// Streams a citizen's complaint after `after_sequence`. `web` streams
    /// end by the gRPC-Web time limit.
    pub async fn watch_own_complaint(
        self: &Arc<Self>,
        citizen: &Principal,
        id: ComplaintId,
        after_sequence: u64,
        web: bool,
    ) -> Result<EventStream, DomainError> {
        self.get_own_complaint(citizen, id).await?;
        // Subscribe before reading the backlog, so that nothing written in
        // between is missed; duplicates are dropped by position.
        let subscription = self.bus.subscribe(id);
        Ok(self.open_stream(
            citizen,
            Feed::Complaint(id),
            subscription,
            after_sequence,
            web,
        ))
    }

    /// Streams every citizen-visible event of a citizen's complaints after
    /// `after_cursor`, for the app's home screen.
    pub async fn watch_my_complaints(
        self: &Arc<Self>,
        citizen: &Principal,
        after_cursor: u64,
        web: bool,
    ) -> Result<EventStream, DomainError> {
        let subscription = self.bus.subscribe_citizen(citizen.account_id);
        Ok(self.open_stream(
            citizen,
            Feed::Citizen(citizen.account_id),
            subscription,
            after_cursor,
            web,
        ))
    }

    fn open_stream(
        self: &Arc<Self>,
        viewer: &Principal,
        feed: Feed,
        subscription: Subscription,
        after: u64,
        web: bool,
    ) -> EventStream {
        let policy = self.streams;
        let (sender, items) = mpsc::channel(policy.buffer);
        let end = Arc::new(Mutex::new(None));
        let watch = TimelineWatch {
            services: Arc::clone(self),
            session_id: viewer.session_id.clone(),
            feed,
            last_sent: after,
            sender,
            end: Arc::clone(&end),
            time_limit: web.then(|| Instant::now() + policy.web_max_duration),
        };
        tokio::spawn(watch.run(subscription));
        EventStream { items, end }
    }
}

/// One open progress stream.
struct TimelineWatch {
    services: Arc<Services>,
    /// Checked at every heartbeat and before each live event: a revoked
    /// session ends the stream on whichever replica holds it.
    session_id: String,
    feed: Feed,
    /// The highest position the client has been given (or skipped, for
    /// events not meant for citizens).
    last_sent: u64,
    sender: mpsc::Sender<StreamItem>,
    end: Arc<Mutex<Option<StreamEnd>>>,
    time_limit: Option<Instant>,
}

/// Resolves once the server starts stopping.
pub(super) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here.
    let _ = stopping.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// The stream cannot go on; the reason is already recorded.
struct Stop;

impl TimelineWatch {
    async fn run(mut self, mut subscription: Subscription) {
        let _ = self.serve(&mut subscription).await;
    }

    async fn serve(&mut self, subscription: &mut Subscription) -> Result<(), Stop> {
        let mut stopping = self.services.stopping.clone();
        let mut heartbeat = tokio::time::interval(self.services.streams.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let time_limit = self.time_limit;
        let expiry = async move {
            match time_limit {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);

        self.catch_up().await?;
        let mut beats: u32 = 0;
        loop {
            tokio::select! {
                _ = self.sender.closed() => return Err(Stop),
                _ = stopped(&mut stopping) => return self.finish(StreamEnd::ShuttingDown),
                _ = &mut expiry => {
                    self.send_live(StreamItem::Heartbeat { resume_after: self.last_sent })?;
                    return self.finish(StreamEnd::TimeLimit);
                }
                // The store is asked every few heartbeats only: revocations
                // and events normally arrive through the bus.
                _ = heartbeat.tick() => {
                    beats += 1;
                    let ask_store = beats.is_multiple_of(STORE_CHECK_EVERY);
                    self.check_session(ask_store).await?;
                    let before = self.last_sent;
                    if ask_store {
                        self.catch_up().await?;
                    }
                    if self.last_sent == before {
                        self.send_live(StreamItem::Heartbeat { resume_after: self.last_sent })?;
                    }
                }
                message = subscription.next() => match message {
                    Some(BusMessage::Event(event)) => match self.feed.position(&event) {
                        None => {}
                        Some(position) if position <= self.last_sent => {}
                        Some(position) if position == self.last_sent + 1 => {
                            self.check_session(false).await?;
                            self.deliver_live(position, event)?;
                            heartbeat.reset();
                        }
                        // A gap in positions: the store knows what is missing.
                        Some(_) => self.catch_up().await?,
                    },
                    // Dropped messages: the store knows.
                    Some(BusMessage::Gap) => self.catch_up().await?,
                    None => return self.finish(StreamEnd::ShuttingDown),
                },
            }
        }
    }

    /// Sends everything the store has after `last_sent`, waiting for the
    /// client as it reads: the backlog comes from the store, so waiting
    /// holds no more than the stream's buffer.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let batch = self.feed.read_after(&self.services, self.last_sent).await;
            let events = match batch {
                Ok(events) => events,
                Err(error) => return self.finish(StreamEnd::Failed(error.into())),
            };
            let complete = events.len() < CATCH_UP_BATCH as usize;
            for event in events {
                self.last_sent = self.feed.position(&event).unwrap_or(self.last_sent);
                if event.visible_to_citizen {
                    self.send_waiting(StreamItem::Event(Box::new(event)))
                        .await?;
                }
            }
            if complete {
                return Ok(());
            }
        }
    }

    /// Ends the stream if its session was revoked: as heard on the bus, or,
    /// when `ask_store`, as the store says.
    async fn check_session(&mut self, ask_store: bool) -> Result<(), Stop> {
        if self.services.bus.heard_revoked(&self.session_id) {
            return self.finish(StreamEnd::Revoked);
        }
        if !ask_store {
            return Ok(());
        }
        match self.services.store.session_revoked(&self.session_id).await {
            Ok(false) => Ok(()),
            Ok(true) => self.finish(StreamEnd::Revoked),
            Err(error) => self.finish(StreamEnd::Failed(error.into())),
        }
    }

    /// Waits for room in the client's buffer, but not past shutdown.
    async fn send_waiting(&mut self, item: StreamItem) -> Result<(), Stop> {
        let mut stopping = self.services.stopping.clone();
        tokio::select! {
            sent = self.sender.send(item) => sent.map_err(|_| Stop),
            _ = stopped(&mut stopping) => self.finish(StreamEnd::ShuttingDown),
        }
    }

    fn deliver_live(&mut self, position: u64, event: ComplaintEvent) -> Result<(), Stop> {
        self.last_sent = position;
        if !event.visible_to_citizen {
            return Ok(());
        }
        self.send_live(StreamItem::Event(Box::new(event)))
    }

    /// Never waits: a live item that finds the client's buffer full ends
    /// the stream with "resume", so one slow phone cannot hold live events
    /// in server memory; it catches up from the store when it comes back.
    fn send_live(&mut self, item: StreamItem) -> Result<(), Stop> {
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
