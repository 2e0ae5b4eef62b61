//! Notifications: who is told about which timeline event, through which
//! channel next, when (quiet hours, retries with backoff), and how the
//! outcomes of the attempts add up to the notification rates the district
//! reports. Nothing here sends anything.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};

use super::account::AccountId;
use super::complaint::{ComplaintEvent, ComplaintStatus, EventKind, stored_enum};
use super::time::shanghai;

stored_enum!(
    /// What a notification tells; each kind has one template.
    NotificationKind {
        Received => "received",
        Accepted => "accepted",
        Rejected => "rejected",
        Answered => "answered",
        Dispatched => "dispatched",
        Extended => "extended",
        Resolved => "resolved",
        Reopened => "reopened",
        Merged => "merged",
        Closed => "closed",
        Reminder => "reminder",
        Overdue => "overdue",
        Escalated => "escalated",
    }
);

stored_enum!(
    /// The figures a notification counts towards.
    RateGroup {
        // The acceptance notification rate (受理告知率).
        Acceptance => "acceptance",
        // The handling notification rate (办理告知率).
        Handling => "handling",
        // Reminders and urging sent to units.
        Supervision => "supervision",
    }
);

stored_enum!(
    /// Where a notification stands.
    NotificationState {
        Pending => "pending",
        // An outside channel accepted it.
        Sent => "sent",
        // No outside channel could take it: it is only in the citizen's
        // inbox, or the case's timeline for a unit.
        InApp => "in_app",
        // Every channel refused it for good, or its retries ran out.
        Failed => "failed",
        // A call may have reached a channel without an answer; it is not
        // repeated, so that nobody is told twice.
        Unconfirmed => "unconfirmed",
    }
);

stored_enum!(
    /// The outside channels, in the order they are preferred.
    DeliveryChannel {
        WeChat => "wechat",
        Sms => "sms",
        Webhook => "webhook",
    }
);

stored_enum!(
    /// How one attempt ended.
    AttemptOutcome {
        // The channel accepted the message.
        Sent => "sent",
        // Busy, unreachable or over a quota: worth trying again later.
        Transient => "transient",
        // Refused for good (invalid number, revoked grant, …).
        Permanent => "permanent",
        // The call may have reached the channel; nobody knows.
        Unknown => "unknown",
    }
);

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Citizen(AccountId),
    /// The staff of a unit.
    Unit(String),
}

impl NotificationKind {
    pub fn group(self) -> RateGroup {
        use NotificationKind::*;
        match self {
            Received | Accepted | Rejected => RateGroup::Acceptance,
            Answered | Dispatched | Extended | Resolved | Reopened | Merged | Closed => {
                RateGroup::Handling
            }
            Reminder | Overdue | Escalated => RateGroup::Supervision,
        }
    }

    /// Whether the kind goes to citizens (else to a unit's staff).
    pub fn for_citizens(self) -> bool {
        self.group() != RateGroup::Supervision
    }
}

/// The notification an event calls for, if any: citizens are told at every
/// node of their complaint except what they did themselves in the app
/// (withdrawing, rating); units are told of reminders, overdue marks and
/// escalations. Copies of events in merged complaints count as their own
/// events, so those complaints' citizens are told too.
pub fn notification_for(event: &ComplaintEvent) -> Option<(NotificationKind, Recipient)> {
    use NotificationKind as N;
    if event.visible_to_citizen {
        let citizen = event.citizen_id?;
        let by_citizen = event.actor_id == Some(citizen);
        let kind = match event.kind {
            EventKind::Received => N::Received,
            EventKind::Accepted => N::Accepted,
            EventKind::Rejected => N::Rejected,
            EventKind::Answered => N::Answered,
            EventKind::Dispatched => N::Dispatched,
            EventKind::DeadlineChanged => N::Extended,
            EventKind::Resolved => N::Resolved,
            EventKind::Merged => N::Merged,
            EventKind::Reopened if !by_citizen => N::Reopened,
            EventKind::Closed if !by_citizen => N::Closed,
            _ => return None,
        };
        return Some((kind, Recipient::Citizen(citizen)));
    }
    let kind = match event.kind {
        EventKind::Reminder => N::Reminder,
        EventKind::Overdue => N::Overdue,
        EventKind::Escalated => N::Escalated,
        _ => return None,
    };
    Some((kind, Recipient::Unit(event.unit_id.clone()?)))
}

