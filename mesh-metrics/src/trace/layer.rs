//! The layer that joins requests' traces, and its response future.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    Tracer,
    body::TraceBody,
    context::{Carried, SpanId},
    open::Open,
    span::SpanKind,
    tracestate,
};
use crate::http::AsDynError;

/// Joins the traces requests carry, and reports the proxy's spans to a
/// [`Tracer`]; without one, does nothing. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct TraceLayer {
    tracer: Option<Tracer>,
    kind: SpanKind,
}

impl TraceLayer {
    /// For the server side: spans of kind server, with the client's
    /// address and mesh identity. `None` traces nothing, so that a stack
    /// keeps one type whether its process traces or not.
    pub fn inbound(tracer: Option<Tracer>) -> Self {
        Self {
            tracer,
            kind: SpanKind::Server,
        }
    }

    /// For the client side: spans of kind client.
    pub fn outbound(tracer: Option<Tracer>) -> Self {
        Self {
            tracer,
            kind: SpanKind::Client,
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            tracer: self.tracer.clone(),
            kind: self.kind,
        }
    }
}

/// A service whose requests join their traces. See [`TraceLayer`].
///
/// It fails as the service it wraps fails, with the same error
/// ([`AsDynError`] reads it for the span's `error.type`), so a service
/// that cannot fail, such as the one axum's `Router::layer` wraps, still
/// cannot.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    tracer: Option<Tracer>,
    kind: SpanKind,
}

impl<S, B, RB> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: AsDynError,
    RB: Body,
{
    type Response = Response<TraceBody<RB>>;
    type Error = S::Error;
    type Future = TraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let open = self.tracer.as_ref().and_then(|tracer| {
            let carried = Carried::read(req.headers())?;
            let context = carried.context;
            let span_id = new_span_id();
            carried.write(req.headers_mut(), span_id);
            context.sampled.then(|| {
                // `tracestate` goes with `traceparent`, and only with it.
                let state = carried.is_w3c().then(|| tracestate::read(req.headers()));
                let open = Open::new(tracer, &context, span_id, self.kind, &req, state.flatten());
                Box::new(open)
            })
        });
        TraceFuture {
            inner: self.inner.call(req),
            open,
        }
    }
}

/// A random span id; never zero, which means none.
fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return SpanId(id.to_be_bytes());
        }
    }
}

pin_project! {
    /// Hands the request's span to the response body, which reports it
    /// when the response ends; reports it itself when the request fails,
    /// the response ended with its head, or the future is dropped first.
    #[derive(Debug)]
    pub struct TraceFuture<F> {
        #[pin]
        inner: F,
        open: Option<Box<Open>>,
    }

    impl<F> PinnedDrop for TraceFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(open) = this.project().open.take() {
                open.cancel("the caller went away before the response");
            }
        }
    }
}

impl<F, RB, E> Future for TraceFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: AsDynError,
    RB: Body,
{
    type Output = Result<Response<TraceBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let open = this.open.take();
        Poll::Ready(match result {
            Ok(res) => {
                let open = open.and_then(|mut open| {
                    if open.on_head(&res) {
                        open.end();
                        None
                    } else {
                        Some(open)
                    }
                });
                Ok(res.map(|body| TraceBody::new(body, open)))
            }
            Err(error) => {
                if let Some(open) = open {
                    open.fail(error.as_dyn_error());
                }
                Err(error)
            }
        })
    }
}
