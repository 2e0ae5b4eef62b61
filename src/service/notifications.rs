//! Notifications as citizens and staff see them: the citizen's inbox and
//! its read marks, the WeChat subscription grants the mini-program
//! reports, the channels a citizen allows, each case's notifications with
//! their attempts, and the notification rates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};

use super::Services;
use super::complaints::page_limit;
use crate::domain::account::Principal;
use crate::domain::case::local_time;
use crate::domain::complaint::{ComplaintId, RequestId, tracking_number};
use crate::domain::error::{DomainError, Refusal, Violations};
use crate::domain::notification::{
    DeliveryChannel, NotificationKind, NotificationPreferences, RateCounts, RateGroup, status_name,
};
use crate::domain::notification_templates::TemplateValues;
use crate::store::notifications::{ChannelCounts, InboxEntry, NotificationRecord};

/// Template ids one grant report may carry.
const MAX_GRANTS_PER_REPORT: usize = 20;

/// One inbox entry, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub id: i64,
    pub complaint_id: ComplaintId,
    pub tracking_number: String,
    pub kind: NotificationKind,
    pub title: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub next_page_token: Option<String>,
    pub unread: u64,
}

/// A WeChat template the mini-program asks citizens to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub template_id: String,
    pub unspent: u64,
    pub long_term: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettings {
    pub preferences: NotificationPreferences,
    pub subscriptions: Vec<Subscription>,
}

/// The rates of a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RatesReport {
    pub acceptance: RateCounts,
    pub handling: RateCounts,
    pub supervision: RateCounts,
    pub kinds: Vec<(NotificationKind, RateCounts)>,
    pub channels: Vec<(DeliveryChannel, ChannelCounts)>,
}

impl Services {
    // TODO(personal-data): ExportMyData does not include the inbox, nor
    // the subscription grants and channel settings; none of them holds
    // more than ids and times, but the export should list them.
    pub async fn list_notifications(
        &self,
        citizen: &Principal,
        page_size: i32,
        page_token: &str,
        unread_only: bool,
    ) -> Result<InboxPage, DomainError> {
        let limit = page_limit(page_size)?;
        let before = decode_token(page_token)?;
        let mut entries = self
            .store
            .inbox(citizen.account_id, unread_only, before, limit + 1)
            .await?;
        let next_page_token = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|last| encode_token(last.id))
        } else {
            None
        };
        let unread = self.store.unread_notifications(citizen.account_id).await?;
        Ok(InboxPage {
            items: entries.iter().map(|entry| self.inbox_item(entry)).collect(),
            next_page_token,
            unread,
        })
    }

    /// Marks the listed notifications (or all) read; returns how many
    /// changed and how many stay unread.
    pub async fn mark_notifications_read(
        &self,
        citizen: &Principal,
        ids: &[String],
        all: bool,
    ) -> Result<(u64, u64), DomainError> {
        let ids = parse_ids(ids, all)?;
        let marked = self
            .store
            .mark_notifications_read(citizen.account_id, ids.as_deref(), self.clock.now())
            .await?;
        let unread = self.store.unread_notifications(citizen.account_id).await?;
        Ok((marked, unread))
    }

    /// Records the grants a citizen gave in the mini-program.
    pub async fn report_subscription_grant(
        &self,
        citizen: &Principal,
        request_id: &str,
        accepted: &[String],
    ) -> Result<NotificationSettings, DomainError> {
        let mut violations = Violations::default();
        let request_id = violations.check(RequestId::parse("request_id", request_id));
        let known = self.notifier.templates.wechat_template_ids();
        if accepted.len() > MAX_GRANTS_PER_REPORT {
            violations.push(
                "accepted_template_ids",
                format!("at most {MAX_GRANTS_PER_REPORT} per report"),
            );
        }
        for (i, id) in accepted.iter().enumerate() {
            if !known.iter().any(|(known, _)| known == id) {
                violations.push(
                    format!("accepted_template_ids[{i}]"),
                    "is not a template this server sends",
                );
            } else if accepted[..i].contains(id) {
                violations.push(format!("accepted_template_ids[{i}]"), "appears twice");
            }
        }
        violations.into_result()?;
        let request_id = request_id.ok_or_else(|| anyhow::anyhow!("a checked id is missing"))?;

        let Some(wechat) = &self.notifier.wechat else {
            return Err(DomainError::FailedPrecondition(
                "this server sends no WeChat messages".to_owned(),
            ));
        };
        let linked = self
            .store
            .wechat_identity(citizen.account_id, wechat.app_id())
            .await?;
        if linked.is_none() {
            return Err(DomainError::Refused(Refusal::new(
                "WECHAT_NOT_LINKED",
                "sign in with WeChat or link it first: grants belong to a WeChat user",
            )));
        }
        self.store
            .add_subscription_grants(
                citizen.account_id,
                wechat.app_id(),
                request_id.as_str(),
                accepted,
                self.clock.now(),
            )
            .await?;
        self.notification_settings(citizen).await
    }

    pub async fn notification_settings(
        &self,
        citizen: &Principal,
    ) -> Result<NotificationSettings, DomainError> {
        let preferences = self
            .store
            .notification_preferences(citizen.account_id)
            .await?;
        let mut subscriptions = Vec::new();
        if let Some(wechat) = &self.notifier.wechat {
            let balances = self
                .store
                .subscription_balances(citizen.account_id, wechat.app_id())
                .await?;
            for (template_id, long_term) in self.notifier.templates.wechat_template_ids() {
                let unspent = balances
                    .iter()
                    .find(|(id, _)| *id == template_id)
                    .map_or(0, |(_, n)| *n);
                subscriptions.push(Subscription {
                    template_id,
                    unspent,
                    long_term,
                });
            }
        }
        Ok(NotificationSettings {
            preferences,
            subscriptions,
        })
    }

    pub async fn update_notification_settings(
        &self,
        citizen: &Principal,
        preferences: NotificationPreferences,
    ) -> Result<NotificationSettings, DomainError> {
        self.store
            .save_notification_preferences(citizen.account_id, preferences, self.clock.now())
            .await?;
        self.notification_settings(citizen).await
    }

    /// A case's notifications, for staff who may see the case.
    pub async fn case_notifications(
        &self,
        staff: &Principal,
        id: ComplaintId,
    ) -> Result<Vec<NotificationRecord>, DomainError> {
        self.get_case(staff, id).await?;
        Ok(self.store.case_notifications(id).await?)
    }

    /// Counts and rates of the notifications created in `[since, until)`.
    pub async fn notification_rates(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<RatesReport, DomainError> {
        let mut violations = Violations::default();
        if since.is_none() {
            violations.push("since", "must be set");
        }
        if until.is_none() {
            violations.push("until", "must be set");
        }
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            violations.push("until", "must be after since");
        }
        violations.into_result()?;
        let (Some(since), Some(until)) = (since, until) else {
            return Err(anyhow::anyhow!("checked times are missing").into());
        };

        let kinds = self.store.notification_counts(since, until).await?;
        let mut report = RatesReport {
            channels: self.store.channel_counts(since, until).await?,
            ..RatesReport::default()
        };
        for (kind, counts) in &kinds {
            match kind.group() {
                RateGroup::Acceptance => report.acceptance.add(counts),
                RateGroup::Handling => report.handling.add(counts),
                RateGroup::Supervision => report.supervision.add(counts),
            }
        }
        report.kinds = kinds;
        Ok(report)
    }

    // TODO(notifications): entries are worded when listed, with the
    // complaint's deadline as it is now: an old "accepted" entry shows a
    // later extended deadline, and a changed templates file rewords old
    // entries. Storing the rendered text with the notification would fix
    // both.
    fn inbox_item(&self, entry: &InboxEntry) -> InboxItem {
        let template = self.notifier.templates.get(entry.kind);
        let id = entry.event.complaint_id;
        let values = TemplateValues {
            tracking_number: tracking_number(id, entry.complaint_created_at),
            complaint_id: id.to_string(),
            status: status_name(entry.event.status).to_owned(),
            deadline: entry.deadline.map_or_else(|| "—".to_owned(), local_time),
            time: local_time(entry.event.occurred_at),
            unit: String::new(),
            message: entry.event.message.clone(),
        };
        InboxItem {
            id: entry.id,
            complaint_id: id,
            tracking_number: values.tracking_number.clone(),
            kind: entry.kind,
            title: template.title.render(&values),
            text: template.text.render(&values),
            created_at: entry.created_at,
            read: entry.read_at.is_some(),
        }
    }
}

