//! What a route retries, how often, and how patiently.

use std::{error::Error, num::NonZeroU32, time::Duration};

use http::{HeaderMap, Method, Response};
use mesh_core::{
    ProxyErrorKind,
    classify::{
        Classification, Classify, ErrorKind, FailureReason, GrpcCode, GrpcCodes, ResponseClass,
        StatusRanges,
    },
    error::{Unprocessed, is_unprocessed},
    proxy::queue::QueueRefusal,
};

use super::Backoff;
use crate::replay::DEFAULT_MAX_BYTES;

/// A route's retry policy: which failures are retried, how many attempts a
/// request may make, which requests may be retried at all, and the backoff.
///
/// Build it once per configuration; the retry layer shares it between
/// requests.
///
/// | setting | default |
/// |---|---|
/// | [`max_attempts`](Self::max_attempts) | 3, counting the first |
/// | HTTP statuses retried | `5xx` |
/// | gRPC codes retried | `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable` |
/// | connection errors before a response | retried |
/// | per-try timeouts | retried |
/// | methods retried | GET, HEAD, OPTIONS, PUT, DELETE, TRACE (gRPC calls, all POSTs, only if [marked](Self::with_grpc_requests)) |
/// | [failures the upstream did not process](Self::with_unprocessed) | retried, whatever the method |
/// | [`backoff`](Backoff) | 25 ms doubling to 250 ms, full jitter |
/// | replay buffer | 64 KiB |
///
/// The status and code defaults are those of Linkerd's
/// `retry.linkerd.io/http` and `retry.linkerd.io/grpc`. The attempt limit
/// is the SRE book's three; **Linkerd's `retry.linkerd.io/limit` defaults to
/// one retry (two attempts)**.
///
/// A failure that proves the upstream did not process the request (an
/// HTTP/2 stream it refused with `REFUSED_STREAM`, one a graceful `GOAWAY`
/// left out, a request canceled before it was sent: see mesh-core's
/// [`is_unprocessed`]) is retried even
/// for a method that is not, a `POST` or a gRPC call: nothing of it took
/// effect, so sending it again repeats nothing. gRPC clients do the same
/// ("transparent retries", gRPC proposal A6), as does Envoy's
/// `refused-stream` retry condition. Everything else still holds: the
/// policy must retry at all (not [`never`](Self::never)), the attempt
/// limit, the budget, the deadline, and a body that can be replayed. To
/// keep that last one, a request of any method keeps its head and records
/// its body for replay as an idempotent one does, where without this it
/// would pass through untouched: the price, paid by every such request
/// and measured in the benches' README (section `retry`), of retrying the
/// few that are refused. [`with_unprocessed(false)`](Self::with_unprocessed)
/// turns it off.
///
/// Two of the mesh's own `503`s (gRPC `UNAVAILABLE`) are decided by what
/// they are, not by the statuses or codes retried, as linkerd2-proxy's
/// route retries decide its `LoadShedError` and `FailFastError`
/// (`retryable_error` in `linkerd/app/outbound/src/http/logical/policy/route/retry.rs`):
///
/// - a request its balancer's queue **shed** (`mesh-error: service
///   unavailable`: the queue is full, or the service is in fail-fast) is
///   never retried: a retry would be shed the same way, and only add load
///   to a proxy that is already turning requests away. It is not a
///   failure the policy retries, so no retry counter counts it (Linkerd's
///   retry metrics have no series for it either); the error metrics do
///   (`error="loadshed"`, `LOAD_SHED`);
/// - a request that **failed fast** (`mesh-error: service in fail-fast`:
///   it waited for an endpoint until the fail-fast timeout) is retried by
///   a policy that retries at all, whatever its statuses and codes:
///   another attempt may be sent to a backend that has endpoints. It never
///   reached an endpoint, so it is retried as a failure the upstream did
///   not process: whatever the method, unless
///   [`with_unprocessed(false)`](Self::with_unprocessed). The attempt
///   limit, the budget and the deadline still hold. A policy that retries
///   neither connection errors nor failures the upstream did not process
///   (a ServiceProfile route's, as Linkerd's profile retries read
///   responses only) does not retry it.
///
/// Both carry mesh-core's [`ProxyErrorKind::Unavailable`], told apart by
/// their `mesh-error`, as the error metrics tell them apart. The reason is
/// read only once a response with that kind is decided on, so a request
/// that is not retried pays nothing for it.
///
/// Which responses count as a success, for `retry_successes_total`, is a
/// separate [`Classify`] ([`with_classify`](Self::with_classify)), the one
/// metrics use. A gRPC response whose status comes in its trailers counts
/// as a success when its head arrives, unless a
/// [peeking](super::RetryLayer::peek_grpc_trailers) layer read those
/// trailers right after the head: then they decide, as a trailers-only
/// answer's head would.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: NonZeroU32,
    retry_on: Classify,
    connection_errors: bool,
    timeouts: bool,
    unprocessed: bool,
    any_method: bool,
    grpc_requests: bool,
    plain_by_status: bool,
    backoff: Backoff,
    max_replay_bytes: usize,
    classify: Classify,
}