/// A status as messages name it; at most five characters, which WeChat's
/// `phrase` fields allow.
pub fn status_name(status: ComplaintStatus) -> &'static str {
    match status {
        ComplaintStatus::Received => "已收到",
        ComplaintStatus::Accepted => "已受理",
        ComplaintStatus::Rejected => "不予受理",
        ComplaintStatus::Dispatched => "已派发",
        ComplaintStatus::InProgress => "办理中",
        ComplaintStatus::Resolved => "已办结",
        ComplaintStatus::Closed => "已归档",
        ComplaintStatus::Withdrawn => "已撤回",
    }
}

/// Hours (district time) during which non-urgent messages to citizens wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// "22:00-08:00"; a window may run past midnight.
    pub fn parse(text: &str) -> Result<QuietHours, String> {
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| "quiet hours look like 22:00-08:00".to_owned())?;
        let time = |value: &str| {
            NaiveTime::parse_from_str(value.trim(), "%H:%M")
                .map_err(|_| format!("{value:?} is not a time like 08:00"))
        };
        let hours = QuietHours {
            start: time(start)?,
            end: time(end)?,
        };
        if hours.start == hours.end {
            return Err("quiet hours must not start and end at the same time".to_owned());
        }
        Ok(hours)
    }

    /// When the quiet window `now` falls in ends; `None` outside it.
    pub fn resumes_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&shanghai());
        let time = local.time();
        let inside = if self.start < self.end {
            time >= self.start && time < self.end
        } else {
            time >= self.start || time < self.end
        };
        if !inside {
            return None;
        }
        let mut day = local.date_naive();
        if time >= self.end {
            day = day.succ_opt()?;
        }
        let end = day
            .and_time(self.end)
            .and_local_timezone(shanghai())
            .single()?;
        Some(end.with_timezone(&Utc))
    }
}

