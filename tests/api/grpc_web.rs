//! What a browser or mini-program sends: gRPC-Web over plain HTTP/1.1.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use huying::proto::v1 as pb;
use hyper_util::rt::TokioIo;
use prost::Message;

use crate::helpers::{Engine, TestApp};

const ALLOWED_ORIGIN: &str = "https://wx.pingshan.example";

async fn http1_sender<B>(app: &TestApp) -> hyper::client::conn::http1::SendRequest<B>
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
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
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
