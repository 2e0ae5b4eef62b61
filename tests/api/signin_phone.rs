//! Citizens sign in from the apps with a phone number and a one-time code
//! texted through (a fake) Tencent Cloud SMS.

use std::time::Duration;

use chrono::Duration as Elapsed;
use tonic::Code;
use tonic_types::StatusExt;

use crate::citizen_world::{NOTICE, World, access_token, account_id, refusal};
use crate::helpers::{Engine, on_both_engines};

on_both_engines!(
    an_sms_code_signs_a_citizen_in_once,
    five_wrong_codes_kill_the_code,
    an_expired_code_is_refused,
    a_refused_privacy_notice_leaves_the_code_usable
);

const PHONE: &str = "13900000001";

/// Another code than `code`, of the same shape.
fn other_than(code: &str) -> String {
    let number: u32 = code.parse().unwrap();
    format!("{:06}", (number + 1) % 1_000_000)
}

async fn an_sms_code_signs_a_citizen_in_once(engine: Engine) {
    let world = World::spawn(engine).await;

    let requested = world.request_code("+86 139 0000 0001").await.unwrap();
    let sent = world.sms.sent();
    let code = world.sms.last_code_for(PHONE);
    let signed_in = world.sign_in_phone(PHONE, &code, NOTICE).await.unwrap();
    let used_twice = world.sign_in_phone(PHONE, &code, NOTICE).await.unwrap_err();

    let expires_at = requested.code_expires_at.unwrap();
    assert_eq!(
        expires_at.seconds,
        (world.now() + Elapsed::minutes(5)).timestamp()
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone, "+8613900000001");
    assert_eq!(sent[0].params, [code.clone(), "5".to_owned()]);
    assert!(
        world.sms.refusals().is_empty(),
        "{:?}",
        world.sms.refusals()
    );
    assert_eq!(used_twice.code(), Code::Unauthenticated, "{used_twice:?}");

    let identity = world.identity(&access_token(&signed_in)).await;
    assert_eq!(identity.phone_masked, "139****0001");
    assert!(!identity.wechat_linked);
    // A new code signs the same citizen in again.
    world.app.clock.advance(Elapsed::minutes(1));
    let again = world.phone_citizen(PHONE).await;
    assert_eq!(account_id(&again), account_id(&signed_in));
}

async fn five_wrong_codes_kill_the_code(engine: Engine) {
    let world = World::spawn(engine).await;
    world.request_code(PHONE).await.unwrap();
    let code = world.sms.last_code_for(PHONE);
    let wrong = other_than(&code);

    for left in (1..5).rev() {
        let status = world
            .sign_in_phone(PHONE, &wrong, NOTICE)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status.message().contains(&format!("{left} attempts left")),
            "{status:?}"
        );
    }
    let fifth = world
        .sign_in_phone(PHONE, &wrong, NOTICE)
        .await
        .unwrap_err();
    let right_too_late = world.sign_in_phone(PHONE, &code, NOTICE).await.unwrap_err();

    assert!(fifth.message().contains("request a new one"), "{fifth:?}");
    assert_eq!(right_too_late.code(), Code::Unauthenticated);
    let store = world.app.store();
    let index = world.phone_index(PHONE);
    assert!(store.citizen_by_phone(&index).await.unwrap().is_none());
}

async fn an_expired_code_is_refused(engine: Engine) {
    let world = World::spawn(engine).await;
    world.request_code(PHONE).await.unwrap();
    world.request_code("13900000002").await.unwrap();
    let expiring = world.sms.last_code_for(PHONE);
    let in_time = world.sms.last_code_for("13900000002");

    world.app.clock.advance(Elapsed::seconds(4 * 60 + 59));
    world
        .sign_in_phone("13900000002", &in_time, NOTICE)
        .await
        .expect("a code works until it expires");
    world.app.clock.advance(Elapsed::seconds(1));
    let expired = world
        .sign_in_phone(PHONE, &expiring, NOTICE)
        .await
        .unwrap_err();

    assert_eq!(expired.code(), Code::Unauthenticated, "{expired:?}");
    assert!(
        expired.message().contains("request a new one"),
        "{expired:?}"
    );
}

