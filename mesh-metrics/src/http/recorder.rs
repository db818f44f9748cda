//! What one request records, from its start to the end of its response.
//!
//! The recording is in two parts, so that each is no larger than what its
//! holder needs: every byte of them is copied each time the response
//! future or the response is moved, and both are moved several times per
//! request. [`Started`] (the target and the start time) lives in the
//! response future; [`Streaming`] (the target, the start time until the
//! first byte, the status's handles and what the head said) lives in the
//! response body. Whichever holds the target when the exchange ends
//! records it; if neither got that far (the caller dropped the future or
//! the body), dropping it records a cancellation.
//!
//! The latency is Linkerd's time to first byte: from the request to the
//! response's first data frame, or to its end when no data came first
//! (trailers, an error, a head HTTP gives no body, a body dropped unread).
//! A server that sends its head at once and its body later is as slow as
//! its body, and its latency says so.

use std::{error::Error, sync::Arc};

use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use mesh_core::{
    classify::{Classification, ErrorKind, GrpcCode},
    error::{GRPC_STATUS, ProxyErrorKind, UpstreamCause},
};
use tokio::time::Instant;

use super::target::{StatusRef, TargetHandles};
pub(crate) use crate::body_rule::BodyRule;
use crate::{
    body_rule::{CUT_SHORT, Remaining},
    errors::ProxyError,
    labels::ResponseKey,
};

/// The `error` label of a request whose caller went away first.
const CANCEL: &str = "cancel";

/// A request on its way: what the response future records with.
#[derive(Debug)]
pub(crate) struct Started {
    /// Taken when the head arrives or the request fails.
    target: Option<Arc<TargetHandles>>,
    start: Instant,
    method: BodyRule,
    /// Whether the request is a gRPC call, which decides how a response
    /// that is not gRPC is classified.
    grpc_call: bool,
}

/// A response on its way: what the response body records with.
#[derive(Debug)]
pub(crate) struct Streaming {
    /// Taken when the stream ends.
    target: Option<Arc<TargetHandles>>,
    /// When the request began; taken when the latency is observed, at the
    /// first byte of the body or at its end, whichever is first.
    start: Option<Instant>,
    status: StatusRef,
    head: Head,
    /// The bytes of the declared length not yet sent: a body dropped with
    /// none left ended rather than was cancelled, and one that ends with
    /// some left was cut short.
    remaining: Remaining,
}

/// What the response head said.
#[derive(Clone, Copy, Debug)]
struct Head {
    status: u16,
    grpc_status: Option<u16>,
    class: Classification,
    error: Option<ProxyErrorKind>,
}

impl Started {
    /// Starts recording a request that began at `start`.
    pub(crate) fn new(
        target: Arc<TargetHandles>,
        start: Instant,
        method: BodyRule,
        grpc_call: bool,
    ) -> Self {
        Self {
            target: Some(target),
            start,
            method,
            grpc_call,
        }
    }

    /// The response head arrived: the head is classified. The rest,
    /// the latency included, is recorded by what this returns, at the
    /// body's first byte and at its end; `None` when the exchange is
    /// already over (and its latency counted): the response has no body,
    /// by HTTP's rules or because its body is empty (`body_is_empty`).
    pub(crate) fn on_response<B: Body>(
        &mut self,
        res: &Response<B>,
        body_is_empty: bool,
    ) -> Option<Streaming> {
        let target = self.target.take()?;
        let status = target.status(res.status());
        let head = Head {
            status: res.status().as_u16(),
            grpc_status: res.headers().get(&GRPC_STATUS).map(grpc_label),
            class: target.classify.classify_response_to(self.grpc_call, res),
            // The proxy's own answer is counted in its error family
            // too, out of line, in the one branch that reads its kind: a
            // response from the upstream has none, and a second branch
            // on the kind cost every request 22 instructions more
            // (callgrind, benches' `metrics`, `resolved`).
            error: res
                .extensions()
                .get::<ProxyErrorKind>()
                .map(|&kind| count_answer(&target, kind, res)),
        };
        let remaining = Remaining::of(res);
        let mut streaming = Streaming {
            target: Some(target),
            start: Some(self.start),
            status,
            head,
            remaining,
        };
        if body_is_empty || !self.method.has_body(res.status()) {
            // Nobody will read a body: the exchange is over, and nothing
            // of the length the head declared (a `HEAD`'s, a 304's) is
            // missing.
            streaming.remaining = Remaining::NONE;
            streaming.on_end(None);
            return None;
        }
        Some(streaming)
    }

    /// The request failed with `error` instead of a response.
    pub(crate) fn on_error(&mut self, error: &(dyn Error + 'static)) {
        if let Some(target) = self.target.take() {
            target.count_error(ProxyError::of_error(error));
            finish(&target, None, failed(None, error));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            finish(&target, None, cancelled(None));
        }
    }
}

impl Streaming {
    /// `n` more bytes of the body were sent.
    pub(crate) fn on_data(&mut self, n: u64) {
        self.first_byte();
        self.remaining.sent(n);
    }