/// The listed ids, or `None` for all of them; one or the other.
fn parse_ids(ids: &[String], all: bool) -> Result<Option<Vec<i64>>, DomainError> {
    if all {
        if !ids.is_empty() {
            return Err(DomainError::invalid(
                "notification_ids",
                "leave empty when marking all",
            ));
        }
        return Ok(None);
    }
    if ids.is_empty() {
        return Err(DomainError::invalid(
            "notification_ids",
            "name at least one notification, or set all",
        ));
    }
    let mut violations = Violations::default();
    let mut parsed = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match id.parse::<i64>() {
            Ok(id) if id > 0 => parsed.push(id),
            _ => violations.push(format!("notification_ids[{i}]"), "is not a notification id"),
        }
    }
    if ids.len() > 100 {
        violations.push("notification_ids", "at most 100 at once");
    }
    violations.into_result()?;
    Ok(Some(parsed))
}

fn encode_token(last: i64) -> String {
    B64.encode(format!("notification:{last}"))
}

fn decode_token(token: &str) -> Result<Option<i64>, DomainError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || DomainError::invalid("page_token", "is not a token this server issued");
    let bytes = B64.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("notification:")
        .and_then(|id| id.parse().ok())
        .map(Some)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_to_mark_are_parsed_all_or_listed() {
        assert_eq!(parse_ids(&[], true).unwrap(), None);
        assert_eq!(
            parse_ids(&["3".to_owned(), "9".to_owned()], false).unwrap(),
            Some(vec![3, 9])
        );
        assert!(parse_ids(&[], false).is_err());
        assert!(parse_ids(&["x".to_owned()], false).is_err());
        assert!(parse_ids(&["1".to_owned()], true).is_err());
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(decode_token(&encode_token(42)).unwrap(), Some(42));
        assert!(decode_token("garbage!").is_err());
    }
}
