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

/// Paths served as plain HTTP (file uploads and downloads) rather than gRPC.
pub const PLAIN_HTTP_PREFIXES: &[&str] = &["/uploads/", "/files/"];

/// tonic-web's layer for every path but the plain HTTP ones: it answers
/// any HTTP/1.1 request that is not gRPC-Web with 400, and the uploads of
/// `wx.uploadFile` are plain HTTP/1.1 multipart POSTs.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWebExceptPlainHttpLayer;

impl<S: Clone> Layer<S> for GrpcWebExceptPlainHttpLayer {
    type Service = GrpcWebExceptPlainHttp<S>;

    fn layer(&self, inner: S) -> GrpcWebExceptPlainHttp<S> {
        GrpcWebExceptPlainHttp {
            web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            plain: inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcWebExceptPlainHttp<S> {
    web: tonic_web::GrpcWebService<S>,
    plain: S,
}

type Body = tonic::body::Body;

impl<S, ResBody> Service<Request<Body>> for GrpcWebExceptPlainHttp<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <tonic_web::GrpcWebService<S> as Service<Request<Body>>>::poll_ready(&mut self.web, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if PLAIN_HTTP_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            // The router below is always ready; the clone serves this call.
            let mut plain = self.plain.clone();
            let response = plain.call(request);
            Box::pin(async move { Ok(response.await?.map(Body::new)) })
        } else {
            Box::pin(self.web.call(request))
        }
    }
}
