//! Local stand-ins for the outside services citizens sign in through and
//! are notified through: WeChat's code2Session, stable token and
//! subscribe messages, Tencent Cloud SMS, and an enterprise messaging
//! robot's webhook. Each is a real HTTP server on 127.0.0.1:0 that checks
//! what the real one checks (secrets, tokens, required fields, grants,
//! single-use codes, TC3 signatures) and records what it received.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use huying::clock::{Clock, ManualClock};
use huying::security::Secret;
use huying::sms::TencentSmsConfig;
use huying::wechat::WeChatConfig;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::random_name;

pub type Reply = Response<Full<Bytes>>;

/// Serves HTTP/1.1 on 127.0.0.1:0 until dropped.
pub struct Server {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve<F, Fut>(handle: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(handle(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { address, task }
}

fn reply(content_type: &str, body: String) -> Reply {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn query_pairs(query: &str) -> HashMap<String, String> {
    // The values the tests use need no percent-decoding.
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// WeChat's `GET /sns/jscode2session`.
#[derive(Clone)]
pub struct FakeWeChat {
    pub app_id: String,
    secret: String,
    state: Arc<Mutex<WeChatState>>,
    server: Arc<Server>,
}

#[derive(Default)]
struct WeChatState {
    /// Codes wx.login handed out: code → (openid, unionid).
    issued: HashMap<String, (String, Option<String>)>,
    used: HashSet<String>,
    /// errcodes of the exchanges WeChat refused, in order.
    refusals: Vec<i64>,
    exchanges: usize,
    /// Access tokens handed out and whether each is still valid.
    tokens: HashMap<String, bool>,
    token_requests: usize,
    /// Subscribe templates the mini-program may use: id → data keys.
    templates: HashMap<String, Vec<String>>,
    /// Messages each user still accepts per template: (openid, template).
    grants: HashMap<(String, String), u32>,
    long_term: HashSet<(String, String)>,
    /// errcodes to answer the next sends with, before checking anything.
    failing_sends: Vec<i64>,
    messages: Vec<SubscribeMessage>,
    /// errcodes of refused sends, in order.
    send_refusals: Vec<i64>,
}

/// A subscribe message WeChat accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeMessage {
    pub openid: String,
    pub template_id: String,
    pub page: String,
    pub data: std::collections::BTreeMap<String, String>,
}

impl FakeWeChat {
    pub async fn start() -> FakeWeChat {
        let app_id = format!("wx{}", random_name());
        let secret = random_name();
        let state = Arc::new(Mutex::new(WeChatState::default()));
        let (expected_app, expected_secret, shared) =
            (app_id.clone(), secret.clone(), Arc::clone(&state));
        let server = serve(move |request: Request<Incoming>| {
            let (app, secret, shared) = (
                expected_app.clone(),
                expected_secret.clone(),
                Arc::clone(&shared),
            );
            async move {
                let answer = match request.uri().path() {
                    "/cgi-bin/stable_token" | "/cgi-bin/message/subscribe/send" => {
                        wechat_api(request, &app, &secret, &shared).await
                    }
                    _ => code2session(&request, &app, &secret, &shared),
                };
                reply("application/json", answer.to_string())
            }
        })
        .await;
        FakeWeChat {
            app_id,
            secret,
            state,
            server: Arc::new(server),
        }
    }

    /// The server's configuration for this fake.
    pub fn config(&self) -> WeChatConfig {
        WeChatConfig {
            api_base: format!("http://{}", self.server.address),
            app_id: self.app_id.clone(),
            app_secret: Secret::new(self.secret.clone()),
        }
    }

    /// What `wx.login` gives the mini-program of this WeChat user.
    pub fn login(&self, openid: &str, unionid: Option<&str>) -> String {
        let code = format!("code-{}", random_name());
        let identity = (openid.to_owned(), unionid.map(str::to_owned));
        self.state
            .lock()
            .unwrap()
            .issued
            .insert(code.clone(), identity);
        code
    }

    pub fn exchanges(&self) -> usize {
        self.state.lock().unwrap().exchanges
    }

    pub fn refusals(&self) -> Vec<i64> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// A subscribe template approved for the mini-program, with its keys.
    pub fn approve_template(&self, template_id: &str, keys: &[&str]) {
        let keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self.state
            .lock()
            .unwrap()
            .templates
            .insert(template_id.to_owned(), keys);
    }

    /// The user taps "accept" in wx.requestSubscribeMessage: one more
    /// message of the template is allowed (every one, if long-term).
    pub fn subscribe(&self, openid: &str, template_id: &str, long_term: bool) {
        let key = (openid.to_owned(), template_id.to_owned());
        let mut state = self.state.lock().unwrap();
        if long_term {
            state.long_term.insert(key);
        } else {
            *state.grants.entry(key).or_default() += 1;
        }
    }

    /// The user turns the subscription off in the mini-program's settings.
    pub fn unsubscribe(&self, openid: &str, template_id: &str) {
        let key = (openid.to_owned(), template_id.to_owned());
        let mut state = self.state.lock().unwrap();
        state.grants.remove(&key);
        state.long_term.remove(&key);
    }

    /// The next sends are answered with these errcodes (-1: busy).
    pub fn fail_next_sends(&self, errcodes: &[i64]) {
        self.state.lock().unwrap().failing_sends = errcodes.to_vec();
    }

    /// Every token handed out so far stops working, as when one expires.
    pub fn expire_tokens(&self) {
        for valid in self.state.lock().unwrap().tokens.values_mut() {
            *valid = false;
        }
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn messages(&self) -> Vec<SubscribeMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn send_refusals(&self) -> Vec<i64> {
        self.state.lock().unwrap().send_refusals.clone()
    }
}

/// `POST /cgi-bin/stable_token` and `POST /cgi-bin/message/subscribe/send`.
async fn wechat_api(
    request: Request<Incoming>,
    app_id: &str,
    secret: &str,
    state: &Mutex<WeChatState>,
) -> Value {
    let path = request.uri().path().to_owned();
    let query = query_pairs(request.uri().query().unwrap_or(""));
    let post = request.method() == "POST";
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json!({ "errcode": 47001, "errmsg": "data format error" });
    };
    if !post {
        return json!({ "errcode": 43002, "errmsg": "require POST method" });
    }
    let mut state = state.lock().unwrap();
    if path == "/cgi-bin/stable_token" {
        return stable_token(&body, app_id, secret, &mut state);
    }
    let answer = subscribe_send(&query, &body, &mut state);
    let errcode = answer["errcode"].as_i64().unwrap_or(0);
    if errcode != 0 {
        state.send_refusals.push(errcode);
    }
    answer
}

fn stable_token(body: &Value, app_id: &str, secret: &str, state: &mut WeChatState) -> Value {
    state.token_requests += 1;
    if body["grant_type"] != "client_credential" {
        return json!({ "errcode": 40002, "errmsg": "invalid grant_type" });
    }
    if body["appid"] != app_id {
        return json!({ "errcode": 40013, "errmsg": "invalid appid" });
    }
    if body["secret"] != secret {
        return json!({ "errcode": 40125, "errmsg": "invalid appsecret" });
    }
    // The stable endpoint hands out the live token again unless forced.
    let live = state
        .tokens
        .iter()
        .find(|(_, valid)| **valid)
        .map(|(token, _)| token.clone());
    let token = match (live, body["force_refresh"].as_bool().unwrap_or(false)) {
        (Some(token), false) => token,
        _ => {
            let fresh = format!("token-{}", random_name());
            state.tokens.values_mut().for_each(|valid| *valid = false);
            state.tokens.insert(fresh.clone(), true);
            fresh
        }
    };
    json!({ "access_token": token, "expires_in": 7200 })
}

fn subscribe_send(query: &HashMap<String, String>, body: &Value, state: &mut WeChatState) -> Value {
    let refuse = |errcode: i64, errmsg: &str| json!({ "errcode": errcode, "errmsg": errmsg });
    let token = query.get("access_token").map(String::as_str).unwrap_or("");
    if state.tokens.get(token) != Some(&true) {
        return refuse(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    if !state.failing_sends.is_empty() {
        let errcode = state.failing_sends.remove(0);
        return refuse(errcode, "injected by the test");
    }
    let openid = body["touser"].as_str().unwrap_or("");
    let known_user = state.issued.values().any(|(known, _)| known == openid);
    if !known_user {
        return refuse(40003, "invalid openid");
    }
    let template_id = body["template_id"].as_str().unwrap_or("");
    let Some(keys) = state.templates.get(template_id).cloned() else {
        return refuse(40037, "invalid template_id");
    };
    let state_name = body["miniprogram_state"].as_str().unwrap_or("formal");
    let lang = body["lang"].as_str().unwrap_or("zh_CN");
    if !["developer", "trial", "formal"].contains(&state_name)
        || !["zh_CN", "en_US", "zh_HK", "zh_TW"].contains(&lang)
    {
        return refuse(40003, "invalid miniprogram_state or lang");
    }
    let Some(data) = subscribe_data(&body["data"], &keys) else {
        return refuse(47003, "argument invalid! data.value invalid");
    };
    let key = (openid.to_owned(), template_id.to_owned());
    if !state.long_term.contains(&key) {
        match state.grants.get_mut(&key) {
            Some(left) if *left > 0 => *left -= 1,
            _ => return refuse(43101, "user refuse to accept the msg"),
        }
    }
    state.messages.push(SubscribeMessage {
        openid: openid.to_owned(),
        template_id: template_id.to_owned(),
        page: body["page"].as_str().unwrap_or("").to_owned(),
        data,
    });
    json!({ "errcode": 0, "errmsg": "ok", "msgid": state.messages.len() })
}

/// The data object, if it has exactly the template's keys, each with a
/// `value` within its type's limits.
fn subscribe_data(
    data: &Value,
    keys: &[String],
) -> Option<std::collections::BTreeMap<String, String>> {
    let data = data.as_object()?;
    if data.len() != keys.len() {
        return None;
    }
    let mut values = std::collections::BTreeMap::new();
    for key in keys {
        let value = data.get(key)?["value"].as_str()?;
        let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
        let chars = value.chars().count();
        let fits = match kind {
            "thing" => chars <= 20,
            "phrase" => chars <= 5,
            "character_string" => chars <= 32 && value.is_ascii(),
            "time" => chars <= 32 && value.chars().any(|c| c.is_ascii_digit()),
            _ => chars <= 20,
        };
        if value.is_empty() || !fits {
            return None;
        }
        values.insert(key.clone(), value.to_owned());
    }
    Some(values)
}

fn code2session(
    request: &Request<Incoming>,
    app_id: &str,
    secret: &str,
    state: &Mutex<WeChatState>,
) -> Value {
    let mut state = state.lock().unwrap();
    state.exchanges += 1;
    let query = query_pairs(request.uri().query().unwrap_or(""));
    let field = |name: &str| query.get(name).map(String::as_str);

    let refusal = if request.method() != "GET" || request.uri().path() != "/sns/jscode2session" {
        Some((-1, "unknown endpoint"))
    } else if field("appid") != Some(app_id) {
        Some((40013, "invalid appid"))
    } else if field("secret") != Some(secret) {
        Some((40125, "invalid appsecret"))
    } else if field("grant_type") != Some("authorization_code") {
        Some((40002, "invalid grant_type"))
    } else {
        match field("js_code") {
            None | Some("") => Some((41008, "missing code")),
            Some("busy") => Some((-1, "system error")),
            Some("limited") => Some((45011, "api minute-quota reach limit")),
            Some(code) if state.used.contains(code) => Some((40163, "code been used")),
            Some(code) if !state.issued.contains_key(code) => Some((40029, "invalid code")),
            Some(_) => None,
        }
    };
    if let Some((errcode, errmsg)) = refusal {
        state.refusals.push(errcode);
        return json!({ "errcode": errcode, "errmsg": errmsg });
    }

    let code = field("js_code").unwrap().to_owned();
    state.used.insert(code.clone());
    let (openid, unionid) = state.issued[&code].clone();
    let mut answer = json!({ "openid": openid, "session_key": random_name() });
    if let Some(unionid) = unionid {
        answer["unionid"] = json!(unionid);
    }
    answer
}

/// One text message Tencent Cloud accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// As sent: "+86…".
    pub phone: String,
    pub template_id: String,
    /// The template parameters: for sign-in codes, the code then its minutes.
    pub params: Vec<String>,
    pub serial_no: String,
}

/// Tencent Cloud SMS's `SendSms` and `PullSmsSendStatus` (2021-01-11),
/// TC3-HMAC-SHA256 signed.
#[derive(Clone)]
pub struct FakeSms {
    config: TencentSmsConfig,
    state: Arc<Mutex<SmsState>>,
    /// Serves as long as a clone of the fake lives.
    _server: Arc<Server>,
}

#[derive(Default)]
struct SmsState {
    sent: Vec<SentSms>,
    /// Error codes of refused requests, in order.
    refusals: Vec<String>,
    /// Notification templates approved besides the code one: id → params.
    templates: HashMap<String, usize>,
    /// Numbers ("+86…") the carrier refuses, with the code Tencent answers.
    refused_phones: HashMap<String, String>,
    /// Delivery reports not yet pulled.
    reports: Vec<Value>,
    pulls: usize,
}

impl FakeSms {
    /// `clock` is the server's: signed timestamps must be within five
    /// minutes of it, as Tencent Cloud requires of real time.
    pub async fn start(clock: Arc<ManualClock>) -> FakeSms {
        let mut config = TencentSmsConfig {
            endpoint: String::new(),
            region: "ap-guangzhou".to_owned(),
            secret_id: format!("AKID{}", random_name()),
            secret_key: Secret::new(random_name()),
            sdk_app_id: "1400123456".to_owned(),
            sign_name: "坪山呼应".to_owned(),
            template_id: "2045678".to_owned(),
        };
        let state = Arc::new(Mutex::new(SmsState::default()));
        let (expected, shared) = (config.clone(), Arc::clone(&state));
        let server = serve(move |request| {
            let (expected, shared, clock) =
                (expected.clone(), Arc::clone(&shared), Arc::clone(&clock));
            async move {
                let mut response = tencent_api(request, &expected, clock.now(), &shared).await;
                response["RequestId"] = json!(random_name());
                reply(
                    "application/json",
                    json!({ "Response": response }).to_string(),
                )
            }
        })
        .await;
        config.endpoint = format!("http://{}", server.address);
        FakeSms {
            config,
            state,
            _server: Arc::new(server),
        }
    }

    pub fn config(&self) -> TencentSmsConfig {
        self.config.clone()
    }

    pub fn sent(&self) -> Vec<SentSms> {
        self.state.lock().unwrap().sent.clone()
    }

    /// Texts sent with notification templates (not sign-in codes).
    pub fn notices(&self) -> Vec<SentSms> {
        self.sent()
            .into_iter()
            .filter(|sms| sms.template_id != self.config.template_id)
            .collect()
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// A notification template approved with `params` parameters.
    pub fn approve_template(&self, template_id: &str, params: usize) {
        self.state
            .lock()
            .unwrap()
            .templates
            .insert(template_id.to_owned(), params);
    }

    /// Texts to this national number are refused with `code`.
    pub fn refuse_phone(&self, phone: &str, code: &str) {
        self.state
            .lock()
            .unwrap()
            .refused_phones
            .insert(format!("+86{phone}"), code.to_owned());
    }

    /// The carrier reports the text with this serial number delivered (or not).
    pub fn report_delivery(&self, serial_no: &str, delivered: bool) {
        let mut state = self.state.lock().unwrap();
        let sent = state
            .sent
            .iter()
            .find(|sms| sms.serial_no == serial_no)
            .expect("a sent text")
            .clone();
        state.reports.push(json!({
            "UserReceiveTime": "2026-12-03 10:00:05",
            "CountryCode": "86",
            "SubscriberNumber": sent.phone.trim_start_matches("+86"),
            "PhoneNumber": sent.phone,
            "SerialNo": serial_no,
            "ReportStatus": if delivered { "SUCCESS" } else { "FAIL" },
            "Description": if delivered { "用户短信送达成功" } else { "用户关机" },
            "SessionContext": "",
        }));
    }

    pub fn pulls(&self) -> usize {
        self.state.lock().unwrap().pulls
    }

    /// The code in the last message to a national number ("139…").
    pub fn last_code_for(&self, phone: &str) -> String {
        let to = format!("+86{phone}");
        self.sent()
            .into_iter()
            .rev()
            .find(|sms| sms.phone == to && sms.template_id == self.config.template_id)
            .unwrap_or_else(|| panic!("no SMS was sent to {phone}"))
            .params[0]
            .clone()
    }
}

/// Checks and answers one request, as the `Response` object.
async fn tencent_api(
    request: Request<Incoming>,
    expected: &TencentSmsConfig,
    now: DateTime<Utc>,
    shared: &Mutex<SmsState>,
) -> Value {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let checked = check_request(&parts, &body, expected, now);
    let mut state = shared.lock().unwrap();
    let answer = checked.and_then(|action| match action.as_str() {
        "SendSms" => send_sms(&body, expected, &mut state),
        "PullSmsSendStatus" => pull_status(&body, expected, &mut state),
        _ => Err("InvalidAction".to_owned()),
    });
    answer.unwrap_or_else(|code| {
        state.refusals.push(code.clone());
        json!({ "Error": { "Code": code, "Message": "refused by the fake" } })
    })
}

fn send_sms(
    body: &[u8],
    expected: &TencentSmsConfig,
    state: &mut SmsState,
) -> Result<Value, String> {
    let mut sent = send_sms_body(body, expected, &state.templates)?;
    if let Some(code) = state.refused_phones.get(&sent.phone).cloned() {
        state.refusals.push(code.clone());
        return Ok(json!({ "SendStatusSet": [{
            "SerialNo": "", "PhoneNumber": sent.phone, "Fee": 0, "SessionContext": "",
            "Code": code, "Message": "refused by the fake", "IsoCode": "CN"
        }] }));
    }
    sent.serial_no = format!("serial-{}", random_name());
    let answer = json!({ "SendStatusSet": [{
        "SerialNo": sent.serial_no, "PhoneNumber": sent.phone, "Fee": 1,
        "SessionContext": "", "Code": "Ok", "Message": "send success", "IsoCode": "CN"
    }] });
    state.sent.push(sent);
    Ok(answer)
}

/// Hands out the reports not pulled yet, each once.
fn pull_status(
    body: &[u8],
    expected: &TencentSmsConfig,
    state: &mut SmsState,
) -> Result<Value, String> {
    let request: Value = serde_json::from_slice(body).map_err(|_| "InvalidParameter")?;
    if request["SmsSdkAppId"].as_str() != Some(&expected.sdk_app_id) {
        return Err("InvalidParameterValue.SdkAppIdNotExist".into());
    }
    let limit = request["Limit"].as_u64().filter(|l| (1..=100).contains(l));
    let limit = limit.ok_or("InvalidParameterValue.Limit")? as usize;
    state.pulls += 1;
    let count = limit.min(state.reports.len());
    let reports: Vec<Value> = state.reports.drain(..count).collect();
    Ok(json!({ "PullSmsSendStatusSet": reports }))
}

/// Checks the headers and signature; the action asked for.
fn check_request(
    parts: &http::request::Parts,
    body: &[u8],
    expected: &TencentSmsConfig,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    if parts.method != "POST" || parts.uri.path() != "/" {
        return Err("InvalidAction".into());
    }
    if header("content-type").as_deref() != Some("application/json; charset=utf-8") {
        return Err("InvalidParameter.ContentType".into());
    }
    let action = header("x-tc-action").ok_or("MissingParameter.Action")?;
    if header("x-tc-version").as_deref() != Some("2021-01-11") {
        return Err("NoSuchVersion".into());
    }
    if header("x-tc-region").is_none_or(|region| region.is_empty()) {
        return Err("MissingParameter.Region".into());
    }
    let timestamp: i64 = header("x-tc-timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("MissingParameter.Timestamp")?;
    if (timestamp - now.timestamp()).abs() > 300 {
        return Err("AuthFailure.SignatureExpire".into());
    }
    verify_tc3(parts, body, expected, timestamp)?;
    Ok(action)
}

/// An enterprise messaging robot's webhook (WeCom's group robot):
/// `POST /cgi-bin/webhook/send?key=…` with a JSON text message.
#[derive(Clone)]
pub struct FakeRobot {
    key: String,
    state: Arc<Mutex<RobotState>>,
    server: Arc<Server>,
}

#[derive(Default)]
struct RobotState {
    texts: Vec<String>,
    failing: Vec<i64>,
    refusals: Vec<i64>,
}

impl FakeRobot {
    pub async fn start() -> FakeRobot {
        let key = random_name();
        let state = Arc::new(Mutex::new(RobotState::default()));
        let (expected, shared) = (key.clone(), Arc::clone(&state));
        let server = serve(move |request: Request<Incoming>| {
            let (expected, shared) = (expected.clone(), Arc::clone(&shared));
            async move {
                let answer = robot_send(request, &expected, &shared).await;
                reply("application/json", answer.to_string())
            }
        })
        .await;
        FakeRobot {
            key,
            state,
            server: Arc::new(server),
        }
    }

    /// The webhook URL a deployment configures for this robot.
    pub fn url(&self) -> String {
        format!(
            "http://{}/cgi-bin/webhook/send?key={}",
            self.server.address, self.key
        )
    }

    pub fn texts(&self) -> Vec<String> {
        self.state.lock().unwrap().texts.clone()
    }

    pub fn refusals(&self) -> Vec<i64> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// The next posts are answered with these errcodes (45009: too many).
    pub fn fail_next(&self, errcodes: &[i64]) {
        self.state.lock().unwrap().failing = errcodes.to_vec();
    }
}

async fn robot_send(request: Request<Incoming>, key: &str, state: &Mutex<RobotState>) -> Value {
    let query = query_pairs(request.uri().query().unwrap_or(""));
    let path_ok = request.method() == "POST" && request.uri().path() == "/cgi-bin/webhook/send";
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let mut state = state.lock().unwrap();
    let refusal = if !path_ok || query.get("key").map(String::as_str) != Some(key) {
        Some(93000)
    } else if !state.failing.is_empty() {
        Some(state.failing.remove(0))
    } else {
        let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let content = message["text"]["content"].as_str().unwrap_or("");
        if message["msgtype"] != "text" || content.is_empty() || content.len() > 2048 {
            Some(40008)
        } else {
            state.texts.push(content.to_owned());
            None
        }
    };
    match refusal {
        None => json!({ "errcode": 0, "errmsg": "ok" }),
        Some(errcode) => {
            state.refusals.push(errcode);
            json!({ "errcode": errcode, "errmsg": "refused by the fake" })
        }
    }
}

/// Recomputes the TC3-HMAC-SHA256 signature over the request as received.
fn verify_tc3(
    parts: &http::request::Parts,
    body: &[u8],
    expected: &TencentSmsConfig,
    timestamp: i64,
) -> Result<(), String> {
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("AuthFailure.SignatureFailure")?;
    let rest = authorization
        .strip_prefix("TC3-HMAC-SHA256 ")
        .ok_or("AuthFailure.SignatureFailure")?;
    let fields: HashMap<&str, &str> = rest
        .split(", ")
        .filter_map(|field| field.split_once('='))
        .collect();
    let credential = fields
        .get("Credential")
        .ok_or("AuthFailure.SignatureFailure")?;
    let signed_headers = fields
        .get("SignedHeaders")
        .ok_or("AuthFailure.SignatureFailure")?;
    let signature = fields
        .get("Signature")
        .ok_or("AuthFailure.SignatureFailure")?;

    let (secret_id, scope) = credential
        .split_once('/')
        .ok_or("AuthFailure.SignatureFailure")?;
    if secret_id != expected.secret_id {
        return Err("AuthFailure.SecretIdNotFound".into());
    }
    let date = DateTime::from_timestamp(timestamp, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    if scope != format!("{date}/sms/tc3_request") {
        return Err("AuthFailure.SignatureFailure".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"content-type") || !names.contains(&"host") {
        return Err("AuthFailure.SignatureFailure".into());
    }

    let mut canonical_headers = String::new();
    for name in &names {
        let value = parts
            .headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .ok_or("AuthFailure.SignatureFailure")?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim().to_lowercase()));
    }
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        parts.method,
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        hex::encode(Sha256::digest(body)),
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = format!("TC3{}", expected.secret_key.expose());
    let signing_key = [date.as_str(), "sms", "tc3_request"]
        .iter()
        .fold(key.into_bytes(), |key, part| hmac(&key, part.as_bytes()));
    if hex::encode(hmac(&signing_key, string_to_sign.as_bytes())) != *signature {
        return Err("AuthFailure.SignatureFailure".into());
    }
    Ok(())
}

fn send_sms_body(
    body: &[u8],
    expected: &TencentSmsConfig,
    notice_templates: &HashMap<String, usize>,
) -> Result<SentSms, String> {
    let request: Value = serde_json::from_slice(body).map_err(|_| "InvalidParameter")?;
    let text = |name: &str| request[name].as_str().map(str::to_owned);
    let list = |name: &str| -> Option<Vec<String>> {
        request[name]
            .as_array()?
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect()
    };

    let phones = list("PhoneNumberSet").ok_or("MissingParameter.PhoneNumberSet")?;
    if text("SmsSdkAppId").as_deref() != Some(&expected.sdk_app_id) {
        return Err("InvalidParameterValue.SdkAppIdNotExist".into());
    }
    if text("SignName").as_deref() != Some(&expected.sign_name) {
        return Err("FailedOperation.SignatureIncorrectOrUnapproved".into());
    }
    let template_id = text("TemplateId").unwrap_or_default();
    let params = list("TemplateParamSet").ok_or("MissingParameter.TemplateParamSet")?;
    let params_ok = if template_id == expected.template_id {
        let code_ok = params
            .first()
            .is_some_and(|code| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        let minutes_ok = params.get(1).is_some_and(|m| m.parse::<u32>().is_ok());
        params.len() == 2 && code_ok && minutes_ok
    } else {
        let Some(count) = notice_templates.get(&template_id) else {
            return Err("FailedOperation.TemplateIncorrectOrUnapproved".into());
        };
        // Variables of "other" types are limited in length, and none is empty.
        params.len() == *count
            && params
                .iter()
                .all(|p| !p.is_empty() && p.chars().count() <= 32)
    };
    if !params_ok {
        return Err("InvalidParameterValue.TemplateParameterFormatError".into());
    }
    let [phone] = phones.as_slice() else {
        return Err("InvalidParameterValue.IncorrectPhoneNumber".into());
    };
    let national = phone.strip_prefix("+86").unwrap_or("");
    if national.len() != 11 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return Err("InvalidParameterValue.IncorrectPhoneNumber".into());
    }
    Ok(SentSms {
        phone: phone.clone(),
        template_id,
        params,
        serial_no: String::new(),
    })
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

mod hex {
    pub fn encode(bytes: impl AsRef<[u8]>) -> String {
        bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}