/// How often and how soon a channel is tried again after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Transient failures on one channel before the next channel is tried.
    pub attempts_per_channel: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            attempts_per_channel: 3,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`-th transient failure: doubling from
    /// the first delay, up to the maximum.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// One earlier attempt, as far as choosing the next one is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAttempt {
    pub channel: DeliveryChannel,
    /// `None` while (or if) the call never finished.
    pub outcome: Option<AttemptOutcome>,
    pub detail: Option<String>,
}

/// What the sender does next with a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Try(DeliveryChannel),
    /// The last transient failure was on this channel: wait, then try again.
    Wait(Duration),
    Settle {
        state: NotificationState,
        // The channel that accepted it, when sent.
        channel: Option<DeliveryChannel>,
        reason: Option<String>,
    },
}

/// Chooses the next step from the channels open to the recipient (in order
/// of preference) and the attempts so far. A channel that refused for good
/// is not tried again; one that failed transiently is retried after a
/// backoff until its budget is spent, then the next channel is tried.
pub fn next_step(
    channels: &[DeliveryChannel],
    history: &[PastAttempt],
    policy: &RetryPolicy,
    just_failed: Option<DeliveryChannel>,
) -> NextStep {
    // A sender that stopped after a channel accepted the message, before
    // settling it, left the answer in the history.
    if let Some(sent) = history
        .iter()
        .find(|a| a.outcome == Some(AttemptOutcome::Sent))
    {
        return NextStep::Settle {
            state: NotificationState::Sent,
            channel: Some(sent.channel),
            reason: None,
        };
    }
    if history
        .iter()
        .any(|a| a.outcome.is_none() || a.outcome == Some(AttemptOutcome::Unknown))
    {
        return NextStep::Settle {
            state: NotificationState::Unconfirmed,
            channel: None,
            reason: Some("a call may have reached the channel without an answer".to_owned()),
        };
    }
    for &channel in channels {
        let mine = history.iter().filter(|a| a.channel == channel);
        let refused = mine
            .clone()
            .any(|a| a.outcome == Some(AttemptOutcome::Permanent));
        let failures = mine.count() as u32;
        if refused || failures >= policy.attempts_per_channel {
            continue;
        }
        if just_failed == Some(channel) {
            return NextStep::Wait(policy.delay(failures));
        }
        return NextStep::Try(channel);
    }
    match history.last() {
        None => NextStep::Settle {
            state: NotificationState::InApp,
            channel: None,
            reason: None,
        },
        Some(last) => NextStep::Settle {
            state: NotificationState::Failed,
            channel: None,
            reason: Some(format!(
                "{}: {}",
                last.channel.as_str(),
                last.detail.as_deref().unwrap_or("failed")
            )),
        },
    }
}

/// The channels a citizen allows besides the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationPreferences {
    pub wechat: bool,
    pub sms: bool,
}

impl Default for NotificationPreferences {
    fn default() -> NotificationPreferences {
        NotificationPreferences {
            wechat: true,
            sms: true,
        }
    }
}

/// Counts of one group or kind of notifications, from the attempt records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateCounts {
    /// Notifications the events called for.
    pub intended: u64,
    /// Accepted by an outside channel (an attempt says so).
    pub sent: u64,
    /// Reported delivered by the channel.
    pub delivered: u64,
    pub in_app_only: u64,
    pub failed: u64,
    pub pending: u64,
    pub unconfirmed: u64,
    /// Citizens' inbox entries marked read.
    pub read: u64,
}

impl RateCounts {
    pub fn add(&mut self, other: &RateCounts) {
        self.intended += other.intended;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.in_app_only += other.in_app_only;
        self.failed += other.failed;
        self.pending += other.pending;
        self.unconfirmed += other.unconfirmed;
        self.read += other.read;
    }

    /// Sent over intended; 1 when nothing was intended.
    pub fn sent_rate(&self) -> f64 {
        ratio(self.sent, self.intended)
    }

    /// Delivered over intended; 1 when nothing was intended.
    pub fn delivered_rate(&self) -> f64 {
        ratio(self.delivered, self.intended)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::complaint::{ComplaintId, ComplaintStatus};

    fn event(kind: EventKind, visible: bool, actor: Option<i64>) -> ComplaintEvent {
        ComplaintEvent {
            complaint_id: ComplaintId(1),
            sequence: 1,
            kind,
            status: ComplaintStatus::Received,
            message: String::new(),
            visible_to_citizen: visible,
            actor_id: actor.map(AccountId),
            unit_id: Some("cm:heping".to_owned()),
            occurred_at: Utc::now(),
            citizen_id: visible.then_some(AccountId(7)),
            citizen_sequence: visible.then_some(1),
        }
    }

    #[test]
    fn citizens_are_told_at_every_node_but_not_of_their_own_acts() {
        let citizen = Recipient::Citizen(AccountId(7));
        let told = |kind, actor| notification_for(&event(kind, true, actor));
        assert_eq!(
            told(EventKind::Received, Some(7)),
            Some((NotificationKind::Received, citizen.clone()))
        );
        assert_eq!(
            told(EventKind::DeadlineChanged, Some(3)),
            Some((NotificationKind::Extended, citizen.clone()))
        );
        assert_eq!(told(EventKind::Closed, Some(7)), None, "closed by rating");
        assert_eq!(
            told(EventKind::Closed, None),
            Some((NotificationKind::Closed, citizen))
        );
        assert_eq!(told(EventKind::Withdrawn, Some(7)), None);
        assert_eq!(told(EventKind::Progress, Some(3)), None);
    }

    #[test]
    fn units_are_told_of_reminders_and_escalations_only() {
        let unit = Recipient::Unit("cm:heping".to_owned());
        let told = |kind| notification_for(&event(kind, false, None));
        assert_eq!(
            told(EventKind::Escalated),
            Some((NotificationKind::Escalated, unit))
        );
        assert_eq!(told(EventKind::Returned), None);
        assert_eq!(told(EventKind::FollowUp), None);
    }

    #[test]
    fn quiet_hours_past_midnight_end_the_next_morning() {
        let quiet = QuietHours::parse("22:00-08:00").unwrap();
        // 23:30 and 07:59 in Shenzhen wait until 08:00; 08:00 does not.
        let late = Utc.with_ymd_and_hms(2026, 12, 3, 15, 30, 0).unwrap();
        let morning = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        assert_eq!(quiet.resumes_at(late), Some(morning));
        let early = Utc.with_ymd_and_hms(2026, 12, 3, 23, 59, 0).unwrap();
        assert_eq!(quiet.resumes_at(early), Some(morning));
        assert_eq!(quiet.resumes_at(morning), None);
        assert!(QuietHours::parse("08:00-08:00").is_err());
        assert!(QuietHours::parse("8h-9h").is_err());
    }

    #[test]
    fn quiet_hours_within_a_day() {
        let quiet = QuietHours::parse("12:00-14:00").unwrap();
        let noon = Utc.with_ymd_and_hms(2026, 12, 3, 4, 30, 0).unwrap();
        let two = Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap();
        assert_eq!(quiet.resumes_at(noon), Some(two));
        assert_eq!(quiet.resumes_at(two), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1), Duration::from_secs(60));
        assert_eq!(policy.delay(3), Duration::from_secs(240));
        assert_eq!(policy.delay(30), Duration::from_secs(3600));
    }

    fn past(channel: DeliveryChannel, outcome: AttemptOutcome) -> PastAttempt {
        PastAttempt {
            channel,
            outcome: Some(outcome),
            detail: Some("43101".to_owned()),
        }
    }

    #[test]
    fn a_refused_channel_falls_back_and_the_last_refusal_fails_the_notification() {
        use DeliveryChannel::*;
        let policy = RetryPolicy::default();
        let channels = [WeChat, Sms];
        assert_eq!(
            next_step(&channels, &[], &policy, None),
            NextStep::Try(WeChat)
        );
        let refused = [past(WeChat, AttemptOutcome::Permanent)];
        assert_eq!(
            next_step(&channels, &refused, &policy, Some(WeChat)),
            NextStep::Try(Sms)
        );
        let both = [refused[0].clone(), past(Sms, AttemptOutcome::Permanent)];
        assert!(matches!(
            next_step(&channels, &both, &policy, Some(Sms)),
            NextStep::Settle { state: NotificationState::Failed, reason: Some(r), .. } if r.starts_with("sms")
        ));
        assert_eq!(
            next_step(&[], &[], &policy, None),
            NextStep::Settle {
                state: NotificationState::InApp,
                channel: None,
                reason: None
            }
        );
        let sent = [refused[0].clone(), past(Sms, AttemptOutcome::Sent)];
        assert!(matches!(
            next_step(&channels, &sent, &policy, None),
            NextStep::Settle {
                state: NotificationState::Sent,
                channel: Some(Sms),
                ..
            }
        ));
    }

    #[test]
    fn transient_failures_wait_then_exhaust_the_channel() {
        use DeliveryChannel::*;
        let policy = RetryPolicy::default();
        let mut history = vec![past(WeChat, AttemptOutcome::Transient)];
        assert_eq!(
            next_step(&[WeChat, Sms], &history, &policy, Some(WeChat)),
            NextStep::Wait(Duration::from_secs(60))
        );
        // After the wait, the same channel again.
        assert_eq!(
            next_step(&[WeChat, Sms], &history, &policy, None),
            NextStep::Try(WeChat)
        );
        history.push(past(WeChat, AttemptOutcome::Transient));
        history.push(past(WeChat, AttemptOutcome::Transient));
        assert_eq!(
            next_step(&[WeChat, Sms], &history, &policy, Some(WeChat)),
            NextStep::Try(Sms)
        );
    }

    #[test]
    fn an_unanswered_call_is_never_repeated() {
        let history = [PastAttempt {
            channel: DeliveryChannel::Sms,
            outcome: None,
            detail: None,
        }];
        assert!(matches!(
            next_step(
                &[DeliveryChannel::Sms],
                &history,
                &RetryPolicy::default(),
                None
            ),
            NextStep::Settle {
                state: NotificationState::Unconfirmed,
                ..
            }
        ));
    }
}
