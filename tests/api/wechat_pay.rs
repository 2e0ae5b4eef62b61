//! Claiming red envelopes through WeChat Pay's merchant transfer, against
//! the fake WeChat Pay: one payment per envelope whatever fails, times
//! out, is rate limited, expires or crashes, and a ledger that balances.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use huying::clock::{ManualClock, SystemClock};
use huying::config::PayoutConfig;
use huying::proto::v1 as pb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::Code;

use crate::citizen_world::{World, access_token};
use crate::fake_wechat_pay::{self as fake, FakeWeChatPay, HeldOutcome};
use crate::fakes::FakeWeChat;
use crate::helpers::{
    Bearer, CitizenClient, Engine, TestApp, file_one, on_both_engines, redis_url, test_start,
};
use crate::red_envelopes::{accept, assert_ledger_balances, my_envelopes};

on_both_engines!(
    a_claim_returns_the_package_and_the_confirmation_pays_once,
    failures_and_rate_limits_are_retried_under_the_same_bill_number,
    an_unconfirmed_bill_expires_and_the_next_attempt_pays,
    a_timed_out_transfer_that_went_through_is_paid_once,
    notifications_with_bad_signatures_or_stale_timestamps_change_nothing,
);

/// A server paying through the fake, and a WeChat citizen whose
/// complaint was accepted with an envelope.
struct Payday {
    world: World,
    pay: FakeWeChatPay,
    citizen: CitizenClient,
    envelope: pb::RedEnvelope,
}

impl Payday {
    async fn start(engine: Engine) -> Payday {
        Payday::start_with(engine, |_| {}).await
    }

    async fn start_with(
        engine: Engine,
        adjust: impl FnOnce(&mut huying::payout::wechat_pay::WeChatPayConfig),
    ) -> Payday {
        let clock = Arc::new(ManualClock::new(test_start()));
        let pay = FakeWeChatPay::start(clock.clone()).await;
        let world = World::spawn_on_clock(engine, clock, |config| {
            let app_id = config
                .citizen_sign_in
                .wechat
                .as_ref()
                .unwrap()
                .app_id
                .clone();
            let mut wechat_pay = pay.config(&app_id);
            adjust(&mut wechat_pay);
            config.payout = PayoutConfig::WeChatPay(Box::new(wechat_pay));
        })
        .await;
        let session = world.wechat_citizen("openid-alice").await;
        let mut citizen = world.app.citizen_with_token(&access_token(&session)).await;
        let id = file_one(&mut citizen, "req-pay-000001").await;
        accept(&mut world.app.dispatcher().await, &id).await;
        let envelope = my_envelopes(&mut citizen).await.remove(0);
        assert_eq!(envelope.state(), pb::RedEnvelopeState::Granted);
        Payday {
            world,
            pay,
            citizen,
            envelope,
        }
    }

    fn app(&self) -> &TestApp {
        &self.world.app
    }

    fn bill_no(&self, attempt: u32) -> String {
        format!("HYRE{}A{attempt}", self.envelope.id)
    }

