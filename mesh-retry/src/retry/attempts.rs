//! The bookkeeping of one request's attempts: whether a failed attempt is
//! retried, and the request each further attempt sends. Shared by the
//! [`Retry`](super::Retry) layer and the fused
//! [`RouteStack`](crate::stack::RouteStack).

use std::{
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Extensions, HeaderMap, Request, Response};
use mesh_core::{BoxError, ProxyErrorKind, labels::DstService, route::RouteId};
use tokio::time::Instant;
use tower_service::Service;

pub(crate) use super::head::Head;
use super::{Metrics, Shared};
use crate::{
    budget::Withdrawal,
    deadline,
    metrics::{NotRetryable, RouteRetryMetrics},
    replay::{Replay, ReplayBody, Replayable},
};

/// The request's names, when metrics are labelled from them.
pub(crate) type Labels = Option<(Option<DstService>, Option<RouteId>)>;

/// The request's names from its `extensions`, if `metrics` are labelled
/// from them; otherwise nothing is looked up.
pub(crate) fn labels(metrics: &Metrics, extensions: &Extensions) -> Labels {
    match metrics {
        Metrics::FromRequest(_) => Some((
            extensions.get::<DstService>().cloned(),
            extensions.get::<RouteId>().cloned(),
        )),
        _ => None,
    }
}

/// Everything a request needs to be sent again. `C` is the configuration
/// of the layer that retries, which holds the retry [`Shared`] state.
pub(crate) struct Attempts<S, B, C> {
    config: Arc<C>,
    /// The service for further attempts; `None` when the request cannot be
    /// retried (and `not_retryable` says why).
    pub(crate) service: Option<S>,
    head: Option<Head>,
    /// The retry decided on and not sent yet: boxed, so that the
    /// bookkeeping of the many requests never retried stays small.
    next: Option<Box<Next>>,
    replay: Option<Replay<B>>,
    not_retryable: Option<NotRetryable>,
    /// Whether the request's method is not retried, so that only a failure
    /// the upstream did not process is (and any other counts as
    /// `non_idempotent`).
    unprocessed_only: bool,
    /// Whether the request is a gRPC call, which decides whether a
    /// response that is not gRPC is a success.
    pub(crate) grpc: bool,
    /// Attempts made so far, the first included.
    pub(crate) attempts: u32,
    /// Whether the last attempt's outcome has already waited for its
    /// client to let go of the body ([`Decision::AwaitBody`]).
    awaited_body: bool,
    labels: Labels,
}

/// How long a failed attempt's client may keep the request body before the
/// retry that needs it is given up (`body_in_use`).
///
/// hyper lets go of a request body from the task that sends it: an HTTP/2
/// stream's body is dropped when its send task sees the stream's reset, an
/// HTTP/1 body when the connection's task ends. That is usually within
/// microseconds of the failure, but can come after it: a retry decided
/// at once would find the body still held. One second is far above that
/// and short against a request's life.
pub(crate) const BODY_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// The largest failed response, by its body's exact size, that a retry
/// holds through its backoff and its wait for the service, to give back
/// if the retry is not sent after all: the replay buffer's default.
///
/// A response held unread keeps what its connection gave it: on HTTP/2,
/// its stream's share of the flow-control window, which hyper sizes at
/// 2 MiB a stream and 5 MiB a connection. A few large failures held
/// through a backoff would stall every other response on the same
/// connection until the retries are sent. A body that has ended, or that
/// is known to be this small, holds at most this much of the window; any
/// other is dropped when the retry is decided, which resets its stream
/// and frees its window at once. If the retry is then not sent, the
/// caller gets what it would have got without a held response: the
/// service's readiness error, or the mesh's timeout answer.
pub(crate) const HELD_RESPONSE_CAP: u64 = 64 * 1024;

