//! The response future of [`Retry`](super::Retry).

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Response, Uri, Version, request};
use mesh_core::{BoxError, ProxyErrorKind, labels::DstService, route::RouteId};
use tokio::time::{Instant, Sleep, sleep};
use tower_service::Service;

use super::{MESH_RETRY_ATTEMPT, Metrics, Shared};
use crate::{
    Deadline,
    metrics::{NotRetryable, RouteRetryMetrics},
    replay::{Replay, ReplayBody, Replayable},
};

pin_project_lite::pin_project! {
    /// Sends a request, and retries it while the policy, the body, the
    /// deadline and the budget allow.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future>,
        // `None` when the request is sent once, whatever happens. Held
        // inline: measured, an allocation costs more than the moves it saves.
        retry: Option<Attempts<S, B>>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Backoff { #[pin] sleep: Sleep },
        Ready,
        Done,
    }
}

/// Everything a request needs to be sent again.
struct Attempts<S, B> {
    shared: Arc<Shared>,
    /// The service for further attempts; `None` when the request cannot be
    /// retried (and `not_retryable` says why).
    service: Option<S>,
    head: Option<Head>,
    replay: Option<Replay<B>>,
    not_retryable: Option<NotRetryable>,
    /// Attempts made so far, the first included.
    attempts: u32,
    /// The request's names, when metrics are labelled from them.
    labels: Option<(Option<DstService>, Option<RouteId>)>,
}

/// The head of the original request, to build each retry from.
pub(super) struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// The request's [`Deadline`], read once.
    deadline: Option<Deadline>,
    /// The extensions, unless the deadline was the only one: then each
    /// retry's are made from `deadline` alone. A copy of an extension map
    /// costs three allocations (the map, its table and each entry), and
    /// behind a request timeout the deadline is often all there is.
    extensions: Option<Extensions>,
}

enum Decision<R> {
    Return(Result<R, BoxError>),
    Retry(Duration),
}

type Labels = Option<(Option<DstService>, Option<RouteId>)>;

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    /// A request sent once, with no retry ever.
    pub(super) fn once(fut: S::Future) -> Self {
        Self {
            state: State::Calling { fut },
            retry: None,
        }
    }

    /// A request that will not be retried because of `reason`, which is
    /// counted if its response turns out to be a retryable failure.
    pub(super) fn unretryable(
        fut: S::Future,
        shared: Arc<Shared>,
        reason: NotRetryable,
        labels: Labels,
    ) -> Self {
        Self {
            state: State::Calling { fut },
            retry: Some(Attempts {
                shared,
                service: None,
                head: None,
                replay: None,
                not_retryable: Some(reason),
                attempts: 1,
                labels,
            }),
        }
    }

    /// A request that may be retried.
    pub(super) fn retryable(
        fut: S::Future,
        service: S,
        shared: Arc<Shared>,
        head: Head,
        replay: Replay<B>,
        labels: Labels,
    ) -> Self {
        Self {
            state: State::Calling { fut },
            retry: Some(Attempts {
                shared,
                service: Some(service),
                head: Some(head),
                replay: Some(replay),
                not_retryable: None,
                attempts: 1,
                labels,
            }),
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    // Drop the attempt before deciding, so that it no longer
                    // holds the request body.
                    this.state.set(State::Done);
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(result);
                    };
                    match retry.decide(result) {
                        Decision::Return(result) => return Poll::Ready(result),
                        Decision::Retry(delay) if delay.is_zero() => this.state.set(State::Ready),
                        Decision::Retry(delay) => this.state.set(State::Backoff {
                            sleep: sleep(delay),
                        }),
                    }
                }
                StateProj::Backoff { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let Some(req) = ready!(retry.poll_next(cx)?) else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let Some(service) = retry.service.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    this.state.set(State::Calling {
                        fut: service.call(req),
                    });
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            }
        }
    }
}