const THREE: NonZeroU32 = match NonZeroU32::new(3) {
    Some(three) => three,
    None => NonZeroU32::MIN,
};

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: THREE,
            retry_on: Classify::new()
                .with_http_failures(StatusRanges::server_errors())
                .with_grpc_failures(Self::default_grpc_codes()),
            connection_errors: true,
            timeouts: true,
            unprocessed: true,
            any_method: false,
            grpc_requests: false,
            plain_by_status: false,
            backoff: Backoff::default(),
            max_replay_bytes: DEFAULT_MAX_BYTES,
            classify: Classify::default(),
        }
    }
}

impl RetryPolicy {
    /// The default policy; see the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that never retries: one attempt per request.
    pub fn never() -> Self {
        Self::default().with_max_attempts(NonZeroU32::MIN)
    }

    /// The gRPC codes retried by default, Linkerd's: `cancelled`,
    /// `deadline-exceeded`, `internal`, `resource-exhausted` and
    /// `unavailable`.
    pub const fn default_grpc_codes() -> GrpcCodes {
        GrpcCodes::empty()
            .with(GrpcCode::CANCELLED)
            .with(GrpcCode::DEADLINE_EXCEEDED)
            .with(GrpcCode::INTERNAL)
            .with(GrpcCode::RESOURCE_EXHAUSTED)
            .with(GrpcCode::UNAVAILABLE)
    }

    /// Sets the most attempts per request, the first included. Default 3.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: NonZeroU32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the HTTP statuses that are retried. Default `5xx`.
    #[must_use]
    pub fn with_http_statuses(mut self, statuses: StatusRanges) -> Self {
        self.retry_on = self.retry_on.with_http_failures(statuses);
        self
    }

    /// Sets the gRPC codes that are retried, read from the response headers
    /// (a trailers-only response). Default
    /// [`default_grpc_codes`](Self::default_grpc_codes).
    ///
    /// While this set is not empty, a gRPC call answered by a response that
    /// is not gRPC (no gRPC `content-type`, no `grpc-status`: a proxy's
    /// plain 503 or 429) is retried or not by the code its gRPC client
    /// reads it as, gRPC's "HTTP to gRPC status code mapping" (429, 502,
    /// 503 and 504 are `UNAVAILABLE`, 400 `INTERNAL`, 401
    /// `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `UNIMPLEMENTED`,
    /// any other `UNKNOWN`), not by the HTTP statuses: the caller sees a
    /// failed call with that code, so the route's gRPC rules are the ones
    /// that apply. With the default codes, a plain 429 or 503 is retried
    /// and a plain 500 (`UNKNOWN`) is not. With an empty set, such an
    /// answer is read as HTTP.
    #[must_use]
    pub fn with_grpc_codes(mut self, codes: GrpcCodes) -> Self {
        self.retry_on = self.retry_on.with_grpc_failures(codes);
        self
    }

