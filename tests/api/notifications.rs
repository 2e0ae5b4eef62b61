//! Notifications: the outbox written with each event, the sender on one or
//! two replicas, WeChat subscribe messages, texts, the staff webhook, the
//! inbox, and the rates computed from the attempt records, against the
//! fake WeChat, Tencent Cloud SMS and messaging robot.

use chrono::Duration;
use huying::clock::Clock;
use huying::domain::case::{Assignment, AssignmentStatus};
use huying::domain::complaint::{ComplaintId, ComplaintStatus, EventDraft, EventKind};
use huying::domain::notification::{DeliveryChannel, NotificationKind as Kind};
use huying::proto::v1 as pb;
use tonic::Code;

use crate::citizen_world::{access_token, refusal};
use crate::helpers::{Engine, code_of, get_case, on_both_engines, random_name, redis_url, rid};
use crate::notify_world::{
    MUNICIPAL, NotifyWorld, accept, dispatch, extend, file_without_contact, resolve, sms_template,
    tracking_number, wechat_template,
};

on_both_engines!(
    a_full_life_cycle_notifies_each_node_exactly_once_with_two_senders,
    a_crash_between_commit_and_send_still_sends_after_restart,
    a_failing_channel_falls_back_to_the_next,
    a_permanent_failure_is_recorded_and_not_retried,
    an_unread_inbox_lists_and_marks_notifications,
    the_rates_from_the_attempt_records_match_what_the_fakes_received,
    quiet_hours_hold_citizens_messages_until_morning,
    units_are_reminded_and_urged_through_their_webhook,
    grants_are_checked_and_a_retried_report_adds_nothing,
    texts_wait_for_the_per_phone_limit,
    a_change_that_rolls_back_leaves_no_notification,
    a_long_term_subscription_is_never_spent,
    replicas_share_one_wechat_access_token,
);

/// The template ids of the WeChat messages one user received, in order.
fn wechat_to(world: &NotifyWorld, openid: &str) -> Vec<String> {
    world
        .wechat
        .messages()
        .into_iter()
        .filter(|m| m.openid == openid)
        .map(|m| m.template_id)
        .collect()
}

/// The template ids of the notification texts one number received.
fn texts_to(world: &NotifyWorld, phone: &str) -> Vec<String> {
    let to = format!("+86{phone}");
    world
        .sms
        .notices()
        .into_iter()
        .filter(|sms| sms.phone == to)
        .map(|sms| sms.template_id)
        .collect()
}

async fn a_full_life_cycle_notifies_each_node_exactly_once_with_two_senders(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let replica = world.app.replica().await;
    let mut on_wechat = world.wechat_citizen_with_grants("o-alice").await;
    let mut on_phone = world.phone_citizen_client("13900001111").await;
    let mut dispatcher = world.app.dispatcher().await;
    let mut handler = world.app.handler(MUNICIPAL).await;
    let mut supervisor = world
        .app
        .staff("sup-pingshan", pb::Role::UnitSupervisor, "sd:pingshan")
        .await;

    // Both replicas' senders run at once, twice, after every step.
    let send_on_both = || async {
        for _ in 0..2 {
            let now = world.app.clock.now();
            let (_, other) = tokio::join!(world.send(), replica.send_notifications(now));
            other.unwrap();
        }
    };
    let a = file_without_contact(&mut on_wechat).await;
    let b = file_without_contact(&mut on_phone).await;
    send_on_both().await;
    for id in [&a, &b] {
        accept(&mut dispatcher, id).await;
        send_on_both().await;
        dispatch(&mut dispatcher, id).await;
        send_on_both().await;
        extend(&mut handler, &mut supervisor, id).await;
        send_on_both().await;
        resolve(&mut handler, id).await;
        send_on_both().await;
    }

    let nodes = [
        Kind::Received,
        Kind::Accepted,
        Kind::Dispatched,
        Kind::Extended,
        Kind::Resolved,
    ];
    let expected: Vec<String> = nodes.iter().map(|k| wechat_template(*k)).collect();
    assert_eq!(wechat_to(&world, "o-alice"), expected);
    let expected: Vec<String> = nodes.iter().map(|k| sms_template(*k)).collect();
    assert_eq!(texts_to(&world, "13900001111"), expected);
    assert!(
        world.sms.refusals().is_empty(),
        "{:?}",
        world.sms.refusals()
    );

    // What the WeChat card says: the tracking number, status and page,
    // nothing about the citizen.
    let tracking = tracking_number(&mut on_wechat, &a).await;
    let received = &world.wechat.messages()[0];
    assert_eq!(received.data["character_string1"], tracking);
    assert_eq!(received.data["phrase2"], "已收到");
    assert_eq!(received.page, format!("pages/complaint/detail?id={a}"));
    let accepted_text = world
        .sms
        .notices()
        .into_iter()
        .find(|sms| sms.template_id == sms_template(Kind::Accepted))
        .unwrap();
    assert_eq!(
        accepted_text.params[0],
        tracking_number(&mut on_phone, &b).await
    );
    assert!(accepted_text.params[1].starts_with("2026-12-"));

    // Every notification went out once, through one attempt.
    for (id, channel) in [(&a, "wechat"), (&b, "sms")] {
        let notifications = world.case_notifications(id).await;
        assert_eq!(notifications.len(), nodes.len());
        for n in &notifications {
            assert_eq!(n.state(), pb::NotificationState::Sent, "{n:?}");
            assert_eq!(n.channel, channel);
            assert_eq!(n.attempts.len(), 1, "{n:?}");
            assert_eq!(n.attempts[0].outcome, "sent");
        }
    }
    // The inbox has every node too.
    let inbox = on_wechat
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.notifications.len(), nodes.len());
    assert_eq!(inbox.unread_count, nodes.len() as u64);
    replica.stop().await.unwrap();
}

