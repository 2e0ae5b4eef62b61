//! A local WeChat Pay for the merchant transfer API: it checks each
//! request's WECHATPAY2-SHA256-RSA2048 signature with the test merchant's
//! public key (and its timestamp), checks the fields the real one checks,
//! signs every answer with its own key, and keeps the bills. Tests can make
//! it fail, rate-limit, hold a transfer request open, expire unconfirmed
//! bills, confirm a bill as the citizen would, and post notifications.
//! The keys are the test-only PEMs under `tests/keys/`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use huying::clock::Clock;
use huying::payout::wechat_pay::WeChatPayConfig;
use huying::security::Secret;
use hyper::body::Incoming;
use hyper::{Request, Response};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::fakes::{Reply, Server, serve};
use crate::helpers::random_name;

pub const MERCHANT_KEY: &str = include_str!("../keys/test-merchant-key.pem");
const MERCHANT_PUBLIC: &str = include_str!("../keys/test-merchant-public.pem");
const PLATFORM_KEY: &str = include_str!("../keys/test-wechatpay-platform-key.pem");
pub const PLATFORM_PUBLIC: &str = include_str!("../keys/test-wechatpay-platform-public.pem");
pub const MCH_ID: &str = "1900000109";
pub const MERCHANT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const PLATFORM_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
pub const API_V3_KEY: &str = "0123456789abcdefghijABCDEFGHIJ01";
const TRANSFERS: &str = "/v3/fund-app/mch-transfer/transfer-bills";

#[derive(Debug, Clone)]
pub struct FakeBill {
    pub state: String,
    pub amount_fen: i64,
    pub openid: String,
    pub transfer_bill_no: String,
    pub fail_reason: Option<String>,
}

/// What a held transfer turns into once released.
#[derive(Debug, Clone, Copy)]
pub enum HeldOutcome {
    WaitForConfirmation,
    Succeed,
}

#[derive(Default)]
struct State {
    /// The mini-program whose openids the merchant pays.
    app_id: String,
    bills: HashMap<String, FakeBill>,
    /// Bills created per out_bill_no (a repeat of a number creates none).
    created: HashMap<String, usize>,
    /// Requests refused for their signature or fields, with the reason.
    refusals: Vec<String>,
    fail_next: usize,
    rate_limit_next: usize,
    hold: Option<(Arc<Notify>, HeldOutcome)>,
    /// Transfer requests that arrived while a hold was set.
    held_arrivals: usize,
}

#[derive(Clone)]
pub struct FakeWeChatPay {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    server: Arc<Server>,
}

struct Keys {
    merchant: RsaPublicKey,
    platform: RsaPrivateKey,
}