    /// Sets the statuses a ServiceProfile route's `responseClasses` decide
    /// for retries: a response with one of them is retried when its status
    /// is one of the [HTTP statuses](Self::with_http_statuses) retried and
    /// not otherwise, whatever `grpc-status` or gRPC `content-type` it
    /// carries. Default none: the `grpc-status` decides first.
    ///
    /// Why: Linkerd retries a profile route's responses by the same
    /// classifier its metrics use (the `isRetryable` policy in
    /// linkerd2-proxy's `linkerd/app/outbound/src/http/retry.rs` judges a
    /// response by `classify::Request::from` the route's classes), which
    /// tries the classes on the response head before any `grpc-status`:
    /// a trailers-only `200`
    /// with `grpc-status: 14` is not retried on a route whose class calls
    /// `2xx` a success, and a `500` with `grpc-status: 0` is retried on one
    /// whose class calls it a failure. A status no class matches is left
    /// to the [gRPC codes](Self::with_grpc_codes), then the HTTP statuses,
    /// as without classes. The set is read only when a response is judged,
    /// by a bit test mesh-core's [`Classify`] makes anyway
    /// ([`Classify::with_class_statuses`]).
    #[must_use]
    pub fn with_class_statuses(mut self, statuses: StatusRanges) -> Self {
        self.retry_on = self.retry_on.with_class_statuses(statuses);
        self
    }

    /// Reads a response to a gRPC call that is not gRPC (neither a gRPC
    /// `content-type` nor a `grpc-status`: a proxy's plain 429, an HTTP
    /// server's page) by its HTTP status against the
    /// [HTTP statuses](Self::with_http_statuses) retried, rather than by
    /// the code its gRPC client reads it as
    /// ([`with_grpc_codes`](Self::with_grpc_codes)). Default `false`.
    ///
    /// Why: a ServiceProfile route's `isRetryable` retries in Linkerd
    /// retry what the route's profile classifier calls a failure
    /// (linkerd2-proxy `linkerd/app/core/src/classify.rs`), and that
    /// classifier judges an answer without a `grpc-status` on a route with
    /// classes by its HTTP status, the classes then `5xx`: a plain `200`
    /// or `429` is not retried there, a plain `500` or `503` is. (On a
    /// route without classes, Linkerd's default gRPC classifier calls an
    /// answer that never carries a `grpc-status` a success; here it is
    /// read by its status all the same, so a plain `503` is retried.)
    #[must_use]
    pub fn with_plain_answers_by_status(mut self, by_status: bool) -> Self {
        self.plain_by_status = by_status;
        self
    }

    /// Whether a request that failed to connect, or whose connection broke
    /// before any response arrived, is retried. This includes the mesh's
    /// own 502 for an unreachable upstream. Default `true`.
    #[must_use]
    pub fn with_connection_errors(mut self, retry: bool) -> Self {
        self.connection_errors = retry;
        self
    }

    /// Whether an attempt that hit its per-try timeout is retried. Default
    /// `true`.
    #[must_use]
    pub fn with_timeouts(mut self, retry: bool) -> Self {
        self.timeouts = retry;
        self
    }

    /// Whether a failure that proves the upstream did not process the
    /// request (see the table above) is retried, whatever the request's
    /// method and whether or not connection errors are. Default `true`.
    ///
    /// Off, a request whose method is not retried passes through as it
    /// did before, keeping neither its head nor a replay of its body.
    #[must_use]
    pub fn with_unprocessed(mut self, retry: bool) -> Self {
        self.unprocessed = retry;
        self
    }

    /// Marks every request of the route retryable, whatever its method
    /// (Linkerd's `isRetryable`). By default only idempotent methods are
    /// retried: GET, HEAD, OPTIONS, PUT, DELETE and TRACE.
    #[must_use]
    pub fn with_any_method(mut self, retryable: bool) -> Self {
        self.any_method = retryable;
        self
    }

    /// Marks gRPC requests retryable, whatever their method (every gRPC call
    /// is a POST). A route that asks for gRPC codes to be retried, as
    /// Linkerd's `retry.linkerd.io/grpc` does, says its calls may be
    /// repeated. Default `false`: gRPC calls are retried only on a route
    /// that marks every request retryable.
    #[must_use]
    pub fn with_grpc_requests(mut self, retryable: bool) -> Self {
        self.grpc_requests = retryable;
        self
    }

