//! Learns who is calling, as far as limits care, before any handler runs:
//! the client's address (from the connection, or from `X-Forwarded-For`
//! when the connection comes from a trusted proxy) and the app's device id.
//! Works alike for gRPC and gRPC-Web, which arrive on the same connections.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use crate::domain::DomainError;
use crate::domain::client::{ClientContext, DeviceId, TrustedProxies};

/// The request metadata in which apps name their installation: a random
/// id the app makes once and keeps (8–128 letters, digits, `.`, `_`, `:`,
/// `-`). Optional; a malformed one is refused.
pub const DEVICE_ID_HEADER: &str = "x-huying-device-id";

/// What the layer learned about a request's caller.
pub fn client<T>(request: &tonic::Request<T>) -> ClientContext {
    request
        .extensions()
        .get::<ClientContext>()
        .cloned()
        .unwrap_or_default()
}

// TODO(limits): only `X-Forwarded-For` is read; a proxy that writes the
// standard `Forwarded` header (RFC 7239) instead needs it read the same way.
// TODO(limits): the device id is optional, so a scripted client escapes
// `file.device` by leaving it out (the citizen and address limits still
// hold); requiring it needs every app release to send it first.
fn client_context<B>(
    request: &Request<B>,
    trusted: &TrustedProxies,
) -> Result<ClientContext, Status> {
    let peer = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|socket| socket.ip());
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let ip = peer.map(|peer| trusted.client_ip(peer, &forwarded_for));

    let device = match request.headers().get(DEVICE_ID_HEADER) {
        None => None,
        Some(value) => {
            let raw = value.to_str().unwrap_or_default();
            let device = DeviceId::parse(DEVICE_ID_HEADER, raw)
                .map_err(|violation| DomainError::InvalidInput(vec![violation]))?;
            Some(device)
        }
    };
    Ok(ClientContext { ip, device })
}

#[derive(Clone)]
pub struct ClientLayer {
    trusted: Arc<TrustedProxies>,
}

impl ClientLayer {
    pub fn new(trusted: TrustedProxies) -> ClientLayer {
        ClientLayer {
            trusted: Arc::new(trusted),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Client<S> {
        Client {
            inner,
            trusted: Arc::clone(&self.trusted),
        }
    }
}

#[derive(Clone)]
pub struct Client<S> {
    inner: S,
    trusted: Arc<TrustedProxies>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Client<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match client_context(&request, &self.trusted) {
            Ok(context) => {
                request.extensions_mut().insert(context);
                // The clone that was polled ready serves this call.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
