//! What a browser or mini-program sends: gRPC-Web over plain HTTP/1.1.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use huying::proto::v1 as pb;
use hyper_util::rt::TokioIo;
use prost::Message;

use crate::helpers::{Engine, TestApp};

const ALLOWED_ORIGIN: &str = "https://wx.pingshan.example";

pub(crate) async fn http1_sender<B>(app: &TestApp) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Splits a gRPC-Web body into (flags, payload) frames.
pub(crate) fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while body.len() >= 5 {
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        frames.push((body[0], body[5..5 + length].to_vec()));
        body = &body[5 + length..];
    }
    assert!(body.is_empty(), "trailing bytes in a gRPC-Web body");
    frames
}

#[tokio::test]
async fn a_grpc_web_call_over_http1_gets_a_valid_answer() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut sender = http1_sender(&app).await;

    // An empty ListCategoriesRequest: flags 0, length 0.
    let request = http::Request::post("/huying.v1.CitizenService/ListCategories")
        .header("host", app.address.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();

    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/grpc-web"),
        "{content_type}"
    );

    let body = response.into_body().collect().await.unwrap().to_bytes();
    let frames = frames(&body);
    let (_, message) = frames
        .iter()
        .find(|(flags, _)| *flags == 0)
        .expect("a data frame");
    let categories = pb::ListCategoriesResponse::decode(message.as_slice()).unwrap();
    assert_eq!(categories.categories.len(), 14);
    assert!(!categories.standard_version.is_empty());

    let (_, trailers) = frames
        .iter()
        .find(|(flags, _)| *flags == 0x80)
        .expect("a trailer frame");
    let trailers = String::from_utf8_lossy(trailers).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn browsers_are_admitted_only_from_allowed_origins() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        config.cors_origins = vec![ALLOWED_ORIGIN.to_owned()];
    })
    .await;

    for (origin, admitted) in [(ALLOWED_ORIGIN, true), ("https://evil.example", false)] {
        let mut sender = http1_sender(&app).await;
        let preflight = http::Request::options("/huying.v1.CitizenService/ListCategories")
            .header("host", app.address.to_string())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(preflight).await.unwrap();
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        if admitted {
            assert_eq!(allowed.as_deref(), Some(origin));
        } else {
            assert_eq!(allowed, None, "{origin} was admitted");
        }
    }
}

/// Reads gRPC-Web frames from a streaming HTTP/1.1 body as they arrive.
struct WebFrames {
    body: hyper::body::Incoming,
    pending: Vec<u8>,
}

impl WebFrames {
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.pending.len() >= 5 {
                let length = u32::from_be_bytes(self.pending[1..5].try_into().unwrap()) as usize;
                if self.pending.len() >= 5 + length {
                    let frame: Vec<u8> = self.pending.drain(..5 + length).collect();
                    return Some((frame[0], frame[5..].to_vec()));
                }
            }
            let frame = self.body.frame().await?.expect("a body frame");
            if let Ok(data) = frame.into_data() {
                self.pending.extend_from_slice(&data);
            }
        }
    }

    async fn next_event(&mut self) -> pb::ComplaintEvent {
        loop {
            let (flags, payload) =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.next())
                    .await
                    .expect("a frame in time")
                    .expect("the stream is open");
            assert_eq!(
                flags,
                0,
                "a message, not trailers: {}",
                String::from_utf8_lossy(&payload)
            );
            let response = pb::WatchComplaintResponse::decode(payload.as_slice()).unwrap();
            if let Some(pb::watch_complaint_response::Item::Event(event)) = response.item {
                return event;
            }
        }
    }
}

async fn open_web_watch(app: &TestApp, token: &str, id: &str) -> WebFrames {
    let mut sender = http1_sender(app).await;
    let message = pb::WatchComplaintRequest {
        complaint_id: id.to_owned(),
        after_sequence: 0,
    }
    .encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let request = http::Request::post("/huying.v1.CitizenService/WatchComplaint")
        .header("host", app.address.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    WebFrames {
        body: response.into_body(),
        pending: Vec::new(),
    }
}

#[tokio::test]
async fn a_grpc_web_stream_over_http1_receives_live_events() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let mut citizen = app.citizen_with_token(&session.access_token).await;
    let id = crate::helpers::file_one(&mut citizen, "req-web-00001").await;

    let mut frames = open_web_watch(&app, &session.access_token, &id).await;
    assert_eq!(frames.next_event().await.kind(), pb::EventKind::Received);

    citizen
        .withdraw_complaint(pb::WithdrawComplaintRequest {
            complaint_id: id,
            reason: String::new(),
        })
        .await
        .unwrap();
    let live = frames.next_event().await;
    assert_eq!((live.sequence, live.kind()), (2, pb::EventKind::Withdrawn));
}

#[tokio::test]
async fn a_grpc_web_stream_ends_cleanly_at_its_time_limit_with_the_resume_position() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| {
        config.streams.web_max_duration = std::time::Duration::ZERO;
    })
    .await;
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let mut citizen = app.citizen_with_token(&session.access_token).await;
    let id = crate::helpers::file_one(&mut citizen, "req-web-00002").await;

    let mut frames = open_web_watch(&app, &session.access_token, &id).await;
    let mut resume_after = None;
    let trailers = loop {
        let (flags, payload) = frames.next().await.expect("frames until the trailers");
        if flags == 0x80 {
            break String::from_utf8_lossy(&payload).to_ascii_lowercase();
        }
        let response = pb::WatchComplaintResponse::decode(payload.as_slice()).unwrap();
        if let Some(pb::watch_complaint_response::Item::Heartbeat(heartbeat)) = response.item {
            resume_after = Some(heartbeat.resume_after_sequence);
        }
    };
    assert!(
        trailers.contains("grpc-status:0"),
        "a clean end: {trailers}"
    );
    assert_eq!(resume_after, Some(1), "the last frame says where to resume");
}