    /// Sets the backoff. Default 25 ms doubling to 250 ms.
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the most request-body bytes recorded for replay. Default 64 KiB.
    #[must_use]
    pub fn with_max_replay_bytes(mut self, bytes: usize) -> Self {
        self.max_replay_bytes = bytes;
        self
    }

    /// Sets which responses count as a success in `retry_successes_total`.
    /// Default [`Classify::default`].
    #[must_use]
    pub fn with_classify(mut self, classify: Classify) -> Self {
        self.classify = classify;
        self
    }

    /// The most attempts per request, the first included.
    pub fn max_attempts(&self) -> NonZeroU32 {
        self.max_attempts
    }

    /// The HTTP statuses that are retried.
    pub fn http_statuses(&self) -> &StatusRanges {
        self.retry_on.http_failures()
    }

    /// The gRPC codes that are retried.
    pub fn grpc_codes(&self) -> GrpcCodes {
        self.retry_on.grpc_failures()
    }

    /// The statuses a route's response classes decide before any
    /// `grpc-status` (see [`with_class_statuses`](Self::with_class_statuses)).
    pub fn class_statuses(&self) -> &StatusRanges {
        self.retry_on.class_statuses()
    }

    /// Whether requests of any method are retried.
    pub fn any_method(&self) -> bool {
        self.any_method
    }

    /// The backoff.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The most request-body bytes recorded for replay.
    pub fn max_replay_bytes(&self) -> usize {
        self.max_replay_bytes
    }

    /// Whether this policy ever retries.
    pub fn retries(&self) -> bool {
        self.max_attempts.get() > 1
    }

    /// Whether gRPC requests are retried whatever their method.
    pub fn grpc_requests(&self) -> bool {
        self.grpc_requests
    }

    /// Whether failures the upstream did not process are retried, whatever
    /// the method.
    pub fn unprocessed(&self) -> bool {
        self.unprocessed
    }