    /// Observes the latency, unless it was: the first byte of the body,
    /// or its end without one, is here.
    fn first_byte(&mut self) {
        let Some(start) = self.start.take() else {
            return;
        };
        if let Some(handles) = self
            .target
            .as_ref()
            .and_then(|target| target.status_handles(&self.status))
        {
            handles
                .latency
                .observe(Instant::now().saturating_duration_since(start));
        }
    }

    /// The response stream ended, with `trailers` if it had any.
    pub(crate) fn on_end(&mut self, trailers: Option<&HeaderMap>) {
        self.first_byte();
        let Some(target) = self.target.take() else {
            return;
        };
        if self.remaining.ends_short() {
            // The stream ended short of its declared length: a message its
            // client reads as incomplete, whatever its status said.
            return count_cut_short(&target, &self.status, self.head);
        }
        let head = self.head;
        let trailer_status = trailers.and_then(|t| t.get(&GRPC_STATUS)).map(grpc_label);
        let class = match head.class {
            Classification::Final(class) => class,
            Classification::Pending => target.classify.classify_trailers(trailers),
        };
        let key = ResponseKey {
            status: Some(head.status),
            grpc_status: head.grpc_status.or(trailer_status),
            success: class.is_success(),
            error: head.error.map(ProxyErrorKind::as_label),
        };
        finish(&target, Some(&self.status), key);
    }

    /// The response body failed with `error`.
    pub(crate) fn on_error(&mut self, error: &(dyn Error + 'static)) {
        self.first_byte();
        if let Some(target) = self.target.take() {
            finish(&target, Some(&self.status), failed(Some(self.head), error));
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.remaining.is_sent() && matches!(self.head.class, Classification::Final(_)) {
            // Every declared byte was sent: the body ended, unread to its
            // end by a server that needs no more. (A gRPC response still
            // waited for the trailers that classify it.)
            self.on_end(None);
            return;
        }
        // Dropped before its first byte (if it had not sent one), the wait
        // for it ends here, as Linkerd counts it.
        self.first_byte();
        if let Some(target) = self.target.take() {
            finish(&target, Some(&self.status), cancelled(Some(self.head)));
        }
    }
}

/// Counts the response `key` describes, through the handles of its
/// `status` when that finds them.
fn finish(target: &TargetHandles, status: Option<&StatusRef>, key: ResponseKey) {
    match status.and_then(|s| target.status_handles(s)) {
        Some(status) if status.plain_key == key => status.count_plain(target),
        _ => {
            target.response(key).inc();
        }
    }
}

/// The key of a response that failed with `error`, after `head` if it had
/// one.
fn failed(head: Option<Head>, error: &(dyn Error + 'static)) -> ResponseKey {
    ResponseKey {
        status: head.map(|h| h.status),
        grpc_status: head.and_then(|h| h.grpc_status),
        success: false,
        error: Some(ErrorKind::of(error).as_label()),
    }
}

/// Counts a response the proxy answered itself, of `kind`, in its
/// target's error family, and gives `kind` back. Out of line, so that a
/// response from the upstream carries none of it.
#[cold]
#[inline(never)]
fn count_answer<B>(
    target: &TargetHandles,
    kind: ProxyErrorKind,
    res: &Response<B>,
) -> ProxyErrorKind {
    let cause = res.extensions().get::<UpstreamCause>().copied();
    if let Some(error) = ProxyError::of_answer(target.direction(), kind, res.headers(), cause) {
        target.count_error(error);
    }
    kind
}

/// Counts a response whose stream ended before all of the length its
/// `head` declared: cut mid-message, a failure of kind [`CUT_SHORT`]. Out
/// of line, so that the end of every other response does not carry it.
#[cold]
#[inline(never)]
fn count_cut_short(target: &TargetHandles, status: &StatusRef, head: Head) {
    let key = ResponseKey {
        status: Some(head.status),
        grpc_status: head.grpc_status,
        success: false,
        error: Some(CUT_SHORT.as_label()),
    };
    finish(target, Some(status), key);
}

/// The key of a response whose caller went away, after `head` if it had
/// one.
fn cancelled(head: Option<Head>) -> ResponseKey {
    ResponseKey {
        status: head.map(|h| h.status),
        grpc_status: head.and_then(|h| h.grpc_status),
        success: false,
        error: Some(CANCEL),
    }
}

/// The `grpc_status` label of a `grpc-status` value. Values that are not a
/// code gRPC defines read as `UNKNOWN` (2), as gRPC clients read them, so
/// the label keeps to seventeen values whatever a peer sends.
fn grpc_label(value: &HeaderValue) -> u16 {
    GrpcCode::from_header(value)
        .filter(|code| code.is_defined())
        .unwrap_or(GrpcCode::UNKNOWN)
        .as_u16()
}