impl FakeWeChatPay {
    pub async fn start(clock: Arc<dyn Clock>) -> FakeWeChatPay {
        let state = Arc::new(Mutex::new(State::default()));
        let keys = Arc::new(Keys {
            merchant: RsaPublicKey::from_public_key_pem(MERCHANT_PUBLIC).unwrap(),
            platform: RsaPrivateKey::from_pkcs8_pem(PLATFORM_KEY).unwrap(),
        });
        let (shared, server_clock) = (Arc::clone(&state), Arc::clone(&clock));
        let server = serve(move |request| {
            let (state, keys, clock) = (
                Arc::clone(&shared),
                Arc::clone(&keys),
                Arc::clone(&server_clock),
            );
            async move { handle(request, &state, &keys, clock.as_ref()).await }
        })
        .await;
        FakeWeChatPay {
            state,
            clock,
            server: Arc::new(server),
        }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// The server's configuration for this fake, paying the openids of
    /// the mini-program `app_id`.
    pub fn config(&self, app_id: &str) -> WeChatPayConfig {
        self.state().app_id = app_id.to_owned();
        WeChatPayConfig {
            api_base: self.api_base(),
            mch_id: MCH_ID.to_owned(),
            app_id: app_id.to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_key_pem: Secret::new(MERCHANT_KEY),
            platform_public_key_pem: PLATFORM_PUBLIC.to_owned(),
            platform_key_id: PLATFORM_KEY_ID.to_owned(),
            api_v3_key: Secret::new(API_V3_KEY),
            notify_url: "https://huying.example.cn/payout/wechat-pay/notify".to_owned(),
            scene_id: "1000".to_owned(),
            activity_name: "民生诉求有奖反映".to_owned(),
            reward_description: "投诉受理立案红包".to_owned(),
            request_timeout: Duration::from_secs(5),
        }
    }

    pub fn created(&self, out_bill_no: &str) -> usize {
        self.state().created.get(out_bill_no).copied().unwrap_or(0)
    }

    pub fn created_total(&self) -> usize {
        self.state().created.values().sum()
    }

    pub fn bill(&self, out_bill_no: &str) -> Option<FakeBill> {
        self.state().bills.get(out_bill_no).cloned()
    }

    /// Bills that paid, over every number.
    pub fn successes(&self) -> usize {
        let state = self.state();
        state
            .bills
            .values()
            .filter(|b| b.state == "SUCCESS")
            .count()
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state().refusals.clone()
    }

    pub fn fail_next(&self, n: usize) {
        self.state().fail_next = n;
    }

    pub fn rate_limit_next(&self, n: usize) {
        self.state().rate_limit_next = n;
    }

    /// Holds the next transfer requests open until `release` is notified;
    /// each then completes with `outcome`.
    pub fn hold_transfers(&self, outcome: HeldOutcome) -> Arc<Notify> {
        let release = Arc::new(Notify::new());
        self.state().hold = Some((Arc::clone(&release), outcome));
        release
    }

    pub fn held_arrivals(&self) -> usize {
        self.state().held_arrivals
    }

    /// Lets every held request complete, and holds no more.
    pub fn release_holds(&self) {
        if let Some((release, _)) = self.state().hold.take() {
            release.notify_waiters();
        }
    }

    /// The citizen confirms the bill in WeChat.
    pub fn confirm(&self, out_bill_no: &str) {
        let mut state = self.state();
        let bill = state.bills.get_mut(out_bill_no).expect("a known bill");
        assert_eq!(
            bill.state, "WAIT_USER_CONFIRM",
            "only a waiting bill is confirmed"
        );
        bill.state = "SUCCESS".to_owned();
    }

    /// A day passes: bills nobody confirmed are closed, the money back.
    pub fn expire_unconfirmed(&self) {
        for bill in self.state().bills.values_mut() {
            if bill.state == "WAIT_USER_CONFIRM" {
                bill.state = "CANCELLED".to_owned();
                bill.fail_reason = Some("TRANSFER_TIMEOUT".to_owned());
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// A notification of the bill's current state, signed at `signed_at`
    /// (seconds since the epoch), as WeChat Pay would post it.
    pub fn notification(&self, out_bill_no: &str, signed_at: i64) -> SignedNotification {
        let bill = self.bill(out_bill_no).expect("a known bill");
        let resource = json!({
            "out_bill_no": out_bill_no,
            "transfer_bill_no": bill.transfer_bill_no,
            "state": bill.state,
            "mch_id": MCH_ID,
            "transfer_amount": bill.amount_fen,
            "openid": bill.openid,
        })
        .to_string();
        let nonce = random_name()[..12].to_owned();
        let associated = "mch_payment".to_owned();
        let key: [u8; 32] = API_V3_KEY.as_bytes().try_into().unwrap();
        let nonce_bytes: [u8; 12] = nonce.as_bytes().try_into().unwrap();
        let ciphertext = Aes256Gcm::new(&key.into())
            .encrypt(
                &Nonce::<Aes256Gcm>::from(nonce_bytes),
                Payload {
                    msg: resource.as_bytes(),
                    aad: associated.as_bytes(),
                },
            )
            .unwrap();
        let body = json!({
            "id": format!("EV-{}", random_name()),
            "create_time": "2026-12-03T10:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": B64.encode(ciphertext),
                "associated_data": associated,
                "nonce": nonce,
            }
        })
        .to_string();
        let platform = RsaPrivateKey::from_pkcs8_pem(PLATFORM_KEY).unwrap();
        let headers = sign_answer(&platform, signed_at, body.as_bytes());
        SignedNotification { headers, body }
    }

    pub fn now_seconds(&self) -> i64 {
        self.clock.now().timestamp()
    }
}

/// A notification ready to post.
#[derive(Debug, Clone)]
pub struct SignedNotification {
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl SignedNotification {
    /// Posts it to a server's endpoint and returns the HTTP status.
    pub async fn post(&self, address: std::net::SocketAddr) -> u16 {
        let client = reqwest::Client::new();
        let mut request = client
            .post(format!("http://{address}/payout/wechat-pay/notify"))
            .header("content-type", "application/json")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request
            .send()
            .await
            .expect("the server answers")
            .status()
            .as_u16()
    }
}

fn sign_answer(key: &RsaPrivateKey, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let nonce = random_name();
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    let signature = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&message))
        .unwrap();
    vec![
        ("wechatpay-timestamp", timestamp.to_string()),
        ("wechatpay-nonce", nonce),
        ("wechatpay-signature", B64.encode(signature)),
        ("wechatpay-serial", PLATFORM_KEY_ID.to_owned()),
    ]
}

fn answer(keys: &Keys, clock: &dyn Clock, status: u16, body: Value) -> Reply {
    let body = body.to_string();
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in sign_answer(&keys.platform, clock.now().timestamp(), body.as_bytes()) {
        response = response.header(name, value);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

fn error(keys: &Keys, clock: &dyn Clock, status: u16, code: &str, message: &str) -> Reply {
    answer(
        keys,
        clock,
        status,
        json!({"code": code, "message": message}),
    )
}

async fn handle(
    request: Request<Incoming>,
    state: &Arc<Mutex<State>>,
    keys: &Keys,
    clock: &dyn Clock,
) -> Reply {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let request = Request::from_parts(parts, ());

    let checked = check_signature(&request, &body, keys, clock);
    if let Err(reason) = checked {
        state.lock().unwrap().refusals.push(reason.clone());
        return error(keys, clock, 401, "SIGN_ERROR", &reason);
    }
    {
        let mut state = state.lock().unwrap();
        if state.rate_limit_next > 0 {
            state.rate_limit_next -= 1;
            return error(keys, clock, 429, "FREQUENCY_LIMITED", "too many requests");
        }
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return error(keys, clock, 500, "SYSTEM_ERROR", "system busy");
        }
    }

    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    if method == "POST" && path == TRANSFERS {
        let app_id = state.lock().unwrap().app_id.clone();
        return create(state, keys, &app_id, clock, &body).await;
    }
    let Some(rest) = path.strip_prefix(&format!("{TRANSFERS}/out-bill-no/")) else {
        return error(keys, clock, 404, "NOT_FOUND", "no such endpoint");
    };
    match (method.as_str(), rest.strip_suffix("/cancel")) {
        ("GET", None) => query(state, keys, clock, rest),
        ("POST", Some(number)) => cancel(state, keys, clock, number),
        _ => error(keys, clock, 404, "NOT_FOUND", "no such endpoint"),
    }
}

/// Checks the Authorization header as WeChat Pay does; the reason if not.
fn check_signature(
    head: &Request<()>,
    body: &[u8],
    keys: &Keys,
    clock: &dyn Clock,
) -> Result<(), String> {
    let header = head
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields = header
        .strip_prefix("WECHATPAY2-SHA256-RSA2048 ")
        .ok_or("wrong scheme")?;
    let fields: HashMap<&str, &str> = fields
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    if fields.get("mchid") != Some(&MCH_ID) || fields.get("serial_no") != Some(&MERCHANT_SERIAL) {
        return Err("unknown merchant or serial".to_owned());
    }
    let timestamp: i64 = fields
        .get("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("bad timestamp")?;
    if (clock.now().timestamp() - timestamp).abs() > 300 {
        return Err("stale timestamp".to_owned());
    }
    let path = head
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("");
    let nonce = fields.get("nonce_str").ok_or("no nonce")?;
    let mut message = format!("{}\n{path}\n{timestamp}\n{nonce}\n", head.method()).into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    let signature = B64
        .decode(fields.get("signature").ok_or("no signature")?)
        .map_err(|_| "signature not base64")?;
    keys.merchant
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&message),
            &signature,
        )
        .map_err(|_| "signature does not verify".to_owned())
}

/// The fields the real API insists on for scene 1000 (现金营销).
fn check_transfer(body: &Value, app_id: &str) -> Result<(), String> {
    let text = |name: &str| body[name].as_str().unwrap_or("");
    if text("appid") != app_id {
        return Err("appid".to_owned());
    }
    let number = text("out_bill_no");
    if number.is_empty() || number.len() > 32 || !number.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err("out_bill_no".to_owned());
    }
    if text("transfer_scene_id") != "1000" || text("openid").is_empty() {
        return Err("scene or openid".to_owned());
    }
    if !(1..=20_000).contains(&body["transfer_amount"].as_i64().unwrap_or(0)) {
        return Err("transfer_amount".to_owned());
    }
    let remark = text("transfer_remark");
    if remark.is_empty() || remark.chars().count() > 32 {
        return Err("transfer_remark".to_owned());
    }
    let reports: Vec<&str> = body["transfer_scene_report_infos"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter_map(|i| i["info_type"].as_str())
                .collect()
        })
        .unwrap_or_default();
    if reports != ["活动名称", "奖励说明"] {
        return Err("transfer_scene_report_infos".to_owned());
    }
    if text("notify_url").is_empty() {
        return Err("notify_url".to_owned());
    }
    Ok(())
}