    /// Whether a request with `method` may be retried; `grpc` says whether
    /// it is a gRPC call, and is asked only when that matters.
    pub(crate) fn allows(&self, method: &Method, grpc: impl FnOnce() -> bool) -> bool {
        self.any_method
            || (self.grpc_requests && grpc())
            || matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::PUT
                    | Method::DELETE
                    | Method::TRACE
            )
    }

    /// Whether `res` is a failure to retry, and if so how long the server
    /// asked to wait (`Retry-After`). `grpc_call` says whether it answers a
    /// gRPC call: on a route that retries gRPC codes, a response to one that
    /// is not gRPC (a proxy's plain 429 or 503) is read by the code its
    /// client turns it into, gRPC's HTTP-to-gRPC mapping (mesh-core's
    /// [`Classify::classify_response_to`]), not by its HTTP status.
    ///
    /// Inlined into the one caller, as it was before the queue's refusals
    /// were told apart: out of line, it cost every response decided on a
    /// call (about 50 instructions a request in the `retry` bench).
    #[inline(always)]
    pub(crate) fn retryable_response<B>(
        &self,
        res: &Response<B>,
        grpc_call: bool,
    ) -> Option<Option<Duration>> {
        let retryable = match res.extensions().get::<ProxyErrorKind>() {
            Some(ProxyErrorKind::UpstreamUnreachable) => {
                self.connection_errors || self.unprocessed_response(res)
            }
            // Inside the retry layer, only the per-try timeout answers so.
            Some(ProxyErrorKind::Timeout) => self.timeouts,
            // The balancer's queue refused it (see the table above).
            Some(ProxyErrorKind::Unavailable) if let Some(decided) = self.queue_refusal(res) => {
                return decided;
            }
            _ => {
                let by_code =
                    grpc_call && !self.plain_by_status && !self.retry_on.grpc_failures().is_empty();
                matches!(
                    self.retry_on.classify_response_to(by_code, res),
                    Classification::Final(ResponseClass::Failure(_))
                )
            }
        };
        retryable.then(|| self.backoff.retry_after(res.status(), res.headers()))
    }

    /// How `res`, an answer of kind [`Unavailable`](ProxyErrorKind::Unavailable),
    /// is decided if the balancer's queue refused it (see the table
    /// above); `None` for any other, which its status decides. Out of line:
    /// only such an answer asks.
    #[cold]
    #[inline(never)]
    fn queue_refusal<B>(&self, res: &Response<B>) -> Option<Option<Option<Duration>>> {
        Some(match QueueRefusal::of(res.headers())? {
            QueueRefusal::Shed => None,
            // A policy that retries neither connection errors nor failures
            // the upstream did not process (a ServiceProfile route's)
            // reads responses only.
            QueueRefusal::FailedFast => {
                (self.connection_errors || self.unprocessed).then_some(None)
            }
        })
    }

    /// Whether `res` is a gRPC answer whose status is still to come, in
    /// its trailers, on a policy that retries some gRPC code: the answer
    /// a [peeking](super::RetryLayer::peek_grpc_trailers) layer reads the
    /// first frame of.
    pub(crate) fn awaits_trailers<B>(&self, res: &Response<B>) -> bool {
        !self.retry_on.grpc_failures().is_empty()
            && matches!(
                self.retry_on.classify_response_to(true, res),
                Classification::Pending
            )
    }

    /// Whether `trailers`, read right after a head that said nothing of
    /// the status, carry a `grpc-status` the policy retries. Trailers
    /// without one are not retried.
    pub(crate) fn retryable_trailers(&self, trailers: &HeaderMap) -> bool {
        matches!(
            self.retry_on.classify_trailers(Some(trailers)),
            ResponseClass::Failure(FailureReason::GrpcStatus(_))
        )
    }

    /// [`is_success`](Self::is_success), for an answer whose status came in
    /// `trailers` right after its head.
    pub(crate) fn is_success_trailers(&self, trailers: &HeaderMap) -> bool {
        !self.classify.classify_trailers(Some(trailers)).is_failure()
    }

    /// Whether an error that ended an attempt before any response is one to
    /// retry.
    pub(crate) fn retryable_error(&self, error: &(dyn Error + 'static)) -> bool {
        let retried = match ErrorKind::of(error) {
            ErrorKind::Connect | ErrorKind::Reset => self.connection_errors,
            ErrorKind::Timeout => self.timeouts,
            _ => false,
        };
        retried || self.unprocessed_error(error)
    }

    /// Whether `res` is the mesh's answer to a request the upstream did not
    /// process, and such failures are retried: mesh-core's `Forward` marks
    /// it [`Unprocessed`].
    ///
    /// A request that failed fast in the balancer's queue reached no
    /// endpoint: it is one the upstream did not process, too.
    pub(crate) fn unprocessed_response<B>(&self, res: &Response<B>) -> bool {
        self.unprocessed
            && (res.extensions().get::<Unprocessed>().is_some()
                || matches!(
                    res.extensions().get::<ProxyErrorKind>(),
                    Some(ProxyErrorKind::Unavailable)
                ) && QueueRefusal::of(res.headers()) == Some(QueueRefusal::FailedFast))
    }

    /// Whether `error` proves the upstream did not process the request, and
    /// such failures are retried.
    pub(crate) fn unprocessed_error(&self, error: &(dyn Error + 'static)) -> bool {
        self.unprocessed && is_unprocessed(error)
    }

    /// Whether `res` is a success, for `retry_successes_total`: its head
    /// is not a failure. A gRPC response that streams its status in the
    /// trailers (the usual successful call) counts when its head arrives,
    /// as in Linkerd: the retry layer hands it on then, and never sees the
    /// trailers. A response to a gRPC call (`grpc_call`) that is not gRPC
    /// is classified as its gRPC client reads it.
    pub(crate) fn is_success<B>(&self, res: &Response<B>, grpc_call: bool) -> bool {
        !matches!(
            self.classify.classify_response_to(grpc_call, res),
            Classification::Final(ResponseClass::Failure(_))
        )
    }
}
