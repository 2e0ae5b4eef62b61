//! Notifications at the edge: `NotificationService` for staff, and the
//! citizen's inbox and settings, which `CitizenService` serves through the
//! functions below.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::complaint::ComplaintId;
use crate::domain::notification::{
    NotificationKind, NotificationPreferences, NotificationState, RateCounts, Recipient,
};
use crate::proto::v1 as pb;
use crate::proto::v1::notification_service_server::NotificationService;
use crate::service::Services;
use crate::service::notifications::{InboxItem, NotificationSettings};
use crate::store::notifications::NotificationRecord;

pub struct NotificationApi {
    services: Arc<Services>,
}

impl NotificationApi {
    pub fn new(services: Arc<Services>) -> NotificationApi {
        NotificationApi { services }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn get_notification_rates(
        &self,
        request: Request<pb::GetNotificationRatesRequest>,
    ) -> Result<Response<pb::NotificationRates>, Status> {
        let request = request.into_inner();
        let since = request
            .since
            .map(|t| convert::time_from_proto("since", Some(t)))
            .transpose()?;
        let until = request
            .until
            .map(|t| convert::time_from_proto("until", Some(t)))
            .transpose()?;
        let report = self.services.notification_rates(since, until).await?;
        Ok(Response::new(pb::NotificationRates {
            acceptance: Some(rate_counts(&report.acceptance)),
            handling: Some(rate_counts(&report.handling)),
            supervision: Some(rate_counts(&report.supervision)),
            kinds: report
                .kinds
                .iter()
                .map(|(kind, counts)| pb::KindRates {
                    kind: kind_to_proto(*kind).into(),
                    counts: Some(rate_counts(counts)),
                })
                .collect(),
            channels: report
                .channels
                .iter()
                .map(|(channel, counts)| pb::ChannelRates {
                    channel: channel.as_str().to_owned(),
                    attempts: counts.attempts,
                    sent: counts.sent,
                    delivered: counts.delivered,
                    transient_failures: counts.transient,
                    permanent_failures: counts.permanent,
                    unknown: counts.unknown,
                })
                .collect(),
        }))
    }

    async fn list_case_notifications(
        &self,
        request: Request<pb::ListCaseNotificationsRequest>,
    ) -> Result<Response<pb::ListCaseNotificationsResponse>, Status> {
        let staff = caller(&request)?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let records = self.services.case_notifications(&staff, id).await?;
        Ok(Response::new(pb::ListCaseNotificationsResponse {
            notifications: records.iter().map(case_notification).collect(),
        }))
    }
}

pub(super) async fn list_notifications(
    services: &Services,
    request: Request<pb::ListNotificationsRequest>,
) -> Result<Response<pb::ListNotificationsResponse>, Status> {
    let citizen = caller(&request)?;
    services.limit_read(&citizen).await?;
    let request = request.into_inner();
    let page = services
        .list_notifications(
            &citizen,
            request.page_size,
            &request.page_token,
            request.unread_only,
        )
        .await?;
    Ok(Response::new(pb::ListNotificationsResponse {
        notifications: page.items.iter().map(inbox_item).collect(),
        next_page_token: page.next_page_token.unwrap_or_default(),
        unread_count: page.unread,
    }))
}

pub(super) async fn mark_notifications_read(
    services: &Services,
    request: Request<pb::MarkNotificationsReadRequest>,
) -> Result<Response<pb::MarkNotificationsReadResponse>, Status> {
    let citizen = caller(&request)?;
    let request = request.into_inner();
    let (marked, unread) = services
        .mark_notifications_read(&citizen, &request.notification_ids, request.all)
        .await?;
    Ok(Response::new(pb::MarkNotificationsReadResponse {
        marked,
        unread_count: unread,
    }))
}

pub(super) async fn report_subscription_grant(
    services: &Services,
    request: Request<pb::ReportSubscriptionGrantRequest>,
) -> Result<Response<pb::NotificationSettings>, Status> {
    let citizen = caller(&request)?;
    let request = request.into_inner();
    let settings = services
        .report_subscription_grant(
            &citizen,
            &request.request_id,
            &request.accepted_template_ids,
        )
        .await?;
    Ok(Response::new(settings_to_proto(&settings)))
}

pub(super) async fn get_notification_settings(
    services: &Services,
    request: Request<pb::GetNotificationSettingsRequest>,
) -> Result<Response<pb::NotificationSettings>, Status> {
    let citizen = caller(&request)?;
    let settings = services.notification_settings(&citizen).await?;
    Ok(Response::new(settings_to_proto(&settings)))
}

pub(super) async fn update_notification_settings(
    services: &Services,
    request: Request<pb::UpdateNotificationSettingsRequest>,
) -> Result<Response<pb::NotificationSettings>, Status> {
    let citizen = caller(&request)?;
    let request = request.into_inner();
    let preferences = NotificationPreferences {
        wechat: request.wechat_enabled,
        sms: request.sms_enabled,
    };
    let settings = services
        .update_notification_settings(&citizen, preferences)
        .await?;
    Ok(Response::new(settings_to_proto(&settings)))
}

fn settings_to_proto(settings: &NotificationSettings) -> pb::NotificationSettings {
    pb::NotificationSettings {
        wechat_enabled: settings.preferences.wechat,
        sms_enabled: settings.preferences.sms,
        subscriptions: settings
            .subscriptions
            .iter()
            .map(|s| pb::SubscriptionBalance {
                template_id: s.template_id.clone(),
                unspent: s.unspent,
                long_term: s.long_term,
            })
            .collect(),
    }
}

fn inbox_item(item: &InboxItem) -> pb::Notification {
    pb::Notification {
        id: item.id.to_string(),
        complaint_id: item.complaint_id.to_string(),
        tracking_number: item.tracking_number.clone(),
        kind: kind_to_proto(item.kind).into(),
        title: item.title.clone(),
        text: item.text.clone(),
        created_at: Some(convert::timestamp(item.created_at)),
        read: item.read,
    }
}

fn case_notification(record: &NotificationRecord) -> pb::CaseNotification {
    pb::CaseNotification {
        id: record.id.to_string(),
        event_sequence: record.sequence,
        kind: kind_to_proto(record.kind).into(),
        recipient: match &record.recipient {
            Recipient::Citizen(_) => "citizen".to_owned(),
            Recipient::Unit(unit) => unit.clone(),
        },
        state: state_to_proto(record.state).into(),
        channel: record
            .channel
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        created_at: Some(convert::timestamp(record.created_at)),
        settled_at: record.settled_at.map(convert::timestamp),
        failure_reason: record.failure_reason.clone().unwrap_or_default(),
        read: record.read_at.is_some(),
        attempts: record
            .attempts
            .iter()
            .map(|a| pb::NotificationAttempt {
                channel: a.channel.as_str().to_owned(),
                started_at: Some(convert::timestamp(a.started_at)),
                finished_at: a.finished_at.map(convert::timestamp),
                outcome: a.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
                detail: a.detail.clone().unwrap_or_default(),
                delivered_at: a.delivered_at.map(convert::timestamp),
            })
            .collect(),
    }
}

fn rate_counts(counts: &RateCounts) -> pb::RateCounts {
    pb::RateCounts {
        intended: counts.intended,
        sent: counts.sent,
        delivered: counts.delivered,
        in_app_only: counts.in_app_only,
        failed: counts.failed,
        pending: counts.pending,
        unconfirmed: counts.unconfirmed,
        read: counts.read,
        sent_rate: counts.sent_rate(),
        delivered_rate: counts.delivered_rate(),
    }
}

fn kind_to_proto(kind: NotificationKind) -> pb::NotificationKind {
    use NotificationKind as K;
    use pb::NotificationKind as P;
    match kind {
        K::Received => P::Received,
        K::Accepted => P::Accepted,
        K::Rejected => P::Rejected,
        K::Answered => P::Answered,
        K::Dispatched => P::Dispatched,
        K::Extended => P::Extended,
        K::Resolved => P::Resolved,
        K::Reopened => P::Reopened,
        K::Merged => P::Merged,
        K::Closed => P::Closed,
        K::Reminder => P::Reminder,
        K::Overdue => P::Overdue,
        K::Escalated => P::Escalated,
    }
}

fn state_to_proto(state: NotificationState) -> pb::NotificationState {
    use NotificationState as S;
    use pb::NotificationState as P;
    match state {
        S::Pending => P::Pending,
        S::Sent => P::Sent,
        S::InApp => P::InApp,
        S::Failed => P::Failed,
        S::Unconfirmed => P::Unconfirmed,
    }
}