async fn a_crash_between_commit_and_send_still_sends_after_restart(engine: Engine) {
    let mut world = NotifyWorld::spawn(engine).await;
    let mut citizen = world.wechat_citizen_with_grants("o-bob").await;
    let store = world.app.store();

    // A sender took the first notification and stopped before calling
    // WeChat: nothing goes out while its lease lasts, then another sends it.
    let first = file_without_contact(&mut citizen).await;
    let now = world.app.clock.now();
    let taken = store
        .claim_notifications("crashed-sender", now, now + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(world.send().await.claimed, 0);
    assert!(world.wechat.messages().is_empty());
    world.app.clock.advance(Duration::minutes(6));
    assert_eq!(world.send().await.sent, 1);
    assert_eq!(
        wechat_to(&world, "o-bob"),
        [wechat_template(Kind::Received)]
    );

    // A sender that stopped during its call may have reached WeChat: the
    // notification is not sent again, and says so.
    let mut dispatcher = world.app.dispatcher().await;
    accept(&mut dispatcher, &first).await;
    let now = world.app.clock.now();
    let taken = store
        .claim_notifications("crashed-sender", now, now + Duration::minutes(5), 10)
        .await
        .unwrap();
    store
        .begin_attempt(taken[0].id, "crashed-sender", DeliveryChannel::WeChat, now)
        .await
        .unwrap()
        .expect("the crashed sender held the lease");
    world.app.clock.advance(Duration::minutes(6));
    assert_eq!(world.send().await.unconfirmed, 1);
    assert_eq!(world.wechat.messages().len(), 1);
    let notifications = world.case_notifications(&first).await;
    assert_eq!(notifications[1].state(), pb::NotificationState::Unconfirmed);

    // The event commits; the server stops before any sender runs; the
    // server that starts next sends it.
    world.grant(&mut citizen, "o-bob", &[Kind::Received]).await;
    file_without_contact(&mut citizen).await;
    let stopped = world.world.app.app.take().unwrap();
    stopped.stop().await.unwrap();
    let restarted = world.app.replica().await;
    let report = restarted
        .send_notifications(world.app.clock.now())
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(
        wechat_to(&world, "o-bob"),
        [
            wechat_template(Kind::Received),
            wechat_template(Kind::Received)
        ]
    );
    restarted.stop().await.unwrap();
}

async fn a_failing_channel_falls_back_to_the_next(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let signed_in = world.wechat_citizen("o-carol").await;
    let mut citizen = world
        .app
        .citizen_with_token(&access_token(&signed_in))
        .await;
    let mut dispatcher = world.app.dispatcher().await;
    // The complaint gives a contact phone: texts reach the citizen there.
    let id = citizen
        .file_complaint(crate::helpers::filing(&rid()))
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;

    // No grant for "received": straight to a text, WeChat never asked.
    world.send().await;
    assert_eq!(
        texts_to(&world, "13812345678"),
        [sms_template(Kind::Received)]
    );

    // A grant for "accepted", but the citizen turned the subscription off:
    // WeChat refuses (43101), the grants are void, a text goes instead.
    world
        .grant(&mut citizen, "o-carol", &[Kind::Accepted])
        .await;
    world
        .wechat
        .unsubscribe("o-carol", &wechat_template(Kind::Accepted));
    accept(&mut dispatcher, &id).await;
    world.send().await;
    assert_eq!(world.wechat.send_refusals(), [43101]);
    assert_eq!(texts_to(&world, "13812345678").len(), 2);
    let settings = citizen
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    let accepted = settings
        .subscriptions
        .iter()
        .find(|s| s.template_id == wechat_template(Kind::Accepted))
        .unwrap();
    assert_eq!(accepted.unspent, 0);

    // WeChat busy three times: retried after one, then two minutes, then
    // the text goes.
    world
        .grant(&mut citizen, "o-carol", &[Kind::Dispatched])
        .await;
    world.wechat.fail_next_sends(&[-1, -1, -1]);
    dispatch(&mut dispatcher, &id).await;
    assert_eq!(world.send().await.retrying, 1);
    assert_eq!(world.send().await.claimed, 0, "it waits for its backoff");
    world.app.clock.advance(Duration::seconds(60));
    assert_eq!(world.send().await.retrying, 1);
    world.app.clock.advance(Duration::seconds(120));
    assert_eq!(world.send().await.sent, 1);
    assert_eq!(world.wechat.send_refusals(), [43101, -1, -1, -1]);
    assert!(world.wechat.messages().is_empty());
    assert_eq!(
        texts_to(&world, "13812345678"),
        [
            sms_template(Kind::Received),
            sms_template(Kind::Accepted),
            sms_template(Kind::Dispatched)
        ]
    );
    let notifications = world.case_notifications(&id).await;
    let outcomes: Vec<(String, String)> = notifications[2]
        .attempts
        .iter()
        .map(|a| (a.channel.clone(), a.outcome.clone()))
        .collect();
    let expected = [
        ("wechat", "transient"),
        ("wechat", "transient"),
        ("wechat", "transient"),
        ("sms", "sent"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, o)| ((*c).to_owned(), (*o).to_owned()))
        .collect();
    assert_eq!(outcomes, expected);
    // The grant WeChat never used is still there for the next message.
    let settings = citizen
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    let dispatched = settings
        .subscriptions
        .iter()
        .find(|s| s.template_id == wechat_template(Kind::Dispatched))
        .unwrap();
    assert_eq!(dispatched.unspent, 1);
}

async fn a_permanent_failure_is_recorded_and_not_retried(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let mut citizen = world.phone_citizen_client("13900002222").await;
    world
        .sms
        .refuse_phone("13900002222", "InvalidParameterValue.IncorrectPhoneNumber");
    let id = file_without_contact(&mut citizen).await;

    assert_eq!(world.send().await.failed, 1);
    // The citizen still has it in the inbox.
    let inbox = citizen
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.notifications.len(), 1);
    for _ in 0..3 {
        world.app.clock.advance(Duration::days(1));
        assert_eq!(world.send().await.claimed, 0);
    }
    assert_eq!(
        world.sms.refusals(),
        ["InvalidParameterValue.IncorrectPhoneNumber"]
    );
    let notifications = world.case_notifications(&id).await;
    assert_eq!(notifications.len(), 1);
    let failed = &notifications[0];
    assert_eq!(failed.state(), pb::NotificationState::Failed);
    assert!(
        failed.failure_reason.contains("IncorrectPhoneNumber"),
        "{failed:?}"
    );
    assert_eq!(failed.attempts.len(), 1);
    assert_eq!(failed.attempts[0].outcome, "permanent");
}

