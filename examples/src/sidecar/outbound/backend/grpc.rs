//! How a gRPC call ended, for `outbound_grpc_route_*`, and the response
//! bodies that tell when a counted request ends.
//!
//! A gRPC call that fails is usually answered `200`, its `grpc-status` in
//! the trailers that end the response body; only a call that fails at
//! once gets a trailers-only response, the status in the head. So the
//! status of an attempt is read where gRPC clients read it: in the head
//! when it is there, otherwise in the trailers, and the attempt is counted
//! when its body ends, as linkerd2-proxy's `LabelGrpcRsp` records it (in
//! `linkerd/app/outbound/src/http/logical/policy/route/metrics.rs`, by the
//! end-of-stream hook of `linkerd/http/prom/src/record_response.rs`).

use std::{
    error::Error,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use mesh_core::{
    classify::GrpcCode,
    error::{GRPC_STATUS, is_grpc},
};
use pin_project_lite::pin_project;

use tokio::time::Instant;

use super::super::ends::Ending;
use super::super::profile::AwaitingTrailers;
use super::CountedHandles;

#[cfg(test)]
mod tests;

/// What an attempt without a status is labelled, as Linkerd labels it:
/// the code gRPC clients read then, and the one a number gRPC does not
/// define stands for.
pub(super) const UNKNOWN: &str = "UNKNOWN";

/// How a gRPC attempt ended: the values of `grpc_status` and `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrpcEnding {
    pub(crate) status: &'static str,
    pub(crate) error: Option<&'static str>,
}

impl GrpcEnding {
    /// An attempt that ended in `error`, with no status.
    pub(super) fn failed(error: &'static str) -> Self {
        Self {
            status: UNKNOWN,
            error: Some(error),
        }
    }
}

/// The `grpc_status` of `headers` (a head or trailers): `None` without a
/// `grpc-status`, `UNKNOWN` for a value that is no code gRPC defines.
fn status_in(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(GRPC_STATUS)?;
    let name = GrpcCode::from_header(value).and_then(GrpcCode::upper_name);
    Some(name.unwrap_or(UNKNOWN))
}

/// Whether a request is a gRPC call: a `POST` with a gRPC `content-type`,
/// as gRPC's HTTP/2 protocol defines one (and as Linkerd matches a
/// `GRPCRoute`).
pub(super) fn is_call<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST && is_grpc(req.headers())
}

/// The ending of a gRPC attempt known from its response head, or `None`
/// when the status is still to come in the trailers: a `200` of gRPC,
/// without `grpc-status`, whose body has not ended. Any other response is
/// final at its head, as gRPC clients read it: its `grpc-status`, or
/// `UNKNOWN` for one that has none (a response that is not gRPC, another
/// status than `200`, an empty body without trailers). `error` is the
/// mesh's own answer, if it is one.
fn at_head<RB: Body>(res: &Response<RB>, error: Option<&'static str>) -> Option<GrpcEnding> {
    let headers = res.headers();
    let status = match status_in(headers) {
        Some(status) => status,
        None if res.status() == StatusCode::OK
            && is_grpc(headers)
            && !res.body().is_end_stream() =>
        {
            return None;
        }
        None => UNKNOWN,
    };
    Some(GrpcEnding { status, error })
}

/// Counts a response at its head: an HTTP request's status, and a gRPC
/// call's if it ends there; otherwise the body counts the call when it
/// ends. The body records the duration from `started` when it ends, or
/// the head does for a response without a body. On a ServiceProfile
/// route, the response is counted in its families at its head, or, for a
/// gRPC response whose status comes in its trailers, when its body ends.
/// `error` is the mesh's answer, when it is one
/// ([`answer_label`](super::answer_label)).
pub(super) fn response<RB: Body>(
    res: Response<RB>,
    handles: CountedHandles,
    grpc: bool,
    started: Instant,
    error: Option<&'static str>,
) -> Response<CountedBody<RB>> {
    let profile = handles
        .profile()
        .and_then(|profile| profile.response(grpc, &res, started.elapsed()));
    let ends = handles.ends();
    let awaiting = if grpc {
        match at_head(&res, error) {
            Some(ending) => {
                ends.count_grpc(ending);
                None
            }
            None => Some(error),
        }
    } else {
        ends.count(Ending {
            status: Some(res.status().as_u16()),
            error,
        });
        None
    };
    if awaiting.is_none() && res.body().is_end_stream() {
        ends.observe(grpc, started.elapsed());
        if let (Some(level), Some(awaiting)) = (handles.profile(), profile) {
            level.trailers(awaiting, None);
        }
        return res.map(CountedBody::new);
    }
    res.map(|inner| CountedBody {
        inner,
        pending: Some(Pending {
            handles,
            grpc,
            started,
            awaiting,
            profile,
        }),
    })
}

