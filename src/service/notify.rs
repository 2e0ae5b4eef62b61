//! The notification sender. Each pass takes a batch of due notifications
//! from the outbox under a lease (so that several replicas never send the
//! same one), chooses the channels the recipient can be reached through —
//! WeChat subscribe messages while the citizen has grants, then texts, for
//! citizens; the unit's webhook for staff — and records every attempt
//! before and after its call. Transient failures wait with backoff, a
//! channel that refuses for good gives way to the next, and a call that may
//! have reached a channel without an answer is never repeated.
//!
//! Time comes from the caller (`send_notifications(now)`), so that tests
//! drive the sender with the manual clock.

use chrono::{DateTime, Utc};

use super::Services;
use crate::config::NotificationConfig;
use crate::domain::case::local_time;
use crate::domain::category::Urgency;
use crate::domain::complaint::tracking_number;
use crate::domain::notification::{
    AttemptOutcome, DeliveryChannel, NextStep, NotificationState, PastAttempt, QuietHours,
    Recipient, RetryPolicy, next_step, status_name,
};
use crate::domain::notification_templates::{
    NotificationTemplate, NotificationTemplates, SmsTemplate, TemplateValues, WeChatTemplate,
};
use crate::domain::phone::PhoneNumber;
use crate::limiter::{Check, Policy, Refusal, Subject};
use crate::notify::DeliveryError;
use crate::notify::webhook::{Webhook, WebhookRoutes};
use crate::notify::wechat::{SubscribeError, SubscribeMessage, SubscribeMessenger};
use crate::security::Secret;
use crate::sms::NoticeMessage;
use crate::store::notifications::{AfterAttempt, AttemptResult, ClaimedNotification, Settlement};

/// What the sender needs, built once at start-up.
pub struct Notifier {
    pub templates: NotificationTemplates,
    pub quiet_hours: Option<QuietHours>,
    pub retry: RetryPolicy,
    pub batch: u32,
    pub lease: chrono::Duration,
    pub wechat: Option<SubscribeMessenger>,
    pub webhooks: WebhookRoutes,
    webhook: Webhook,
    /// Names this replica's sender in leases and attempt records.
    pub worker: String,
}

impl Notifier {
    pub fn new(
        config: &NotificationConfig,
        wechat: Option<SubscribeMessenger>,
    ) -> anyhow::Result<Notifier> {
        let mut nonce = [0u8; 6];
        rand::fill(&mut nonce);
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Notifier {
            templates: config.templates.clone(),
            quiet_hours: config.quiet_hours,
            retry: config.retry,
            batch: config.batch,
            lease: chrono::Duration::from_std(config.lease)?,
            wechat,
            webhooks: config.staff_webhooks.clone(),
            webhook: Webhook::new()?,
            worker: format!("sender-{nonce}"),
        })
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    pub claimed: u32,
    pub sent: u32,
    pub in_app: u32,
    pub failed: u32,
    pub unconfirmed: u32,
    /// Failed transiently; tried again after a backoff.
    pub retrying: u32,
    /// Waiting for quiet hours to end or a per-phone limit to refill.
    pub deferred: u32,
}

/// How one notification's turn in a pass ended.
enum Turn {
    Settled(NotificationState),
    Retrying,
    Deferred,
    /// The lease was lost or the store failed: another pass takes it up.
    Interrupted,
}

/// A way to reach the recipient.
enum Route {
    WeChat {
        openid: String,
        template: WeChatTemplate,
    },
    Sms {
        phone: PhoneNumber,
        template: SmsTemplate,
    },
    Webhook {
        url: Secret,
    },
}

impl Route {
    fn channel(&self) -> DeliveryChannel {
        match self {
            Route::WeChat { .. } => DeliveryChannel::WeChat,
            Route::Sms { .. } => DeliveryChannel::Sms,
            Route::Webhook { .. } => DeliveryChannel::Webhook,
        }
    }
}

/// Whether an attempt may go ahead once its channel is chosen.
enum Preparation {
    Go {
        grant: Option<i64>,
    },
    /// The channel cannot take this notification after all (no grant left).
    Drop,
    Defer(DateTime<Utc>),
}

