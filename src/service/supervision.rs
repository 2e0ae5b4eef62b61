//! Supervision (督办): countdown reminders, overdue marks, escalation up
//! the hierarchy (逐级催办) and closing resolved cases nobody rated.
//!
//! `tick(now)` looks at every supervised case and fires what is due. Each
//! firing is a mark stored with a unique key, so running the loop on every
//! replica at once still fires each reminder exactly once.

use chrono::{DateTime, Duration, Utc};

use super::Services;
use crate::domain::case::local_time;
use crate::domain::complaint::{Complaint, ComplaintStatus, EventDraft, EventKind};
use crate::domain::directory::Directory;
use crate::store::MarkEffect;

/// When reminders, escalations and automatic closing happen.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionPolicy {
    /// Shares of the handling time after which the lead unit is reminded,
    /// e.g. 0.5 (half the time used) and 0.75 (a quarter left).
    pub reminder_points: Vec<f64>,
    /// An overdue case is urged one more level up after each interval.
    pub escalation_interval: Duration,
    /// A resolved case nobody rated closes by itself after this long.
    pub rating_window: Duration,
    /// Re-handling rounds before a district supervisor takes over.
    pub max_rework_rounds: u32,
}

impl Default for SupervisionPolicy {
    fn default() -> SupervisionPolicy {
        SupervisionPolicy {
            reminder_points: vec![0.5, 0.75],
            escalation_interval: Duration::hours(24),
            rating_window: Duration::days(7),
            max_rework_rounds: 2,
        }
    }
}

/// What one tick fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub reminders: u32,
    pub overdue: u32,
    pub escalations: u32,
    pub closed: u32,
    /// Volume spikes recorded for the first time this district day.
    pub spikes: u32,
}

/// One firing the tick wants.
struct Due {
    mark: String,
    expected: ComplaintStatus,
    effect: MarkEffect,
    event: EventDraft,
}

impl Services {
    /// Fires every reminder, overdue mark, escalation and automatic close
    /// due at `now`.
    pub async fn supervise(&self, now: DateTime<Utc>) -> anyhow::Result<TickReport> {
        let reference = self.reference();
        let mut report = TickReport::default();
        for complaint in self.store.supervised_cases().await? {
            for due in self.due_at(&complaint, &reference.directory, now) {
                let fired = self
                    .store
                    .fire_mark(
                        complaint.id,
                        &due.mark,
                        due.expected,
                        &due.effect,
                        &due.event,
                    )
                    .await?;
                let Some(events) = fired else { continue };
                for event in &events {
                    self.bus.publish(event);
                }
                match due.event.kind {
                    EventKind::Reminder => report.reminders += 1,
                    EventKind::Overdue => report.overdue += 1,
                    EventKind::Escalated => report.escalations += 1,
                    _ => report.closed += 1,
                }
            }
        }
        report.spikes = self.record_spikes(now).await?;
        Ok(report)
    }

    fn due_at(&self, complaint: &Complaint, directory: &Directory, now: DateTime<Utc>) -> Vec<Due> {
        match complaint.status {
            ComplaintStatus::Resolved => {
                self.close_if_unrated(complaint, now).into_iter().collect()
            }
            ComplaintStatus::Dispatched | ComplaintStatus::InProgress => {
                let mut due = self.reminders(complaint, now);
                due.extend(self.overdue_and_escalations(complaint, directory, now));
                due
            }
            _ => Vec::new(),
        }
    }

    fn reminders(&self, complaint: &Complaint, now: DateTime<Utc>) -> Vec<Due> {
        let handling = &complaint.handling;
        let (Some(start), Some(deadline)) = (handling.accepted_at, handling.deadline) else {
            return Vec::new();
        };
        if now >= deadline {
            return Vec::new();
        }
        let total = (deadline - start).num_seconds() as f64;
        let elapsed = (now - start).num_seconds() as f64;
        self.supervision
            .reminder_points
            .iter()
            .filter(|point| elapsed >= total * **point)
            .map(|point| {
                let left = deadline - now;
                let message = format!(
                    "距办理期限（{}）还剩{}小时{}分",
                    local_time(deadline),
                    left.num_hours(),
                    left.num_minutes() % 60
                );
                Due {
                    mark: format!("round{}:remind:{:.0}", handling.rework_round, point * 100.0),
                    expected: complaint.status,
                    effect: MarkEffect::default(),
                    event: internal(
                        EventKind::Reminder,
                        complaint,
                        handling.lead_unit_id.clone(),
                        message,
                        now,
                    ),
                }
            })
            .collect()
    }

    fn overdue_and_escalations(
        &self,
        complaint: &Complaint,
        directory: &Directory,
        now: DateTime<Utc>,
    ) -> Vec<Due> {
        let handling = &complaint.handling;
        let Some(deadline) = handling.deadline.filter(|deadline| now >= *deadline) else {
            return Vec::new();
        };
        let round = handling.rework_round;
        let mut due = vec![Due {
            mark: format!("round{round}:overdue"),
            expected: complaint.status,
            effect: MarkEffect {
                set_overdue: true,
                ..MarkEffect::default()
            },
            event: internal(
                EventKind::Overdue,
                complaint,
                handling.lead_unit_id.clone(),
                format!("已超过办理期限（{}）", local_time(deadline)),
                now,
            ),
        }];

        // One level up per interval past the deadline, as far as the centre.
        let intervals = ((now - deadline).num_seconds()
            / self.supervision.escalation_interval.num_seconds().max(1))
            + 1;
        let mut unit = handling.lead_unit_id.clone().unwrap_or_default();
        for level in 1..=intervals.min(8) as u32 {
            let Some(parent) = directory.parent(&unit) else {
                break;
            };
            unit = parent.id.clone();
            due.push(Due {
                mark: format!("round{round}:escalate:{level}"),
                expected: complaint.status,
                effect: MarkEffect {
                    escalation_level: Some(level),
                    ..MarkEffect::default()
                },
                event: internal(
                    EventKind::Escalated,
                    complaint,
                    Some(unit.clone()),
                    format!("逾期未办结，已向{}督办", parent.name_zh),
                    now,
                ),
            });
        }
        due
    }

    fn close_if_unrated(&self, complaint: &Complaint, now: DateTime<Utc>) -> Option<Due> {
        let resolved_at = complaint.handling.resolved_at?;
        if complaint
            .rating
            .as_ref()
            .is_some_and(|r| r.round == complaint.resolution_round)
        {
            return None;
        }
        if now < resolved_at + self.supervision.rating_window {
            return None;
        }
        let mut event = internal(
            EventKind::Closed,
            complaint,
            None,
            "评价期已过，诉求自动办结归档。".to_owned(),
            now,
        );
        event.visible_to_citizen = true;
        event.status = ComplaintStatus::Closed;
        Some(Due {
            mark: format!("resolution{}:autoclose", complaint.resolution_round),
            expected: ComplaintStatus::Resolved,
            effect: MarkEffect {
                close: true,
                ..MarkEffect::default()
            },
            event,
        })
    }
}

fn internal(
    kind: EventKind,
    complaint: &Complaint,
    unit_id: Option<String>,
    message: String,
    now: DateTime<Utc>,
) -> EventDraft {
    EventDraft {
        kind,
        status: complaint.status,
        message,
        visible_to_citizen: false,
        actor_id: None,
        unit_id,
        occurred_at: now,
    }
}