/// Whether a retry decided on holds `result`, the outcome it is to
/// replace (see [`HELD_RESPONSE_CAP`]): an error, which holds no
/// connection, or a response whose body has ended or is known to be
/// small. Asked only once a retry is decided.
#[inline]
pub(crate) fn holds<R: http_body::Body>(result: &Result<Response<R>, BoxError>) -> bool {
    match result {
        Ok(res) => {
            let body = res.body();
            body.is_end_stream()
                || body
                    .size_hint()
                    .exact()
                    .is_some_and(|len| len <= HELD_RESPONSE_CAP)
        }
        Err(_) => true,
    }
}

/// A retry decided on: the head it will send, and the retry it took from
/// the budget, to give back if it is not sent after all.
struct Next {
    head: Request<()>,
    withdrawal: Withdrawal,
}

/// What to do with an attempt's outcome.
pub(crate) enum Decision {
    /// Hand it to the caller.
    Return,
    /// Retry after `delay`, counted from `now`.
    Retry { delay: Duration, now: Instant },
    /// Nothing answered, but the failed attempt's client still holds the
    /// request body: wait, up to [`BODY_RELEASE_WAIT`], for it to let go
    /// ([`Attempts::poll_released`]), then decide again on the same
    /// outcome. The second decision does not wait.
    AwaitBody,
}

impl<S, B, C> Attempts<S, B, C> {
    /// A request that will not be retried because of `reason`, which is
    /// counted if its response turns out to be a retryable failure; or,
    /// when `unprocessed_only` says its method is not retried either, if
    /// it turns out to be one the upstream did not process (any other
    /// counts as `non_idempotent`).
    pub(crate) fn unretryable(
        config: Arc<C>,
        reason: NotRetryable,
        unprocessed_only: bool,
        grpc: bool,
        labels: Labels,
    ) -> Self {
        Self {
            config,
            service: None,
            head: None,
            next: None,
            replay: None,
            not_retryable: Some(reason),
            unprocessed_only,
            // Read for whether a failure is one to count as not retried.
            grpc,
            attempts: 1,
            awaited_body: false,
            labels,
        }
    }

    /// A request that may be retried: after any retryable failure, or,
    /// when `unprocessed_only` says its method is not retried, only after
    /// one the upstream did not process. `grpc` says whether it is a gRPC
    /// call.
    pub(crate) fn retryable(
        config: Arc<C>,
        service: S,
        head: Head,
        replay: Replay<B>,
        unprocessed_only: bool,
        grpc: bool,
        labels: Labels,
    ) -> Self {
        Self {
            config,
            service: Some(service),
            head: Some(head),
            next: None,
            replay: Some(replay),
            not_retryable: None,
            unprocessed_only,
            grpc,
            attempts: 1,
            awaited_body: false,
            labels,
        }
    }
}