impl Services {
    /// One pass of the sender at `now`: takes up to a batch of due
    /// notifications and sends each through its next channel.
    pub async fn send_notifications(&self, now: DateTime<Utc>) -> anyhow::Result<SendReport> {
        let notifier = &self.notifier;
        let claimed = self
            .store
            .claim_notifications(&notifier.worker, now, now + notifier.lease, notifier.batch)
            .await?;
        let mut report = SendReport {
            claimed: claimed.len() as u32,
            ..SendReport::default()
        };
        let turns = futures_util::future::join_all(
            claimed
                .iter()
                .map(|notification| self.deliver(notification, now)),
        )
        .await;
        for turn in turns {
            match turn {
                Turn::Settled(NotificationState::Sent) => report.sent += 1,
                Turn::Settled(NotificationState::InApp) => report.in_app += 1,
                Turn::Settled(NotificationState::Failed) => report.failed += 1,
                Turn::Settled(NotificationState::Unconfirmed) => report.unconfirmed += 1,
                Turn::Settled(NotificationState::Pending) | Turn::Interrupted => {}
                Turn::Retrying => report.retrying += 1,
                Turn::Deferred => report.deferred += 1,
            }
        }
        Ok(report)
    }

    /// Records the delivery reports the SMS provider holds; returns how
    /// many matched a sent text.
    // TODO(notifications): the provider hands each report out once, so a
    // replica that stops between pulling and storing them loses those
    // reports; the texts stay counted as sent, not delivered.
    pub async fn record_sms_deliveries(&self, now: DateTime<Utc>) -> anyhow::Result<u32> {
        let Some(sender) = &self.citizen_sign_in.sms else {
            return Ok(0);
        };
        let reports = sender
            .delivery_reports(now)
            .await
            .map_err(|error| anyhow::anyhow!("Failed to read SMS delivery reports: {error}"))?;
        let mut matched = 0;
        for report in reports {
            let known = self
                .store
                .record_delivery(
                    DeliveryChannel::Sms,
                    &report.serial_no,
                    report.delivered,
                    &report.status,
                    report.at,
                )
                .await?;
            matched += u32::from(known);
        }
        Ok(matched)
    }

    async fn deliver(&self, notification: &ClaimedNotification, now: DateTime<Utc>) -> Turn {
        match self.take_turn(notification, now).await {
            Ok(turn) => turn,
            Err(error) => {
                // The lease runs out and another pass takes it up.
                tracing::error!(
                    notification.id = notification.id,
                    error = %format!("{error:#}"),
                    "sending a notification failed"
                );
                Turn::Interrupted
            }
        }
    }