async fn create(
    state: &Arc<Mutex<State>>,
    keys: &Keys,
    app_id: &str,
    clock: &dyn Clock,
    body: &[u8],
) -> Reply {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Err(field) = check_transfer(&body, app_id) {
        state
            .lock()
            .unwrap()
            .refusals
            .push(format!("field {field}"));
        return error(keys, clock, 400, "PARAM_ERROR", &field);
    }

    // A held request waits here, and completes even if its caller is gone.
    let hold = {
        let mut state = state.lock().unwrap();
        let hold = state.hold.clone();
        if hold.is_some() {
            state.held_arrivals += 1;
        }
        hold
    };
    let Some((release, outcome)) = hold else {
        let bill = make_bill(state, &body, HeldOutcome::WaitForConfirmation);
        return created_answer(keys, clock, &body, bill);
    };
    // The bill is made on its own task: a caller that hangs up (or dies)
    // while held does not stop WeChat Pay from completing the transfer.
    let notified = release.notified_owned();
    let (state, held_body) = (Arc::clone(state), body.clone());
    let made = tokio::spawn(async move {
        notified.await;
        make_bill(&state, &held_body, outcome)
    });
    let bill = made.await.unwrap();
    created_answer(keys, clock, &body, bill)
}

fn make_bill(state: &Mutex<State>, body: &Value, outcome: HeldOutcome) -> FakeBill {
    let number = body["out_bill_no"].as_str().unwrap().to_owned();
    let mut state = state.lock().unwrap();
    if !state.bills.contains_key(&number) {
        *state.created.entry(number.clone()).or_default() += 1;
        let bill = FakeBill {
            state: match outcome {
                HeldOutcome::WaitForConfirmation => "WAIT_USER_CONFIRM",
                HeldOutcome::Succeed => "SUCCESS",
            }
            .to_owned(),
            amount_fen: body["transfer_amount"].as_i64().unwrap(),
            openid: body["openid"].as_str().unwrap().to_owned(),
            transfer_bill_no: format!("1330000{}", random_name()),
            fail_reason: None,
        };
        state.bills.insert(number.clone(), bill);
    }
    state.bills[&number].clone()
}

