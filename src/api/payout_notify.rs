//! The HTTP endpoint WeChat Pay posts transfer notifications to, served on
//! the gRPC port beside the services. It is not gRPC and carries no bearer
//! token: WeChat Pay's signature over the body is its authentication.
//! Answers follow WeChat Pay's convention: 204 when accepted, 4xx/5xx with
//! `{"code": "FAIL", "message": …}` otherwise (WeChat Pay then retries).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::payout::{NotificationError, SignedHeaders};
use crate::service::Services;
use crate::service::claims::NotificationRejected;

pub const NOTIFY_PATH: &str = "/payout/wechat-pay/notify";

/// Sends requests for the notification path to its handler, and every
/// other request on to the services.
#[derive(Clone)]
pub struct NotifyLayer {
    router: axum::Router,
}

impl NotifyLayer {
    pub fn new(services: Arc<Services>) -> NotifyLayer {
        let router = axum::Router::new()
            .route(NOTIFY_PATH, axum::routing::post(notify))
            .with_state(services);
        NotifyLayer { router }
    }
}

impl<S> tower::Layer<S> for NotifyLayer {
    type Service = Notify<S>;

    fn layer(&self, inner: S) -> Notify<S> {
        Notify {
            inner,
            router: self.router.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Notify<S> {
    inner: S,
    router: axum::Router,
}

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for Notify<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    ReqBody::Error: Into<axum::BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.uri().path() != NOTIFY_PATH {
            let clone = self.inner.clone();
            let mut ready = std::mem::replace(&mut self.inner, clone);
            return Box::pin(ready.call(request));
        }
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = tower::Service::call(&mut router, request.map(axum::body::Body::new))
                .await
                .unwrap_or_else(|never| match never {});
            Ok(response.map(tonic::body::Body::new))
        })
    }
}

async fn notify(
    State(services): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signed = SignedHeaders {
        timestamp: get("wechatpay-timestamp"),
        nonce: get("wechatpay-nonce"),
        signature: get("wechatpay-signature"),
        serial: get("wechatpay-serial"),
    };
    match services.accept_payout_notification(&signed, &body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(rejected) => refusal(rejected),
    }
}

fn refusal(rejected: NotificationRejected) -> Response {
    let status = match &rejected {
        NotificationRejected::Invalid(NotificationError::BadSignature)
        | NotificationRejected::Invalid(NotificationError::Stale) => StatusCode::UNAUTHORIZED,
        NotificationRejected::Invalid(NotificationError::Malformed(_)) => StatusCode::BAD_REQUEST,
        NotificationRejected::NoProvider => StatusCode::NOT_FOUND,
        NotificationRejected::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!(http.status = status.as_u16(), error = %rejected, "payout notification refused");
    let body = serde_json::json!({"code": "FAIL", "message": rejected.to_string()}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}