async fn an_unread_inbox_lists_and_marks_notifications(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let mut alice = world.app.citizen("alice").await;
    let mut bob = world.app.citizen("bob").await;
    let mut dispatcher = world.app.dispatcher().await;
    let id = file_without_contact(&mut alice).await;
    let case = accept(&mut dispatcher, &id).await;

    // A change that is refused (a stale version) rolls back with no
    // notification.
    let stale = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.clone(),
            expected_version: case.version - 1,
            lead_unit_id: MUNICIPAL.to_owned(),
            co_unit_ids: vec![],
        })
        .await;
    assert_eq!(code_of(stale), Code::Aborted);
    assert_eq!(world.case_notifications(&id).await.len(), 2);

    // Without WeChat or a phone the inbox is the only channel.
    assert_eq!(world.send().await.in_app, 2);
    let tracking = tracking_number(&mut alice, &id).await;
    let list = |page_token: String, unread_only: bool| pb::ListNotificationsRequest {
        page_size: 1,
        page_token,
        unread_only,
    };
    let first = alice
        .list_notifications(list(String::new(), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.unread_count, 2);
    let newest = &first.notifications[0];
    assert_eq!(newest.kind(), pb::NotificationKind::Accepted);
    assert_eq!(newest.title, "诉求已受理");
    assert!(newest.text.contains(&tracking), "{}", newest.text);
    assert!(!newest.read);
    let second = alice
        .list_notifications(list(first.next_page_token.clone(), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.notifications[0].kind(),
        pb::NotificationKind::Received
    );
    assert!(second.next_page_token.is_empty());

    // Bob cannot mark Alice's; Alice marks one, then all.
    let mark = |ids: Vec<String>, all: bool| pb::MarkNotificationsReadRequest {
        notification_ids: ids,
        all,
    };
    let by_bob = bob
        .mark_notifications_read(mark(vec![newest.id.clone()], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_bob.marked, 0);
    let marked = alice
        .mark_notifications_read(mark(vec![newest.id.clone()], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((marked.marked, marked.unread_count), (1, 1));
    let unread = alice
        .list_notifications(pb::ListNotificationsRequest {
            unread_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unread.notifications.len(), 1);
    assert_eq!(
        unread.notifications[0].kind(),
        pb::NotificationKind::Received
    );
    let all = alice
        .mark_notifications_read(mark(vec![], true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.marked, all.unread_count), (1, 0));
    assert!(
        bob.list_notifications(pb::ListNotificationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .notifications
            .is_empty()
    );

    // Bad input names its field and changes nothing.
    let bad = alice
        .mark_notifications_read(mark(vec!["abc".to_owned()], false))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("notification_ids[0]"), "{bad:?}");
    let bad_token = alice
        .list_notifications(list("nonsense".to_owned(), false))
        .await;
    assert_eq!(code_of(bad_token), Code::InvalidArgument);
}

async fn the_rates_from_the_attempt_records_match_what_the_fakes_received(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let start = world.app.clock.now();
    let mut on_wechat = world.wechat_citizen_with_grants("o-dan").await;
    let mut on_phone = world.phone_citizen_client("13900003333").await;
    let mut refused = world.phone_citizen_client("13900004444").await;
    world
        .sms
        .refuse_phone("13900004444", "InvalidParameterValue.IncorrectPhoneNumber");
    let mut in_app = world.app.citizen("erin").await;
    let mut dispatcher = world.app.dispatcher().await;

    let mut ids = Vec::new();
    for citizen in [&mut on_wechat, &mut on_phone, &mut refused, &mut in_app] {
        let id = file_without_contact(citizen).await;
        accept(&mut dispatcher, &id).await;
        ids.push(id);
    }
    dispatch(&mut dispatcher, &ids[0]).await;
    dispatch(&mut dispatcher, &ids[1]).await;
    world.send().await;
    // Half the handling time: the municipal office is reminded of both.
    world.app.clock.advance(Duration::hours(80));
    world.app.supervise().await;
    world.send().await;

    // The carrier reports the phone citizen's texts: all but one arrived.
    let texts: Vec<_> = world
        .sms
        .notices()
        .into_iter()
        .filter(|sms| sms.phone == "+8613900003333")
        .collect();
    for (i, sms) in texts.iter().enumerate() {
        world.sms.report_delivery(&sms.serial_no, i > 0);
    }
    let matched = world
        .server()
        .record_sms_deliveries(world.app.clock.now())
        .await
        .unwrap();
    assert_eq!(matched as usize, texts.len());
    assert_eq!(world.sms.pulls(), 1);

    let rates = world
        .notifications_client(pb::Role::DistrictSupervisor, "centre")
        .await
        .get_notification_rates(pb::GetNotificationRatesRequest {
            since: Some(huying_timestamp(start)),
            until: Some(huying_timestamp(world.app.clock.now() + Duration::hours(1))),
        })
        .await
        .unwrap()
        .into_inner();

    // What the fakes received, by group.
    let wechat = world.wechat.messages();
    let sms = world.sms.notices();
    let acceptance_ids = [Kind::Received, Kind::Accepted];
    let acceptance_received = wechat
        .iter()
        .filter(|m| {
            acceptance_ids
                .iter()
                .any(|k| m.template_id == wechat_template(*k))
        })
        .count()
        + sms
            .iter()
            .filter(|s| {
                acceptance_ids
                    .iter()
                    .any(|k| s.template_id == sms_template(*k))
            })
            .count();
    let acceptance = rates.acceptance.unwrap();
    assert_eq!(acceptance.intended, 8);
    assert_eq!(acceptance.sent as usize, acceptance_received);
    assert_eq!(acceptance.sent, 4, "WeChat and the phone, twice each");
    assert_eq!(acceptance.failed, 2);
    assert_eq!(acceptance.in_app_only, 2);
    assert!((acceptance.sent_rate - 0.5).abs() < 1e-9);
    let handling = rates.handling.unwrap();
    assert_eq!(handling.intended, 2);
    assert_eq!(
        handling.sent as usize,
        wechat.len() + sms.len() - acceptance_received
    );
    let supervision = rates.supervision.unwrap();
    assert_eq!(supervision.intended, 2);
    assert_eq!(supervision.sent as usize, world.robot.texts().len());
    assert_eq!(world.robot.texts().len(), 2);

    // Delivered is kept apart from sent.
    let delivered = texts.len() as u64 - 1;
    assert_eq!(acceptance.delivered + handling.delivered, delivered);
    let channel = |name: &str| {
        rates
            .channels
            .iter()
            .find(|c| c.channel == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(channel("wechat").sent as usize, wechat.len());
    assert_eq!(channel("sms").sent as usize, sms.len());
    assert_eq!(channel("sms").delivered, delivered);
    assert_eq!(channel("sms").permanent_failures, 2);
    assert_eq!(channel("webhook").sent, 2);

    // Auditors read them too; citizens and handlers do not.
    let for_handler = world
        .notifications_client(pb::Role::Handler, MUNICIPAL)
        .await
        .get_notification_rates(pb::GetNotificationRatesRequest::default())
        .await;
    assert_eq!(code_of(for_handler), Code::PermissionDenied);
    let missing = world
        .notifications_client(pb::Role::Auditor, "centre")
        .await
        .get_notification_rates(pb::GetNotificationRatesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().contains("since"), "{missing:?}");
}

fn huying_timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

async fn quiet_hours_hold_citizens_messages_until_morning(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    // 23:30 in Shenzhen.
    world.app.clock.advance(Duration::minutes(13 * 60 + 30));
    let mut citizen = world.wechat_citizen_with_grants("o-fay").await;
    let first_id = file_without_contact(&mut citizen).await;

    assert_eq!(world.send().await.deferred, 1);
    assert!(world.wechat.messages().is_empty());
    // The inbox has it at once; only the push waits.
    let inbox = citizen
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.unread_count, 1);

    // An urgent case (a hazardous sanitation facility) does not wait: once
    // accepted as urgent, its messages go out at night.
    world.grant(&mut citizen, "o-fay", &[Kind::Received]).await;
    let mut request = crate::helpers::filing(&rid());
    request.contact_phone.clear();
    request.category_code = "010506".to_owned();
    let urgent = citizen
        .file_complaint(request)
        .await
        .unwrap()
        .into_inner()
        .complaint
        .unwrap()
        .id;
    let mut dispatcher = world.app.dispatcher().await;
    accept(&mut dispatcher, &urgent).await;
    let report = world.send().await;
    assert_eq!((report.claimed, report.sent), (2, 2), "{report:?}");
    let mut at_night = wechat_to(&world, "o-fay");
    at_night.sort();
    let mut expected = [
        wechat_template(Kind::Received),
        wechat_template(Kind::Accepted),
    ];
    expected.sort();
    assert_eq!(at_night, expected);

    world.app.clock.advance(Duration::hours(8));
    assert_eq!(world.send().await.claimed, 0, "07:30 is still quiet");
    world.app.clock.advance(Duration::minutes(30));
    assert_eq!(world.send().await.sent, 1);
    assert_eq!(wechat_to(&world, "o-fay").len(), 3);
    let morning = world.wechat.messages().pop().unwrap();
    assert_eq!(morning.template_id, wechat_template(Kind::Received));
    assert!(
        morning.page.ends_with(&format!("id={first_id}")),
        "{morning:?}"
    );
}

async fn units_are_reminded_and_urged_through_their_webhook(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let mut citizen = world.app.citizen("gus").await;
    let mut dispatcher = world.app.dispatcher().await;
    let id = file_without_contact(&mut citizen).await;
    accept(&mut dispatcher, &id).await;
    dispatch(&mut dispatcher, &id).await;
    let tracking = tracking_number(&mut citizen, &id).await;
    world.send().await;
    assert!(
        world.robot.texts().is_empty(),
        "citizens' nodes stay off it"
    );

    // Half the handling time: a reminder. The robot is over its per-minute
    // limit once, so it is tried again a minute later.
    world.app.clock.advance(Duration::hours(80));
    world.app.supervise().await;
    world.robot.fail_next(&[45009]);
    assert_eq!(world.send().await.retrying, 1);
    assert_eq!(world.robot.refusals(), [45009]);
    world.app.clock.advance(Duration::minutes(1));
    assert_eq!(world.send().await.sent, 1);
    let texts = world.robot.texts();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("办理期限提醒"), "{}", texts[0]);
    assert!(texts[0].contains(&tracking), "{}", texts[0]);
    assert!(
        texts[0].contains("市政服务中心"),
        "the unit's name: {}",
        texts[0]
    );
    assert!(!texts[0].contains("13812345678"));

    // Past the deadline: the overdue mark and the first urging go out too,
    // and the case's timeline in CaseService keeps them.
    world.app.clock.advance(Duration::hours(90));
    world.app.supervise().await;
    world.send().await;
    let texts = world.robot.texts();
    assert!(texts.iter().any(|t| t.contains("【逾期】")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("【督办】")), "{texts:?}");
    let notifications = world.case_notifications(&id).await;
    let to_units: Vec<_> = notifications
        .iter()
        .filter(|n| n.recipient != "citizen")
        .collect();
    assert!(to_units.len() >= 3);
    assert!(
        to_units
            .iter()
            .all(|n| n.state() == pb::NotificationState::Sent)
    );
    let mut dispatcher = world.app.dispatcher().await;
    let case = get_case(&mut dispatcher, &id).await;
    assert!(case.overdue);
    let mut handler = world.app.handler(MUNICIPAL).await;
    let timeline: Vec<pb::EventKind> = handler
        .list_case_events(pb::ListCaseEventsRequest {
            complaint_id: id.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .iter()
        .map(|e| e.event.as_ref().unwrap().kind())
        .collect();
    for kind in [
        pb::EventKind::Reminder,
        pb::EventKind::Overdue,
        pb::EventKind::Escalated,
    ] {
        assert!(timeline.contains(&kind), "{kind:?} in {timeline:?}");
    }
    // Another unit's handler does not see the case's notifications.
    let elsewhere = world
        .notifications_client(pb::Role::Handler, "cm:heping")
        .await
        .list_case_notifications(pb::ListCaseNotificationsRequest {
            complaint_id: id.clone(),
        })
        .await;
    assert_eq!(code_of(elsewhere), Code::NotFound);
}

async fn grants_are_checked_and_a_retried_report_adds_nothing(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let signed_in = world.wechat_citizen("o-hal").await;
    let mut citizen = world
        .app
        .citizen_with_token(&access_token(&signed_in))
        .await;
    let report = |request_id: &str, ids: &[String]| pb::ReportSubscriptionGrantRequest {
        request_id: request_id.to_owned(),
        accepted_template_ids: ids.to_vec(),
    };
    let accepted = wechat_template(Kind::Accepted);

    let unknown = citizen
        .report_subscription_grant(report("req-grant-0001", &["wx-nope".to_owned()]))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("accepted_template_ids[0]"),
        "{unknown:?}"
    );

    for _ in 0..2 {
        citizen
            .report_subscription_grant(report("req-grant-0002", std::slice::from_ref(&accepted)))
            .await
            .unwrap();
    }
    let settings = citizen
        .report_subscription_grant(report("req-grant-0003", std::slice::from_ref(&accepted)))
        .await
        .unwrap()
        .into_inner();
    let balance = settings
        .subscriptions
        .iter()
        .find(|s| s.template_id == accepted)
        .unwrap();
    assert_eq!(balance.unspent, 2, "the retried report added nothing");

    // A citizen without WeChat has nothing to report grants for.
    let mut no_wechat = world.app.citizen("ivy").await;
    let refused = no_wechat
        .report_subscription_grant(report("req-grant-0004", std::slice::from_ref(&accepted)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refusal(&refused).0, "WECHAT_NOT_LINKED");

    // A citizen who turns texts off is told in the inbox only.
    let mut phone = world.phone_citizen_client("13900005555").await;
    let settings = phone
        .update_notification_settings(pb::UpdateNotificationSettingsRequest {
            wechat_enabled: true,
            sms_enabled: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!settings.sms_enabled);
    file_without_contact(&mut phone).await;
    assert_eq!(world.send().await.in_app, 1);
    assert!(world.sms.notices().is_empty());
}

async fn replicas_share_one_wechat_access_token(engine: Engine) {
    // The token is shared through Redis, whichever the database.
    let world = NotifyWorld::spawn_with(engine, |config| {
        config.redis_url = Some(redis_url());
        config.redis_prefix = format!("huying-test:{}:", random_name());
    })
    .await;
    let replica = world.app.replica().await;
    let mut citizen = world.wechat_citizen_with_grants("o-ida").await;
    let mut dispatcher = world.app.dispatcher().await;
    let mut handler = world.app.handler(MUNICIPAL).await;
    let mut supervisor = world
        .app
        .staff("sup-pingshan", pb::Role::UnitSupervisor, "sd:pingshan")
        .await;
    let on_replica = || replica.send_notifications(world.app.clock.now());

    let id = file_without_contact(&mut citizen).await;
    assert_eq!(world.send().await.sent, 1);
    accept(&mut dispatcher, &id).await;
    assert_eq!(on_replica().await.unwrap().sent, 1);
    assert_eq!(
        world.wechat.token_requests(),
        1,
        "the replica used the shared token"
    );

    // WeChat expires the token: the replica that finds out fetches a new
    // one, once, and the other uses it.
    world.wechat.expire_tokens();
    dispatch(&mut dispatcher, &id).await;
    assert_eq!(on_replica().await.unwrap().sent, 1);
    extend(&mut handler, &mut supervisor, &id).await;
    assert_eq!(world.send().await.sent, 1);
    assert_eq!(world.wechat.token_requests(), 2);
    assert_eq!(world.wechat.send_refusals(), [40001]);
    assert_eq!(wechat_to(&world, "o-ida").len(), 4);
    replica.stop().await.unwrap();
}

async fn texts_wait_for_the_per_phone_limit(engine: Engine) {
    let world = NotifyWorld::spawn_with(engine, |config| {
        config.rate_limits.apply("notify.sms_phone=1/1d").unwrap();
    })
    .await;
    let mut citizen = world.phone_citizen_client("13900006666").await;
    let first = file_without_contact(&mut citizen).await;
    let second = file_without_contact(&mut citizen).await;

    let report = world.send().await;
    assert_eq!((report.sent, report.deferred), (1, 1), "{report:?}");
    assert_eq!(texts_to(&world, "13900006666").len(), 1);
    // One is held back, not failed: it waits for the limit to refill.
    let mut states = Vec::new();
    for id in [&first, &second] {
        let notification = world.case_notifications(id).await.remove(0);
        states.push((notification.state(), notification.attempts.len()));
    }
    states.sort_by_key(|(state, _)| *state as i32);
    assert_eq!(
        states,
        [
            (pb::NotificationState::Pending, 0),
            (pb::NotificationState::Sent, 1)
        ]
    );
    assert_eq!(world.send().await.claimed, 0);
}

async fn a_change_that_rolls_back_leaves_no_notification(engine: Engine) {
    let world = NotifyWorld::spawn(engine).await;
    let mut citizen = world.app.citizen("jia").await;
    let mut dispatcher = world.app.dispatcher().await;
    let id = file_without_contact(&mut citizen).await;
    accept(&mut dispatcher, &id).await;
    let store = world.app.store();
    let complaint_id = ComplaintId::parse(&id).unwrap();
    let timeline = store.events_after(complaint_id, 0, 100).await.unwrap();

    // A dispatch whose assignments name the same unit twice: the event and
    // its notification are written, then the assignments' key refuses the
    // second row and the whole change rolls back.
    let now = world.app.clock.now();
    let complaint = store.complaint(complaint_id).await.unwrap().unwrap();
    let event = EventDraft {
        kind: EventKind::Dispatched,
        status: ComplaintStatus::Dispatched,
        message: "已派发至市政服务中心".to_owned(),
        visible_to_citizen: true,
        actor_id: None,
        unit_id: Some(MUNICIPAL.to_owned()),
        occurred_at: now,
    };
    let assignment = Assignment {
        unit_id: MUNICIPAL.to_owned(),
        lead: true,
        status: AssignmentStatus::Assigned,
        note: None,
        assigned_at: now,
        updated_at: now,
    };
    let mut change = complaint.change(ComplaintStatus::Dispatched, event);
    change.assignments = Some(vec![assignment.clone(), assignment.clone()]);
    assert!(store.apply_change(&change).await.is_err());
    let after = store.events_after(complaint_id, 0, 100).await.unwrap();
    assert_eq!(after.len(), timeline.len(), "the event rolled back");
    assert_eq!(world.case_notifications(&id).await.len(), 2);

    // The same change, committed, has its notification, and the sender
    // finds nothing from the rolled-back one.
    change.assignments = Some(vec![assignment]);
    store
        .apply_change(&change)
        .await
        .unwrap()
        .expect("still at the expected version");
    let notifications = world.case_notifications(&id).await;
    let kinds: Vec<_> = notifications.iter().map(|n| n.kind()).collect();
    assert_eq!(
        kinds,
        [
            pb::NotificationKind::Received,
            pb::NotificationKind::Accepted,
            pb::NotificationKind::Dispatched
        ]
    );
    assert_eq!(world.send().await.in_app, 3);
    let inbox = citizen
        .list_notifications(pb::ListNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.notifications.len(), 3);
}

async fn a_long_term_subscription_is_never_spent(engine: Engine) {
    let world = NotifyWorld::spawn_with(engine, |config| {
        let templates = &mut config.notifications.templates;
        for kind in [Kind::Received, Kind::Accepted] {
            let wechat = templates.get_mut(kind).wechat.as_mut().unwrap();
            wechat.long_term = true;
        }
    })
    .await;
    let signed_in = world.wechat_citizen("o-kai").await;
    let mut citizen = world
        .app
        .citizen_with_token(&access_token(&signed_in))
        .await;
    let mut dispatcher = world.app.dispatcher().await;

    // The citizen accepts the long-term subscriptions once.
    let long_term = [
        wechat_template(Kind::Received),
        wechat_template(Kind::Accepted),
    ];
    for template in &long_term {
        world.wechat.subscribe("o-kai", template, true);
    }
    citizen
        .report_subscription_grant(pb::ReportSubscriptionGrantRequest {
            request_id: rid(),
            accepted_template_ids: long_term.to_vec(),
        })
        .await
        .unwrap();

    // Three complaints, each received and accepted: six messages.
    for _ in 0..3 {
        let id = file_without_contact(&mut citizen).await;
        accept(&mut dispatcher, &id).await;
    }
    assert_eq!(world.send().await.sent, 6);
    let received = wechat_to(&world, "o-kai");
    assert_eq!(received.len(), 6);
    assert!(world.wechat.send_refusals().is_empty());
    let settings = citizen
        .get_notification_settings(pb::GetNotificationSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    for template in &long_term {
        let balance = settings
            .subscriptions
            .iter()
            .find(|s| &s.template_id == template)
            .unwrap();
        assert!(balance.long_term, "{balance:?}");
        assert_eq!(balance.unspent, 1, "{balance:?}");
    }
    // A one-time template is not long-term.
    let dispatched = settings
        .subscriptions
        .iter()
        .find(|s| s.template_id == wechat_template(Kind::Dispatched))
        .unwrap();
    assert!(!dispatched.long_term);
}