fn created_answer(keys: &Keys, clock: &dyn Clock, body: &Value, bill: FakeBill) -> Reply {
    let number = body["out_bill_no"].as_str().unwrap();
    answer(
        keys,
        clock,
        200,
        json!({
            "out_bill_no": number,
            "transfer_bill_no": bill.transfer_bill_no,
            "create_time": "2026-12-03T10:00:00+08:00",
            "state": bill.state,
            "package_info": format!("affffddafdfafddffda=={number}"),
        }),
    )
}

fn query(state: &Mutex<State>, keys: &Keys, clock: &dyn Clock, number: &str) -> Reply {
    let state = state.lock().unwrap();
    let Some(bill) = state.bills.get(number) else {
        return error(keys, clock, 404, "NOT_FOUND", "no such bill");
    };
    let mut body = json!({
        "mch_id": MCH_ID,
        "out_bill_no": number,
        "transfer_bill_no": bill.transfer_bill_no,
        "state": bill.state,
        "transfer_amount": bill.amount_fen,
        "openid": bill.openid,
    });
    if let Some(reason) = &bill.fail_reason {
        body["fail_reason"] = json!(reason);
    }
    answer(keys, clock, 200, body)
}

fn cancel(state: &Mutex<State>, keys: &Keys, clock: &dyn Clock, number: &str) -> Reply {
    let mut state = state.lock().unwrap();
    let Some(bill) = state.bills.get_mut(number) else {
        return error(keys, clock, 404, "NOT_FOUND", "no such bill");
    };
    if !matches!(
        bill.state.as_str(),
        "WAIT_USER_CONFIRM" | "ACCEPTED" | "PROCESSING"
    ) {
        return error(
            keys,
            clock,
            400,
            "INVALID_REQUEST",
            "the bill cannot be cancelled",
        );
    }
    bill.state = "CANCELLED".to_owned();
    answer(
        keys,
        clock,
        200,
        json!({
            "out_bill_no": number,
            "transfer_bill_no": bill.transfer_bill_no,
            "state": "CANCELLED",
            "update_time": "2026-12-03T10:00:00+08:00",
        }),
    )
}
