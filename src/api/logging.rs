//! One span and one log line per RPC: method, gRPC status code and latency,
//! at a level chosen by the code. Nothing from the request body is logged.

use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Instrument, Level};

#[derive(Debug, Clone, Copy, Default)]
pub struct RpcLogLayer;

impl<S> Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> RpcLog<S> {
        RpcLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcLog<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RpcLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("rpc", rpc.method = %method);
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);

        Box::pin(
            async move {
                let started = Instant::now();
                let result = ready.call(request).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(response) => log_outcome(&method, status_code(response), latency_ms),
                    Err(error) => tracing::error!(latency_ms, error = %error, "rpc failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// The status of a unary call or of a refused stream is in the headers
/// ("trailers-only" response). Otherwise the call succeeded so far: for a
/// server stream this line marks the stream's start.
fn status_code<B>(response: &Response<B>) -> Code {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

fn log_outcome(method: &str, code: Code, latency_ms: f64) {
    let level = level_for(method, code);
    let code_name = format!("{code:?}");
    // `tracing` needs the level at compile time, hence one arm per level.
    if level == Level::ERROR {
        tracing::error!(rpc.code = %code_name, latency_ms, "rpc");
    } else if level == Level::INFO {
        tracing::info!(rpc.code = %code_name, latency_ms, "rpc");
    } else {
        tracing::debug!(rpc.code = %code_name, latency_ms, "rpc");
    }
}

/// Health probes arrive every few seconds and are only interesting when
/// they fail; the caller's mistakes are routine; server faults are errors.
pub fn level_for(method: &str, code: Code) -> Level {
    let server_fault = matches!(
        code,
        Code::Unknown
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unimplemented
            | Code::DeadlineExceeded
    );
    if server_fault {
        Level::ERROR
    } else if method.starts_with("/grpc.health.") || method.starts_with("/grpc.reflection.") {
        Level::DEBUG
    } else {
        Level::INFO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_code() {
        assert_eq!(
            level_for("/huying.v1.CitizenService/GetComplaint", Code::Ok),
            Level::INFO
        );
        assert_eq!(
            level_for("/huying.v1.CitizenService/GetComplaint", Code::NotFound),
            Level::INFO
        );
        assert_eq!(
            level_for("/huying.v1.CitizenService/GetComplaint", Code::Internal),
            Level::ERROR
        );
        assert_eq!(
            level_for("/grpc.health.v1.Health/Check", Code::Ok),
            Level::DEBUG
        );
    }
}