    async fn claim(&mut self) -> Result<pb::ClaimRedEnvelopeResponse, tonic::Status> {
        self.citizen
            .claim_red_envelope(pb::ClaimRedEnvelopeRequest {
                envelope_id: self.envelope.id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn state(&mut self) -> pb::RedEnvelopeState {
        let id = self.envelope.id.clone();
        let envelopes = my_envelopes(&mut self.citizen).await;
        envelopes.iter().find(|e| e.id == id).unwrap().state()
    }

    /// A reconciliation pass once the bills have been idle long enough.
    async fn reconcile(&self) -> huying::service::claims::ReconcileReport {
        self.app().clock.advance(chrono::Duration::seconds(31));
        let app = self.app().app.as_ref().unwrap();
        app.reconcile_payouts()
            .await
            .expect("a reconciliation pass")
    }
}

async fn a_claim_returns_the_package_and_the_confirmation_pays_once(engine: Engine) {
    let mut day = Payday::start(engine).await;

    let claim = day.claim().await.expect("claims");
    assert!(!claim.package_info.is_empty());
    assert_eq!(claim.mch_id, fake::MCH_ID);
    assert_eq!(
        claim.envelope.unwrap().state(),
        pb::RedEnvelopeState::Claiming
    );
    // Claiming again while the bill waits hands back the same package.
    let again = day.claim().await.expect("claims again");
    assert_eq!(again.package_info, claim.package_info);
    assert_eq!(day.pay.created(&day.bill_no(1)), 1);
    let bill = day.pay.bill(&day.bill_no(1)).unwrap();
    assert_eq!(bill.openid, "openid-alice");
    assert_eq!(bill.amount_fen, day.envelope.amount_fen);
    assert!(day.pay.refusals().is_empty(), "{:?}", day.pay.refusals());

    day.pay.confirm(&day.bill_no(1));
    assert_eq!(day.reconcile().await.paid, 1);
    assert_eq!(day.reconcile().await.paid, 0, "nothing left open");
    // Sessions expire as the clock moves; sign in again.
    let session = day.world.wechat_citizen("openid-alice").await;
    day.citizen = day.app().citizen_with_token(&access_token(&session)).await;
    let paid = day.claim().await.expect("a paid envelope answers");
    assert!(paid.package_info.is_empty());
    assert_eq!(paid.envelope.unwrap().state(), pb::RedEnvelopeState::Paid);
    assert_eq!(day.pay.created_total(), 1);

    let report = assert_ledger_balances(day.app()).await;
    assert_eq!(report.paid_out_account_fen, day.envelope.amount_fen);
    assert_eq!(report.owed_account_fen, 0);

    // A citizen who never linked WeChat is told where to claim.
    let mut app_user = day.app().citizen("app-user").await;
    let id = file_one(&mut app_user, "req-pay-000002").await;
    accept(&mut day.app().dispatcher().await, &id).await;
    let envelope = my_envelopes(&mut app_user).await.remove(0);
    let status = app_user
        .claim_red_envelope(pb::ClaimRedEnvelopeRequest {
            envelope_id: envelope.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        crate::citizen_world::refusal(&status).0,
        "WECHAT_NOT_LINKED"
    );
    // Nobody else's envelope can be claimed.
    let stranger = app_user
        .claim_red_envelope(pb::ClaimRedEnvelopeRequest {
            envelope_id: day.envelope.id.clone(),
        })
        .await;
    assert_eq!(stranger.unwrap_err().code(), Code::NotFound);
}

async fn failures_and_rate_limits_are_retried_under_the_same_bill_number(engine: Engine) {
    let mut day = Payday::start(engine).await;

    day.pay.fail_next(1);
    let failed = day.claim().await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable);
    assert_eq!(day.pay.created_total(), 0);

    // Rate limited once: backed off and sent again.
    day.pay.rate_limit_next(1);
    let claim = day.claim().await.expect("claims after a failure");
    assert!(!claim.package_info.is_empty());
    assert_eq!(day.pay.created(&day.bill_no(1)), 1);

    // Rate limited for longer than the client backs off.
    day.pay.rate_limit_next(10);
    let limited = day.claim().await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    day.pay.rate_limit_next(0);

    day.pay.confirm(&day.bill_no(1));
    let paid = day.claim().await.expect("claims once confirmed");
    assert_eq!(paid.envelope.unwrap().state(), pb::RedEnvelopeState::Paid);
    assert_eq!(day.pay.created_total(), 1);
    assert_eq!(day.pay.successes(), 1);
    assert_ledger_balances(day.app()).await;
}

async fn an_unconfirmed_bill_expires_and_the_next_attempt_pays(engine: Engine) {
    let mut day = Payday::start(engine).await;
    let first = day.claim().await.expect("claims");

    day.pay.expire_unconfirmed();
    let report = day.reconcile().await;
    assert_eq!(report.closed, 1);
    let session = day.world.wechat_citizen("openid-alice").await;
    day.citizen = day.app().citizen_with_token(&access_token(&session)).await;
    assert_eq!(day.state().await, pb::RedEnvelopeState::Granted);

    let second = day.claim().await.expect("claims again");
    assert_ne!(second.package_info, first.package_info);
    assert_eq!(day.pay.created(&day.bill_no(2)), 1);
    day.pay.confirm(&day.bill_no(2));
    assert_eq!(day.reconcile().await.paid, 1);
    assert_eq!(day.pay.successes(), 1);
    let report = assert_ledger_balances(day.app()).await;
    assert_eq!(report.paid_out_account_fen, day.envelope.amount_fen);
}

async fn a_timed_out_transfer_that_went_through_is_paid_once(engine: Engine) {
    let mut day = Payday::start_with(engine, |config| {
        config.request_timeout = Duration::from_millis(500);
    })
    .await;

    // WeChat Pay takes the transfer, but answers too late.
    day.pay.hold_transfers(HeldOutcome::Succeed);
    let timed_out = day.claim().await.unwrap_err();
    assert_eq!(timed_out.code(), Code::Unavailable);
    wait_for("the held request", || day.pay.held_arrivals() == 1).await;
    day.pay.release_holds();
    wait_for("the transfer", || day.pay.created(&day.bill_no(1)) == 1).await;

    // The next claim asks before sending anything: it finds the payment.
    let claim = day.claim().await.expect("claims again");
    assert_eq!(claim.envelope.unwrap().state(), pb::RedEnvelopeState::Paid);
    assert!(claim.package_info.is_empty());
    assert_eq!(day.pay.created_total(), 1);
    assert_eq!(day.pay.successes(), 1);
    let report = assert_ledger_balances(day.app()).await;
    assert_eq!(report.paid_out_account_fen, day.envelope.amount_fen);
}

async fn notifications_with_bad_signatures_or_stale_timestamps_change_nothing(engine: Engine) {
    let mut day = Payday::start(engine).await;
    day.claim().await.expect("claims");
    day.pay.confirm(&day.bill_no(1));
    let address = day.app().address;
    let now = day.pay.now_seconds();

    let mut tampered = day.pay.notification(&day.bill_no(1), now);
    tampered.body = tampered.body.replace("MCHTRANSFER", "MCHTRANSFEr");
    assert_eq!(tampered.post(address).await, 401);
    let stale = day.pay.notification(&day.bill_no(1), now - 600);
    assert_eq!(stale.post(address).await, 401);
    let mut foreign = day.pay.notification(&day.bill_no(1), now);
    foreign.headers[3].1 = "PUB_KEY_ID_SOMEONE_ELSE".to_owned();
    assert_eq!(foreign.post(address).await, 401);
    assert_eq!(day.state().await, pb::RedEnvelopeState::Claiming);
    assert_eq!(assert_ledger_balances(day.app()).await.entry_count, 1);

    let genuine = day.pay.notification(&day.bill_no(1), now);
    assert_eq!(genuine.post(address).await, 204);
    assert_eq!(day.state().await, pb::RedEnvelopeState::Paid);
    assert_eq!(genuine.post(address).await, 204, "a repeat is acknowledged");
    let report = assert_ledger_balances(day.app()).await;
    assert_eq!(report.entry_count, 2, "one grant, one payout");
}

/// Waits for something the fake does on its own task (not for time).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

/// Starts the `huying` binary on PostgreSQL, paying through the fake.
async fn start_server(
    database_url: &str,
    wechat: &FakeWeChat,
    pay: &FakeWeChatPay,
) -> (Child, String) {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let wechat_config = wechat.config();
    let data_dir = tempfile::tempdir().unwrap();
    let pay_config = pay.config(&wechat.app_id);
    let mut child = Command::new(env!("CARGO_BIN_EXE_huying"))
        .env("HUYING_LISTEN", "127.0.0.1:0")
        .env("HUYING_DATABASE_URL", database_url)
        .env("HUYING_DATABASE_MAX_CONNECTIONS", "3")
        .env("HUYING_REDIS_URL", redis_url())
        .env(
            "HUYING_REDIS_PREFIX",
            format!("huying-test:{}:", crate::helpers::random_name()),
        )
        .env("HUYING_TOKEN_SECRET", "11".repeat(32))
        .env("HUYING_DATA_KEYS", format!("1:{}", "22".repeat(32)))
        .env("HUYING_DEV_SIGN_IN", "true")
        .env("HUYING_DATA_DIR", data_dir.path())
        .env("HUYING_WECHAT_APP_ID", &wechat_config.app_id)
        .env(
            "HUYING_WECHAT_APP_SECRET",
            wechat_config.app_secret.expose(),
        )
        .env("HUYING_WECHAT_API_BASE", &wechat_config.api_base)
        .env("HUYING_PAYOUT_PROVIDER", "wechat_pay")
        .env("HUYING_WECHAT_PAY_API_BASE", pay.api_base())
        .env("HUYING_WECHAT_PAY_MCH_ID", fake::MCH_ID)
        .env("HUYING_WECHAT_PAY_MERCHANT_SERIAL", fake::MERCHANT_SERIAL)
        .env(
            "HUYING_WECHAT_PAY_MERCHANT_KEY_FILE",
            format!("{keys}/test-merchant-key.pem"),
        )
        .env(
            "HUYING_WECHAT_PAY_PUBLIC_KEY_FILE",
            format!("{keys}/test-wechatpay-platform-public.pem"),
        )
        .env("HUYING_WECHAT_PAY_PUBLIC_KEY_ID", fake::PLATFORM_KEY_ID)
        .env("HUYING_WECHAT_PAY_API_V3_KEY", fake::API_V3_KEY)
        .env("HUYING_WECHAT_PAY_NOTIFY_URL", &pay_config.notify_url)
        .env("HUYING_WECHAT_PAY_TIMEOUT_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Huying is listening on ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens in time");
    tokio::spawn(async move {
        let _keep = data_dir;
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    (child, address)
}

async fn channel(address: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn sign_in(address: &str, credential: pb::sign_in_request::Credential) -> String {
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel(address).await);
    let session = auth
        .sign_in(pb::SignInRequest {
            credential: Some(credential),
        })
        .await
        .expect("signs in")
        .into_inner();
    session.session.unwrap().access_token
}

async fn wechat_citizen_on(address: &str, wechat: &FakeWeChat) -> CitizenClient {
    let code = wechat.login("openid-crash", None);
    let token = sign_in(
        address,
        pb::sign_in_request::Credential::Wechat(pb::WeChatCredential {
            code,
            accepted_privacy_notice_version: crate::citizen_world::NOTICE.to_owned(),
        }),
    )
    .await;
    pb::citizen_service_client::CitizenServiceClient::with_interceptor(
        channel(address).await,
        Bearer::new(&token),
    )
}

async fn staff_token(address: &str, role: pb::Role) -> String {
    let dev = pb::DevCredential {
        subject: format!("{}-1", role.as_str_name()),
        role: role.into(),
        unit_id: "centre".to_owned(),
        display_name: String::new(),
    };
    sign_in(address, pb::sign_in_request::Credential::Dev(dev)).await
}

/// PostgreSQL only: the production engine, two real processes, one
/// killed while WeChat Pay holds its transfer request open.
#[tokio::test]
async fn a_claim_interrupted_by_a_crash_pays_exactly_once() {
    let database_url = crate::helpers::fresh_postgres_database().await;
    let wechat = FakeWeChat::start().await;
    let pay = FakeWeChatPay::start(Arc::new(SystemClock)).await;
    let (mut first, address) = start_server(&database_url, &wechat, &pay).await;

    let mut citizen = wechat_citizen_on(&address, &wechat).await;
    let id = file_one(&mut citizen, "req-crash-00001").await;
    let mut dispatcher = pb::case_service_client::CaseServiceClient::with_interceptor(
        channel(&address).await,
        Bearer::new(&staff_token(&address, pb::Role::Dispatcher).await),
    );
    accept(&mut dispatcher, &id).await;
    let envelope = my_envelopes(&mut citizen).await.remove(0);
    let bill_no = |attempt: u32| format!("HYRE{}A{attempt}", envelope.id);

    // The claim reaches WeChat Pay, which holds it; the server dies.
    pay.hold_transfers(HeldOutcome::WaitForConfirmation);
    let request = pb::ClaimRedEnvelopeRequest {
        envelope_id: envelope.id.clone(),
    };
    let mut doomed = citizen.clone();
    let claim = tokio::spawn(async move { doomed.claim_red_envelope(request).await });
    wait_for("the held request", || pay.held_arrivals() == 1).await;
    first.kill().await.unwrap();
    assert!(
        claim.await.unwrap().is_err(),
        "the client saw the server die"
    );
    // WeChat Pay completes the transfer nobody will hear about.
    pay.release_holds();
    wait_for("the transfer", || pay.created(&bill_no(1)) == 1).await;

    // A new server on the same database: the claim finds the first bill,
    // which cannot be confirmed without its lost package, cancels it, and
    // issues the next attempt.
    let (_second, address) = start_server(&database_url, &wechat, &pay).await;
    let mut citizen = wechat_citizen_on(&address, &wechat).await;
    // The dead server's lease on the bill keeps everyone off it until it
    // lapses (a few seconds with a 1-second WeChat Pay timeout): until then
    // the claim is told to come back, as the mini-program would be.
    let claim = loop {
        let answer = citizen
            .claim_red_envelope(pb::ClaimRedEnvelopeRequest {
                envelope_id: envelope.id.clone(),
            })
            .await;
        match answer {
            Ok(claim) => break claim.into_inner(),
            Err(status) if status.code() == Code::Unavailable => {
                assert_eq!(
                    pay.created(&bill_no(2)),
                    0,
                    "no new attempt under the lease"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => panic!("claims after the restart: {status:?}"),
        }
    };
    assert!(!claim.package_info.is_empty());
    assert_eq!(pay.bill(&bill_no(1)).unwrap().state, "CANCELLED");
    assert_eq!(pay.created(&bill_no(2)), 1);

    pay.confirm(&bill_no(2));
    let paid = citizen
        .claim_red_envelope(pb::ClaimRedEnvelopeRequest {
            envelope_id: envelope.id.clone(),
        })
        .await
        .expect("claims once confirmed")
        .into_inner();
    assert_eq!(paid.envelope.unwrap().state(), pb::RedEnvelopeState::Paid);
    assert_eq!(pay.successes(), 1, "paid exactly once");
    assert_eq!(pay.created(&bill_no(1)) + pay.created(&bill_no(2)), 2);
    assert!(pay.refusals().is_empty(), "{:?}", pay.refusals());

    let mut auditor = pb::reward_service_client::RewardServiceClient::with_interceptor(
        channel(&address).await,
        Bearer::new(&staff_token(&address, pb::Role::Auditor).await),
    );
    let report = auditor
        .get_reconciliation_report(pb::GetReconciliationReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(report.balanced, "{report:#?}");
    assert_eq!(report.paid_out_account_fen, envelope.amount_fen);
}
