//! The admin server: health, readiness, metrics and shutdown.
//!
//! Orchestrators and operators talk to a proxy through a small HTTP surface
//! on its own port (4191 by default, as in Linkerd):
//!
//! | path | what it answers |
//! |---|---|
//! | `GET /live` | `200 live` while the process serves at all |
//! | `GET /ready` | `200 ready` when every [`ReadinessGate`] is open; `503` with the names of the closed ones otherwise |
//! | `GET /metrics` | the registry in OpenMetrics text |
//! | `POST /shutdown` | starts a graceful shutdown; only from loopback, `403` for anyone else |
//!
//! `/shutdown` trusts the peer address in the request's [`ConnectionInfo`],
//! which the server sets from the socket; a request without one is refused.

mod readiness;

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response, StatusCode, header};
use prometheus_client::registry::Registry;
use tower::Service;

pub use self::readiness::{Readiness, ReadinessGate};
use crate::{
    body::{self, BoxBody},
    conn::ConnectionInfo,
    serve::shutdown::ShutdownTrigger,
};

/// The OpenMetrics content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The admin service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Admin {
    inner: Arc<Inner>,
    shutdown: Option<ShutdownTrigger>,
}

#[derive(Debug)]
struct Inner {
    readiness: Readiness,
    registry: Registry,
}

impl Admin {
    /// An admin service over `registry` and `readiness`.
    pub fn new(registry: Registry, readiness: Readiness) -> Self {
        Self {
            inner: Arc::new(Inner {
                readiness,
                registry,
            }),
            shutdown: None,
        }
    }

    /// Lets `POST /shutdown` fire `trigger`. Without one, it answers 404.
    #[must_use]
    pub fn with_shutdown(self, trigger: ShutdownTrigger) -> Self {
        Self {
            shutdown: Some(trigger),
            ..self
        }
    }

    fn respond<B>(&self, req: &Request<B>) -> Response<BoxBody> {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/live") => text(StatusCode::OK, "live\n"),
            (&Method::GET | &Method::HEAD, "/ready") => {
                if self.inner.readiness.is_ready() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    let pending = self.inner.readiness.pending().join(", ");
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {pending}\n"),
                    )
                }
            }
            (&Method::GET | &Method::HEAD, "/metrics") => self.metrics(),
            (&Method::POST, "/shutdown") => self.shutdown(req),
            (_, "/live" | "/ready" | "/metrics" | "/shutdown") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn metrics(&self) -> Response<BoxBody> {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
        {
            tracing::warn!(%error, "cannot encode metrics");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
        }
        let mut res = Response::new(body::full(out));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        );
        res
    }

    fn shutdown<B>(&self, req: &Request<B>) -> Response<BoxBody> {
        let from_loopback = req
            .extensions()
            .get::<ConnectionInfo>()
            .is_some_and(|info| info.remote_addr.ip().is_loopback());
        if !from_loopback {
            return text(
                StatusCode::FORBIDDEN,
                "shutdown is only accepted from loopback\n",
            );
        }
        match &self.shutdown {
            Some(trigger) => {
                tracing::info!("shutdown requested through the admin server");
                trigger.trigger();
                text(StatusCode::OK, "shutting down\n")
            }
            None => text(StatusCode::NOT_FOUND, "shutdown is not enabled\n"),
        }
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<BoxBody> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<B> Service<Request<B>> for Admin {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&req)))
    }
}
