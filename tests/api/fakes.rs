//! Local stand-ins for the outside services citizens sign in through:
//! WeChat's code2Session and Tencent Cloud SMS. Each is a real HTTP server
//! on 127.0.0.1:0 that checks what the real one checks (secrets, required
//! fields, single-use codes, TC3 signatures) and records what it received.

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
}

impl FakeWeChat {
    pub async fn start() -> FakeWeChat {
        let app_id = format!("wx{}", random_name());
        let secret = random_name();
        let state = Arc::new(Mutex::new(WeChatState::default()));
        let (expected_app, expected_secret, shared) =
            (app_id.clone(), secret.clone(), Arc::clone(&state));
        let server = serve(move |request| {
            let answer = code2session(&request, &expected_app, &expected_secret, &shared);
            async move { reply("text/plain", answer.to_string()) }
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
    /// The template parameters: the code, then its minutes.
    pub params: Vec<String>,
}

/// Tencent Cloud SMS's `SendSms` (2021-01-11), TC3-HMAC-SHA256 signed.
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
                let answer = send_sms(request, &expected, clock.now()).await;
                let mut state = shared.lock().unwrap();
                let response = match answer {
                    Ok(sent) => {
                        let phone = sent.phone.clone();
                        state.sent.push(sent);
                        json!({ "SendStatusSet": [{
                            "SerialNo": random_name(), "PhoneNumber": phone, "Fee": 1,
                            "SessionContext": "", "Code": "Ok", "Message": "send success",
                            "IsoCode": "CN"
                        }] })
                    }
                    Err(code) => {
                        state.refusals.push(code.clone());
                        json!({ "Error": { "Code": code, "Message": "refused by the fake" } })
                    }
                };
                let mut response = response;
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

    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// The code in the last message to a national number ("139…").
    pub fn last_code_for(&self, phone: &str) -> String {
        let to = format!("+86{phone}");
        self.sent()
            .into_iter()
            .rev()
            .find(|sms| sms.phone == to)
            .unwrap_or_else(|| panic!("no SMS was sent to {phone}"))
            .params[0]
            .clone()
    }
}

/// Checks one SendSms request; the error code Tencent Cloud would answer.
async fn send_sms(
    request: Request<Incoming>,
    expected: &TencentSmsConfig,
    now: DateTime<Utc>,
) -> Result<SentSms, String> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| "InternalError")?
        .to_bytes();
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
    if header("x-tc-action").as_deref() != Some("SendSms") {
        return Err("InvalidAction".into());
    }
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
    verify_tc3(&parts, &body, expected, timestamp)?;
    send_sms_body(&body, expected)
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

fn send_sms_body(body: &[u8], expected: &TencentSmsConfig) -> Result<SentSms, String> {
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
    if text("TemplateId").as_deref() != Some(&expected.template_id) {
        return Err("FailedOperation.TemplateIncorrectOrUnapproved".into());
    }
    let params = list("TemplateParamSet").ok_or("MissingParameter.TemplateParamSet")?;
    let code_ok = params
        .first()
        .is_some_and(|code| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let minutes_ok = params.get(1).is_some_and(|m| m.parse::<u32>().is_ok());
    if params.len() != 2 || !code_ok || !minutes_ok {
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
        params,
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