impl<S, B, C> Attempts<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
    S::Error: Into<BoxError>,
    C: AsRef<Shared>,
{
    /// The configuration of the layer that retries.
    pub(crate) fn config(&self) -> &C {
        &self.config
    }

    /// The deadline of the request's retries, if it has one.
    pub(crate) fn deadline(&self) -> Option<crate::Deadline> {
        self.head.as_ref().and_then(Head::deadline)
    }

    /// Decides, from an attempt's outcome, whether to return it or retry.
    ///
    /// The outcome is borrowed, not taken: a response is a couple of
    /// hundred bytes, and most are handed to the caller unchanged.
    pub(crate) fn decide<R>(&mut self, result: &Result<Response<R>, BoxError>) -> Decision {
        let policy = &self.shared().policy;
        let retry_after = match result {
            Ok(res) => match policy.retryable_response(res, self.grpc) {
                Some(retry_after) => retry_after,
                None => {
                    if self.attempts > 1 && policy.is_success(res, self.grpc) {
                        self.count(RouteRetryMetrics::success);
                    }
                    return Decision::Return;
                }
            },
            Err(error) if policy.retryable_error(&**error) => None,
            Err(_) => return Decision::Return,
        };
        self.decide_failure(result, retry_after)
    }

    /// Whether to read the first frame of `res` before deciding on it
    /// ([`decide_peeked`](Self::decide_peeked)): an answer to a gRPC call
    /// whose head says nothing of its status, on a policy that retries
    /// gRPC codes, whose call may be retried at all and had its body
    /// recorded whole; and then either the call was retried already, or
    /// its trailers could get it retried (it has attempts left, its
    /// deadline has not passed and the budget has a retry to spare).
    ///
    /// A retried call's answer is read even when no retry can follow it
    /// (its last attempt, an empty budget): its trailers say whether the
    /// retries ended in a success or under the limit, the budget or the
    /// deadline, which its head alone would count as a success. That is
    /// what linkerd2-proxy counts, reading every attempt's first frame.
    pub(crate) fn peeks<R: http_body::Body>(&self, res: &Response<R>) -> bool {
        let policy = &self.shared().policy;
        self.grpc
            && self.not_retryable.is_none()
            && !self.unprocessed_only
            && self.service.is_some()
            && res.extensions().get::<ProxyErrorKind>().is_none()
            && policy.awaits_trailers(res)
            && !res.body().is_end_stream()
            && self
                .replay
                .as_ref()
                .is_some_and(|replay| matches!(replay.replayable(), Replayable::Complete))
            && (self.attempts > 1
                || self.attempts < policy.max_attempts().get()
                    && self
                        .deadline()
                        .is_none_or(|deadline| deadline.instant() > Instant::now())
                    && self.shared().budget.balance() >= 1.0)
    }

    /// [`decide`](Self::decide), for an outcome whose body's first frame
    /// was read, and was `trailers`: the status they carry decides, as the
    /// head's would in a trailers-only answer.
    pub(crate) fn decide_peeked<R>(
        &mut self,
        result: &Result<Response<R>, BoxError>,
        trailers: Option<&HeaderMap>,
    ) -> Decision {
        let Some(trailers) = trailers.filter(|_| result.is_ok()) else {
            return self.decide(result);
        };
        let policy = &self.shared().policy;
        if policy.retryable_trailers(trailers) {
            // Trailers say nothing of when to try again.
            return self.decide_failure(result, None);
        }
        if self.attempts > 1 && policy.is_success_trailers(trailers) {
            self.count(RouteRetryMetrics::success);
        }
        Decision::Return
    }

    /// Decides on an outcome that is a failure the policy retries (after
    /// `retry_after`, if the server said), by everything else that must
    /// hold for a retry.
    #[inline(always)]
    fn decide_failure<R>(
        &mut self,
        result: &Result<Response<R>, BoxError>,
        retry_after: Option<Duration>,
    ) -> Decision {
        let policy = &self.shared().policy;
        // A method that is not retried is retried only when the upstream
        // did not process the request.
        if self.unprocessed_only
            && !match result {
                Ok(res) => policy.unprocessed_response(res),
                Err(error) => policy.unprocessed_error(&**error),
            }
        {
            self.count(|m| m.not_retryable(NotRetryable::NonIdempotent));
            return Decision::Return;
        }
        if let Some(reason) = self.not_retryable {
            self.count(|m| m.not_retryable(reason));
            return Decision::Return;
        }
        if self.attempts >= policy.max_attempts().get() {
            self.count(RouteRetryMetrics::limit_exceeded);
            return Decision::Return;
        }
        // A response the upstream sent while the request body was
        // unfinished answered a request it had not read: sending it again
        // would not be the same request. A response the mesh made itself
        // (for a connection error, a per-try timeout, or a request it had
        // nowhere to send) answered nothing the upstream read: the next
        // attempt replays what was sent and sends the rest. Such responses
        // carry a `ProxyErrorKind`; one from a remote proxy arrives as a
        // plain response, without it.
        let answered = matches!(
            result,
            Ok(res) if res.extensions().get::<ProxyErrorKind>().is_none()
        );
        match self.replay.as_ref().map(Replay::replayable) {
            Some(Replayable::Complete) => {}
            Some(Replayable::Unfinished) if !answered => {}
            // Nothing answered, but the failed attempt's client still
            // holds the body: wait for it to let go, once.
            Some(Replayable::InUse) if !answered && !self.awaited_body => {
                self.awaited_body = true;
                return Decision::AwaitBody;
            }
            Some(Replayable::InUse) if !answered => {
                self.count(|m| m.not_retryable(NotRetryable::BodyInUse));
                return Decision::Return;
            }
            Some(Replayable::Unfinished | Replayable::InUse) => {
                self.count(|m| m.not_retryable(NotRetryable::StreamingResponse));
                return Decision::Return;
            }
            Some(Replayable::Committed) | None => {
                self.count(|m| m.not_retryable(NotRetryable::Committed));
                return Decision::Return;
            }
        }
        let delay = retry_after.unwrap_or_else(|| policy.backoff().delay(self.attempts));
        // One clock reading for the deadline and the budget.
        let now = Instant::now();
        let deadline = self.head.as_ref().and_then(Head::deadline);
        if deadline.is_some_and(|d| d.instant().saturating_duration_since(now) <= delay) {
            self.count(RouteRetryMetrics::deadline_exceeded);
            return Decision::Return;
        }
        // The budget before the head: during an outage the budget refuses
        // nearly every retry, and a refusal must not pay for rebuilding a
        // head it will not send.
        let budget = &self.shared().budget;
        let Some(withdrawal) = budget.try_withdraw_at(now) else {
            self.count(RouteRetryMetrics::budget_exhausted);
            return Decision::Return;
        };
        let Some(head) = self
            .head
            .as_ref()
            .and_then(|h| h.request(self.attempts + 1))
        else {
            // A copy of a valid head always parses back; should it not,
            // the caller keeps the response it has, and the budget its
            // retry. No counter has a reason for it.
            tracing::warn!("the request's head could not be rebuilt for a retry");
            budget.refund(withdrawal);
            return Decision::Return;
        };
        self.next = Some(Box::new(Next { head, withdrawal }));
        tracing::debug!(attempt = self.attempts + 1, ?delay, "retrying request");
        Decision::Retry { delay, now }
    }

    /// Waits for the service, then builds the next attempt's request.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Request<ReplayBody<B>>>, BoxError>> {
        let (Some(service), Some(replay)) = (self.service.as_mut(), self.replay.as_ref()) else {
            return Poll::Ready(Ok(None));
        };
        ready!(service.poll_ready(cx)).map_err(Into::into)?;
        let Some(next) = self.next.take() else {
            return Poll::Ready(Ok(None));
        };
        // Sent: the withdrawal is spent.
        self.attempts += 1;
        self.awaited_body = false;
        let req = next.head.map(|()| replay.next_attempt());
        self.count(RouteRetryMetrics::retry);
        Poll::Ready(Ok(Some(req)))
    }

    /// Ready once the failed attempt's client has let go of the request
    /// body, after [`Decision::AwaitBody`].
    pub(crate) fn poll_released(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.replay
            .as_ref()
            .map_or(Poll::Ready(()), |replay| replay.poll_released(cx))
    }

    /// Waits for the service that sends further attempts: the first half
    /// of [`poll_next`](Self::poll_next), for a caller that checks the
    /// deadline before the request is made.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.service.as_mut() {
            Some(service) => service.poll_ready(cx).map_err(Into::into),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Rewrites the next attempt's deadline header (if it carries one) with
    /// the time left now, and says whether the upstream will be told there
    /// is time left: `false` once the deadline has passed, or when
    /// `mesh-deadline`, in whole milliseconds, would say `0`.
    pub(crate) fn refresh_deadline(&mut self) -> bool {
        match (self.deadline(), self.next.as_mut()) {
            (Some(deadline), Some(next)) => deadline::refresh(next.head.headers_mut(), deadline),
            _ => true,
        }
    }

    /// The next attempt's request, once the service is ready: the second
    /// half of [`poll_next`](Self::poll_next). `None`, with nothing
    /// counted, if there is no retry to send or no service to send it.
    pub(crate) fn next_request(&mut self) -> Option<Request<ReplayBody<B>>> {
        let (Some(_), Some(replay)) = (self.service.as_ref(), self.replay.as_ref()) else {
            return None;
        };
        let next = self.next.take()?;
        // Sent: the withdrawal is spent.
        self.attempts += 1;
        self.awaited_body = false;
        let req = next.head.map(|()| replay.next_attempt());
        self.count(RouteRetryMetrics::retry);
        Some(req)
    }
}

