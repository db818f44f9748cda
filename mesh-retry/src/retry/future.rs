//! The response future of [`Retry`](super::Retry).

use std::{
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use mesh_core::BoxError;
use tokio::time::{Sleep, sleep};
use tower_service::Service;

use super::{
    Shared,
    attempts::{Attempts, Decision, Head, Labels},
};
use crate::{
    deadline,
    metrics::NotRetryable,
    replay::{Replay, ReplayBody},
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
        retry: Option<Attempts<S, B, Shared>>,
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
            retry: Some(Attempts::unretryable(shared, reason, labels)),
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
            retry: Some(Attempts::retryable(shared, service, head, replay, labels)),
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
                    match retry.decide(&result) {
                        Decision::Return => return Poll::Ready(result),
                        Decision::Retry { delay, .. } if delay.is_zero() => {
                            this.state.set(State::Ready);
                        }
                        Decision::Retry { delay, .. } => this.state.set(State::Backoff {
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
                    let Some(mut req) = ready!(retry.poll_next(cx)?) else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    // The copied head says how much time was left when the
                    // first attempt was sent; say how much is left now.
                    if let Some(deadline) = retry.deadline() {
                        deadline::refresh(req.headers_mut(), deadline);
                    }
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