/// A response whose end is still to come.
#[derive(Debug)]
struct Pending {
    handles: CountedHandles,
    /// Whether the request was a gRPC call.
    grpc: bool,
    started: Instant,
    /// For a gRPC call whose status is still to come, the mesh's answer
    /// its head carried, if any.
    awaiting: Option<Option<&'static str>>,
    /// For a response on a ServiceProfile route whose class is still to
    /// come, its status.
    profile: Option<AwaitingTrailers>,
}

impl Pending {
    /// Ends the response: counts a gRPC call still awaiting its status as
    /// `status` and `error` (the head's answer first), and records the
    /// duration; on a ServiceProfile route, classifies a response still
    /// awaiting its class by its `trailers`, if it ended with them.
    fn end(self, status: &'static str, error: Option<&'static str>, trailers: Option<&HeaderMap>) {
        if let (Some(level), Some(awaiting)) = (self.handles.profile(), self.profile) {
            level.trailers(awaiting, trailers);
        }
        let ends = self.handles.ends();
        if let Some(answer) = self.awaiting {
            ends.count_grpc(GrpcEnding {
                status,
                error: answer.or(error),
            });
        }
        ends.observe(self.grpc, self.started.elapsed());
    }
}

pin_project! {
    /// The body of a counted response. It records the duration when it
    /// ends (its last frame, an error, or dropped before its end), and for
    /// a gRPC call whose status comes in the trailers, counts the call
    /// then: by the trailers' `grpc-status` (`UNKNOWN` when it ends
    /// without one), by the error that cut it, or, dropped before its end
    /// (the caller gone, a stream timeout), as cancelled.
    #[derive(Debug)]
    pub(crate) struct CountedBody<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }

    impl<B> PinnedDrop for CountedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.end(UNKNOWN, Some(super::CANCEL), None);
            }
        }
    }
}

impl<B> CountedBody<B> {
    /// A body with nothing left to count.
    pub(super) fn new(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

impl<B: Default> Default for CountedBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

/// A response body's error, read as an error to label it. The bodies
/// counted are hyper's, under the retries, and mesh-retry's timeout
/// bodies, over them, whose errors are boxed; a boxed error is no
/// [`Error`] itself, so each is read by what it is.
pub(crate) trait BodyError {
    /// The error, to be labelled.
    fn as_error(&self) -> &(dyn Error + 'static);
}

impl BodyError for mesh_core::BoxError {
    fn as_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl BodyError for hyper::Error {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl BodyError for std::io::Error {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl BodyError for std::convert::Infallible {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body,
    B::Error: BodyError,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(pending) = this.pending.as_ref() {
            let awaiting = pending.awaiting.is_some();
            let ended = match &frame {
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) if awaiting => {
                        Some((status_in(trailers).unwrap_or(UNKNOWN), None))
                    }
                    Some(_) => Some((UNKNOWN, None)),
                    None => this.inner.is_end_stream().then_some((UNKNOWN, None)),
                },
                Some(Err(error)) => Some((
                    UNKNOWN,
                    Some(super::failure_label(
                        error.as_error(),
                        super::linkerd::RESPONSE_STREAM_TIMEOUT,
                    )),
                )),
                None => Some((UNKNOWN, None)),
            };
            if let Some((status, error)) = ended
                && let Some(pending) = this.pending.take()
            {
                let trailers = match &frame {
                    Some(Ok(frame)) => frame.trailers_ref(),
                    _ => None,
                };
                pending.end(status, error, trailers);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