    async fn take_turn(
        &self,
        notification: &ClaimedNotification,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Turn> {
        let notifier = &self.notifier;
        let template = notifier.templates.get(notification.kind);
        let values = self.template_values(notification);
        let mut routes = self.routes(notification, template).await?;

        let quiet = notifier.quiet_hours.and_then(|hours| hours.resumes_at(now));
        let to_citizen = matches!(notification.recipient, Recipient::Citizen(_));
        if let Some(at) = quiet
            && to_citizen
            && !routes.is_empty()
            && !is_urgent(notification, template)
        {
            self.store
                .release_notification(notification.id, &notifier.worker, at)
                .await?;
            return Ok(Turn::Deferred);
        }

        let mut history = notification.attempts.clone();
        let mut just_failed = None;
        loop {
            let channels: Vec<DeliveryChannel> = routes.iter().map(Route::channel).collect();
            let channel = match next_step(&channels, &history, &notifier.retry, just_failed) {
                NextStep::Try(channel) => channel,
                NextStep::Wait(delay) => {
                    let at = now + chrono::Duration::from_std(delay)?;
                    self.store
                        .release_notification(notification.id, &notifier.worker, at)
                        .await?;
                    return Ok(Turn::Retrying);
                }
                NextStep::Settle {
                    state,
                    channel,
                    reason,
                } => {
                    let settlement = Settlement {
                        state,
                        channel,
                        reason,
                        at: now,
                    };
                    self.store
                        .settle_notification(notification.id, &notifier.worker, &settlement)
                        .await?;
                    return Ok(Turn::Settled(state));
                }
            };
            let Some(route) = routes.iter().find(|r| r.channel() == channel) else {
                anyhow::bail!("the chosen channel has no route");
            };

            let grant = match self.prepare(notification, route, now).await? {
                Preparation::Go { grant } => grant,
                Preparation::Drop => {
                    routes.retain(|r| r.channel() != channel);
                    continue;
                }
                Preparation::Defer(at) => {
                    self.store
                        .release_notification(notification.id, &notifier.worker, at)
                        .await?;
                    return Ok(Turn::Deferred);
                }
            };
            let Some(attempt) = self
                .store
                .begin_attempt(notification.id, &notifier.worker, channel, now)
                .await?
            else {
                if let Some(grant) = grant {
                    self.store.restore_subscription_grant(grant).await?;
                }
                return Ok(Turn::Interrupted);
            };

            let called = self
                .call(notification, route, template, &values, attempt, grant, now)
                .await;
            let (outcome, detail, provider_ref) = match called {
                Ok(provider_ref) => (AttemptOutcome::Sent, None, provider_ref),
                Err(error) => {
                    let (outcome, detail) = error.outcome();
                    (outcome, Some(detail.to_owned()), None)
                }
            };
            tracing::info!(
                notification.id = notification.id,
                notification.kind = notification.kind.as_str(),
                notification.channel = channel.as_str(),
                notification.outcome = outcome.as_str(),
                notification.detail = detail.as_deref().unwrap_or(""),
                "notification attempt"
            );
            history.push(PastAttempt {
                channel,
                outcome: Some(outcome),
                detail: detail.clone(),
            });
            let then = match next_step(&channels, &history, &notifier.retry, Some(channel)) {
                NextStep::Try(_) => AfterAttempt::Continue,
                NextStep::Wait(delay) => {
                    AfterAttempt::RetryAt(now + chrono::Duration::from_std(delay)?)
                }
                NextStep::Settle {
                    state,
                    channel,
                    reason,
                } => AfterAttempt::Settle(Settlement {
                    state,
                    channel,
                    reason,
                    at: now,
                }),
            };
            let result = AttemptResult {
                outcome,
                detail,
                provider_ref,
                finished_at: now,
            };
            self.store
                .finish_attempt(attempt, &notifier.worker, &result, &then)
                .await?;
            match then {
                AfterAttempt::Continue => just_failed = Some(channel),
                AfterAttempt::RetryAt(_) => return Ok(Turn::Retrying),
                AfterAttempt::Settle(settlement) => return Ok(Turn::Settled(settlement.state)),
            }
        }
    }

    /// Spends a WeChat grant, or counts a text against its phone's limit.
    async fn prepare(
        &self,
        notification: &ClaimedNotification,
        route: &Route,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Preparation> {
        match route {
            Route::WeChat { template, .. } => {
                let (Recipient::Citizen(citizen), Some(wechat)) =
                    (&notification.recipient, &self.notifier.wechat)
                else {
                    return Ok(Preparation::Drop);
                };
                let grant = self
                    .store
                    .spend_subscription_grant(
                        *citizen,
                        wechat.app_id(),
                        &template.template_id,
                        template.long_term,
                        notification.id,
                        now,
                    )
                    .await?;
                Ok(match grant {
                    Some(grant) => Preparation::Go { grant: Some(grant) },
                    None => Preparation::Drop,
                })
            }
            Route::Sms { phone, .. } => {
                let subject = Subject::new("phone", &self.cipher.blind_index(phone));
                let check = Check::new(Policy::NotifySmsPhone, subject);
                Ok(match self.limits.check(&[check]).await {
                    Ok(()) => Preparation::Go { grant: None },
                    Err(Refusal::Limited { retry_after, .. }) => {
                        Preparation::Defer(now + chrono::Duration::from_std(retry_after)?)
                    }
                    // Without the shared count no text goes out: every
                    // replica's own count would allow too many.
                    Err(Refusal::Unavailable { .. }) => Preparation::Defer(
                        now + chrono::Duration::from_std(self.notifier.retry.first_delay)?,
                    ),
                })
            }
            Route::Webhook { .. } => Ok(Preparation::Go { grant: None }),
        }
    }

    /// One call to the route's channel; the channel's id of the message.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        notification: &ClaimedNotification,
        route: &Route,
        template: &NotificationTemplate,
        values: &TemplateValues,
        attempt: i64,
        grant: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DeliveryError> {
        match route {
            Route::WeChat { openid, template } => {
                self.call_wechat(notification, openid, template, values, grant, now)
                    .await
            }
            Route::Sms {
                phone,
                template: sms,
            } => {
                let Some(sender) = &self.citizen_sign_in.sms else {
                    return Err(DeliveryError::Refused("no SMS provider".to_owned()));
                };
                let params: Vec<String> = sms.params.iter().map(|p| p.render(values)).collect();
                let context = format!("attempt-{attempt}");
                let message = NoticeMessage {
                    phone,
                    template_id: &sms.template_id,
                    params: &params,
                    context: &context,
                    now,
                };
                sender.send_notice(&message).await
            }
            Route::Webhook { url } => {
                let content = format!(
                    "{}\n{}",
                    template.title.render(values),
                    template.text.render(values)
                );
                self.notifier
                    .webhook
                    .send(url, &content)
                    .await
                    .map(|()| None)
            }
        }
    }

    async fn call_wechat(
        &self,
        notification: &ClaimedNotification,
        openid: &str,
        template: &WeChatTemplate,
        values: &TemplateValues,
        grant: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DeliveryError> {
        let Some(wechat) = &self.notifier.wechat else {
            return Err(DeliveryError::Refused(
                "WeChat is not configured".to_owned(),
            ));
        };
        let message = SubscribeMessage {
            openid,
            template_id: &template.template_id,
            page: template.page.render(values),
            data: template.render_data(values),
        };
        let failure = match wechat.send(&message).await {
            Ok(()) => return Ok(None),
            Err(SubscribeError::Unsubscribed) => {
                if let Recipient::Citizen(citizen) = &notification.recipient {
                    let revoked = self
                        .store
                        .revoke_subscription_grants(
                            *citizen,
                            wechat.app_id(),
                            &template.template_id,
                            now,
                        )
                        .await;
                    if let Err(error) = revoked {
                        tracing::error!(error = %format!("{error:#}"), "could not void grants");
                    }
                }
                return Err(DeliveryError::Refused("errcode 43101".to_owned()));
            }
            Err(SubscribeError::Failed(failure)) => failure,
        };
        // WeChat used the grant only if the message may have gone out.
        if let (Some(grant), false) = (grant, matches!(failure, DeliveryError::NoAnswer(_)))
            && let Err(error) = self.store.restore_subscription_grant(grant).await
        {
            tracing::error!(error = %format!("{error:#}"), "could not give a grant back");
        }
        Err(failure)
    }

    /// The ways to reach the recipient, most preferred first.
    async fn routes(
        &self,
        notification: &ClaimedNotification,
        template: &NotificationTemplate,
    ) -> anyhow::Result<Vec<Route>> {
        let citizen = match &notification.recipient {
            Recipient::Unit(unit) => {
                let reference = self.reference();
                let url = self.notifier.webhooks.for_unit(unit, &reference.directory);
                return Ok(url
                    .map(|url| Route::Webhook { url: url.clone() })
                    .into_iter()
                    .collect());
            }
            Recipient::Citizen(citizen) => *citizen,
        };
        let preferences = self.store.notification_preferences(citizen).await?;
        let mut routes = Vec::new();
        if preferences.wechat
            && let (Some(wechat), Some(template)) = (&self.notifier.wechat, &template.wechat)
            && let Some(identity) = self.store.wechat_identity(citizen, wechat.app_id()).await?
        {
            routes.push(Route::WeChat {
                openid: identity.openid,
                template: template.clone(),
            });
        }
        if preferences.sms
            && self
                .citizen_sign_in
                .sms
                .as_ref()
                .is_some_and(|sender| sender.delivers())
            && let Some(template) = &template.sms
            && let Some(phone) = self.phone_of(notification, citizen).await?
        {
            routes.push(Route::Sms {
                phone,
                template: template.clone(),
            });
        }
        Ok(routes)
    }

    /// The citizen's own phone, else the contact phone given with the
    /// complaint (citizens who phoned the hotline have only that).
    async fn phone_of(
        &self,
        notification: &ClaimedNotification,
        citizen: crate::domain::account::AccountId,
    ) -> anyhow::Result<Option<PhoneNumber>> {
        let own = self
            .store
            .citizen(citizen)
            .await?
            .and_then(|record| record.phone_cipher);
        let Some(cipher) = own.or_else(|| notification.contact_phone_cipher.clone()) else {
            return Ok(None);
        };
        match self.cipher.decrypt(&cipher) {
            Ok(phone) => Ok(Some(phone)),
            Err(error) => {
                tracing::warn!(
                    notification.id = notification.id,
                    error = %format!("{error:#}"),
                    "a stored phone could not be read; no text"
                );
                Ok(None)
            }
        }
    }

    /// The placeholders' values: nothing about the citizen but the
    /// complaint's tracking number, status and dates.
    fn template_values(&self, notification: &ClaimedNotification) -> TemplateValues {
        let complaint = &notification.complaint;
        let unit = match &notification.recipient {
            Recipient::Unit(unit) => self
                .reference()
                .directory
                .get(unit)
                .map_or_else(|| unit.clone(), |u| u.name_zh.clone()),
            Recipient::Citizen(_) => String::new(),
        };
        TemplateValues {
            tracking_number: tracking_number(complaint.id, complaint.created_at),
            complaint_id: complaint.id.to_string(),
            status: status_name(notification.event.status).to_owned(),
            deadline: complaint
                .handling
                .deadline
                .map_or_else(|| "—".to_owned(), local_time),
            time: local_time(notification.event.occurred_at),
            unit,
            message: notification.event.message.clone(),
        }
    }
}

/// Urgent templates, and every message about an urgent case, ignore quiet
/// hours.
fn is_urgent(notification: &ClaimedNotification, template: &NotificationTemplate) -> bool {
    template.urgent || notification.complaint.handling.urgency == Some(Urgency::Urgent)
}