impl<S, B> Attempts<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
    S::Error: Into<BoxError>,
{
    /// Decides, from an attempt's outcome, whether to return it or retry.
    fn decide<R>(&mut self, result: Result<Response<R>, BoxError>) -> Decision<Response<R>> {
        let policy = &self.shared.policy;
        let retry_after = match &result {
            Ok(res) => match policy.retryable_response(res) {
                Some(retry_after) => retry_after,
                None => {
                    if self.attempts > 1 && policy.is_success(res) {
                        self.count(RouteRetryMetrics::success);
                    }
                    return Decision::Return(result);
                }
            },
            Err(error) if policy.retryable_error(&**error) => None,
            Err(_) => return Decision::Return(result),
        };
        if let Some(reason) = self.not_retryable {
            self.count(|m| m.not_retryable(reason));
            return Decision::Return(result);
        }
        if self.attempts >= policy.max_attempts().get() {
            self.count(RouteRetryMetrics::limit_exceeded);
            return Decision::Return(result);
        }
        // A response the upstream sent (not one the mesh made up for a
        // connection error or a per-try timeout) while the request body was
        // unfinished answered a request it had not read: sending it again
        // would not be the same request.
        let answered = matches!(
            &result,
            Ok(res) if !matches!(
                res.extensions().get::<ProxyErrorKind>(),
                Some(ProxyErrorKind::UpstreamUnreachable | ProxyErrorKind::Timeout)
            )
        );
        match self.replay.as_ref().map(Replay::replayable) {
            Some(Replayable::Complete) => {}
            Some(Replayable::Unfinished) if !answered => {}
            Some(Replayable::Unfinished | Replayable::InUse) => {
                self.count(|m| m.not_retryable(NotRetryable::StreamingResponse));
                return Decision::Return(result);
            }
            Some(Replayable::Committed) | None => {
                self.count(|m| m.not_retryable(NotRetryable::Committed));
                return Decision::Return(result);
            }
        }
        let delay = retry_after.unwrap_or_else(|| policy.backoff().delay(self.attempts));
        // One clock reading for the deadline and the budget.
        let now = Instant::now();
        let deadline = self.head.as_ref().and_then(|head| head.deadline);
        if deadline.is_some_and(|d| d.instant().saturating_duration_since(now) <= delay) {
            self.count(RouteRetryMetrics::deadline_exceeded);
            return Decision::Return(result);
        }
        if !self.shared.budget.withdraw_at(now) {
            self.count(RouteRetryMetrics::budget_exhausted);
            return Decision::Return(result);
        }
        tracing::debug!(attempt = self.attempts + 1, ?delay, "retrying request");
        Decision::Retry(delay)
    }

    /// Waits for the service, then builds the next attempt's request.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Request<ReplayBody<B>>>, BoxError>> {
        let (Some(service), Some(head), Some(replay)) = (
            self.service.as_mut(),
            self.head.as_ref(),
            self.replay.as_ref(),
        ) else {
            return Poll::Ready(Ok(None));
        };
        ready!(service.poll_ready(cx)).map_err(Into::into)?;
        self.attempts += 1;
        let req = head.request(self.attempts, replay.next_attempt());
        self.count(RouteRetryMetrics::retry);
        Poll::Ready(Ok(Some(req)))
    }

    fn count(&self, f: impl FnOnce(&RouteRetryMetrics)) {
        match &self.shared.metrics {
            Metrics::None => {}
            Metrics::Route(metrics) => f(metrics),
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

impl Head {
    pub(super) fn clone_from(parts: &request::Parts) -> Self {
        let deadline = parts.extensions.get::<Deadline>().copied();
        let only_deadline = deadline.is_some() && parts.extensions.len() == 1;
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            deadline,
            extensions: (!only_deadline).then(|| parts.extensions.clone()),
        }
    }

    /// The request for attempt number `attempt` (from 1).
    fn request<B>(&self, attempt: u32, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        match (&self.extensions, self.deadline) {
            (Some(extensions), _) => *req.extensions_mut() = extensions.clone(),
            (None, Some(deadline)) => {
                req.extensions_mut().insert(deadline);
            }
            (None, None) => {}
        }
        req.headers_mut()
            .insert(MESH_RETRY_ATTEMPT, HeaderValue::from(attempt));
        req
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.retry.as_ref().map_or(1, |r| r.attempts))
            .finish_non_exhaustive()
    }
}

/// A retry future was polled after it had completed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolledAfterCompletion;

impl fmt::Display for PolledAfterCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("retry future polled after completion")
    }
}

impl std::error::Error for PolledAfterCompletion {}