/// The whole story needs time to pass, which only the in-process limiter
/// takes from the test's clock (Redis counts on its own clock; see
/// `rate_limits.rs` for the same limits there).
#[tokio::test]
async fn sending_is_limited_per_phone_and_per_address() {
    let world = World::spawn_with(Engine::Sqlite, |config| {
        config
            .rate_limits
            .apply("sms.phone=1/1m,sms.phone_daily=3/1d,sms.ip=5/1h")
            .unwrap();
    })
    .await;
    world.request_code(PHONE).await.unwrap();
    let first_code = world.sms.last_code_for(PHONE);

    let too_soon = world.request_code(PHONE).await.unwrap_err();
    assert_eq!(too_soon.code(), Code::ResourceExhausted, "{too_soon:?}");
    let retry = too_soon.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(60)));
    assert_eq!(world.sms.sent().len(), 1, "nothing was texted");

    // A minute later a new code replaces the first.
    world.app.clock.advance(Elapsed::seconds(60));
    world.request_code(PHONE).await.unwrap();
    let replaced = world
        .sign_in_phone(PHONE, &first_code, NOTICE)
        .await
        .unwrap_err();
    assert_eq!(replaced.code(), Code::Unauthenticated);
    world
        .sign_in_phone(PHONE, &world.sms.last_code_for(PHONE), NOTICE)
        .await
        .expect("the new code works");

    // The daily quota (3 here) runs out whatever the pauses.
    world.app.clock.advance(Elapsed::seconds(60));
    world.request_code(PHONE).await.unwrap();
    world.app.clock.advance(Elapsed::seconds(60));
    let daily = world.request_code(PHONE).await.unwrap_err();
    assert_eq!(daily.code(), Code::ResourceExhausted);
    let wait = daily.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(wait > Duration::from_secs(3600), "{wait:?}");

    // Phone limits come first, so the refused requests spent nothing of
    // the address's budget: three so far, two more for fresh phones, and
    // the next is refused.
    world.request_code("13900000008").await.unwrap();
    world.request_code("13900000009").await.unwrap();
    let fresh = world.request_code("13900000010").await.unwrap_err();
    assert_eq!(fresh.code(), Code::ResourceExhausted, "{fresh:?}");
    assert_eq!(world.sms.sent().len(), 5);
}

async fn a_refused_privacy_notice_leaves_the_code_usable(engine: Engine) {
    let world = World::spawn(engine).await;
    world.request_code(PHONE).await.unwrap();
    let code = world.sms.last_code_for(PHONE);

    let refused = world.sign_in_phone(PHONE, &code, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refusal(&refused).0, "PRIVACY_NOTICE_NOT_ACCEPTED");
    let index = world.phone_index(PHONE);
    assert!(
        world
            .app
            .store()
            .citizen_by_phone(&index)
            .await
            .unwrap()
            .is_none()
    );

    let accepted = world.sign_in_phone(PHONE, &code, NOTICE).await.unwrap();
    let identity = world.identity(&access_token(&accepted)).await;
    assert_eq!(identity.privacy_notice_version, NOTICE);
}

#[tokio::test]
async fn bad_phones_and_codes_are_refused_with_their_fields() {
    let world = World::spawn(Engine::Sqlite).await;

    let bad_phone = world.request_code("0755-1234567").await.unwrap_err();
    let both = world
        .sign_in_phone("1390000", "12ab", NOTICE)
        .await
        .unwrap_err();

    assert_eq!(bad_phone.code(), Code::InvalidArgument);
    let fields: Vec<String> = both
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["phone.phone", "phone.code"]);
    assert!(world.sms.sent().is_empty());
}

#[tokio::test]
async fn phones_codes_and_secrets_stay_out_of_the_logs() {
    let logs = crate::privacy::captured_logs();
    let world = World::spawn(Engine::Sqlite).await;
    let phone = "13955501234";

    world.request_code(phone).await.unwrap();
    let code = world.sms.last_code_for(phone);
    world
        .sign_in_phone(phone, &other_than(&code), NOTICE)
        .await
        .unwrap_err();
    let signed_in = world.sign_in_phone(phone, &code, NOTICE).await.unwrap();
    let wechat_code = world
        .wechat
        .login("o-private-openid", Some("u-private-unionid"));
    world.sign_in_wechat(&wechat_code, NOTICE).await.unwrap();

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("sign-in code sent"),
        "the capture works: {logs}"
    );
    assert!(
        logs.contains("139****1234"),
        "the masked number is logged: {logs}"
    );
    let sms_secret = world.sms.config().secret_key;
    let wechat_secret = world.wechat.config().app_secret;
    // Logs are full of digits (latencies): a code counts where it stands
    // alone, as a logged value would.
    assert!(
        !contains_standalone(&logs, &code),
        "the code reached the logs"
    );
    for secret in [
        phone,
        "55501234",
        wechat_code.as_str(),
        "o-private-openid",
        "u-private-unionid",
        sms_secret.expose(),
        wechat_secret.expose(),
        access_token(&signed_in).as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}

/// Whether `digits` occurs in `text` with no digit right before or after.
fn contains_standalone(text: &str, digits: &str) -> bool {
    text.match_indices(digits).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + digits.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[tokio::test]
async fn the_embedded_server_sends_codes_through_the_development_sender() {
    // The embedded default: no provider, codes go to the log.
    let app = crate::helpers::TestApp::spawn(Engine::Sqlite).await;

    let sent = app
        .auth()
        .await
        .request_sms_code(huying::proto::v1::RequestSmsCodeRequest {
            phone: "13900000099".to_owned(),
        })
        .await;

    assert!(sent.is_ok(), "{sent:?}");
}
