//! Marks gRPC-Web calls before the gRPC-Web layer translates them into
//! plain gRPC, so that handlers can apply the limits of browser and
//! mini-program clients.

use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};

/// Present in a request's extensions when the call arrived as gRPC-Web.
#[derive(Debug, Clone, Copy)]
pub struct GrpcWebCall;

#[derive(Debug, Clone, Copy, Default)]
pub struct MarkGrpcWebLayer;

impl<S> Layer<S> for MarkGrpcWebLayer {
    type Service = MarkGrpcWeb<S>;

    fn layer(&self, inner: S) -> MarkGrpcWeb<S> {
        MarkGrpcWeb { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MarkGrpcWeb<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for MarkGrpcWeb<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let web = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc-web"));
        if web {
            request.extensions_mut().insert(GrpcWebCall);
        }
        self.inner.call(request)
    }
}