impl<S, B, C: AsRef<Shared>> Attempts<S, B, C> {
    fn shared(&self) -> &Shared {
        (*self.config).as_ref()
    }

    /// Gives up the retry decided on, which will not be sent: its retry
    /// goes back to the budget, and `why` counts it, if a counter says why.
    /// Nothing happens if no retry is waiting to be sent.
    pub(crate) fn give_up(&mut self, why: Option<fn(&RouteRetryMetrics)>) {
        let Some(next) = self.next.take() else {
            return;
        };
        self.shared().budget.refund(next.withdrawal);
        if let Some(why) = why {
            self.count(why);
        }
    }

    /// Gives up the retry decided on, because the deadline left no time to
    /// send it.
    pub(crate) fn out_of_time(&mut self) {
        self.give_up(Some(RouteRetryMetrics::deadline_exceeded));
    }

    /// Gives up the retry decided on, because the service that was to send
    /// it failed to get ready: counted as `unavailable`.
    pub(crate) fn unavailable(&mut self) {
        self.give_up(Some(|m| m.not_retryable(NotRetryable::Unavailable)));
    }

    /// Gives up the retry decided on, if any, because the response future
    /// was dropped before sending it; `awaiting_body` says it was dropped
    /// while it waited for the failed attempt's client to let go of the
    /// request body, before a retry was decided. A deadline that has
    /// passed is why (a request timeout outside answered, as the route
    /// stack would), counted once for the retryable failure that was not
    /// retried; a caller that went away before it is counted nowhere.
    pub(crate) fn cancel(&mut self, awaiting_body: bool) {
        if self.next.is_none() && !awaiting_body {
            return;
        }
        let passed = self
            .head
            .as_ref()
            .and_then(Head::deadline)
            .is_some_and(|d| d.instant() <= Instant::now());
        match (self.next.is_some(), passed) {
            (true, true) => self.out_of_time(),
            (true, false) => self.give_up(None),
            (false, true) => self.count(RouteRetryMetrics::deadline_exceeded),
            (false, false) => {}
        }
    }

    /// Counts a retryable failure whose retry the deadline cut off before
    /// it was decided: while the failed attempt's client still held the
    /// request body. Nothing was taken from the budget.
    pub(crate) fn out_of_time_awaiting_body(&self) {
        self.count(RouteRetryMetrics::deadline_exceeded);
    }

    fn count(&self, f: impl FnOnce(&RouteRetryMetrics)) {
        match &self.shared().metrics {
            Metrics::None => {}
            Metrics::Route(metrics) => f(metrics.of_call(self.grpc)),
            Metrics::FromRequest(metrics) => {
                let (service, route) = self
                    .labels
                    .as_ref()
                    .map_or((None, None), |(s, r)| (s.as_ref(), r.as_ref()));
                f(&metrics.for_request(service, route));
            }
        }
    }
}

impl AsRef<Shared> for Shared {
    fn as_ref(&self) -> &Shared {
        self
    }
}
