//! The response future of [`RouteStack`](super::RouteStack).

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use mesh_core::{BoxError, ProxyErrorKind};
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use super::Config;
use crate::{
    deadline::{FAR_FUTURE, time_left},
    replay::ReplayBody,
    retry::{
        attempts::{Attempts, BODY_RELEASE_WAIT, Decision},
        future::PolledAfterCompletion,
    },
    timeout::{TimeoutBody, attempt::start_attempt},
};

pin_project_lite::pin_project! {
    /// Sends a request, and retries it while the policy, the body, the
    /// deadline and the budget allow; holds each attempt to its per-try
    /// timeout and the whole to the deadline.
    ///
    /// One timer serves every wait (an attempt, the backoff, the service
    /// becoming ready again): it is made the first time something has to
    /// be waited for, and moved to the next instant after that.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future, Result<S::Response, BoxError>>,
        deadline: Option<Instant>,
        // The end of the current attempt's per-try timeout, or of the
        // backoff.
        until: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        idle: Option<Duration>,
        grpc: bool,
        // `None` when the request is sent once, whatever happens. Held
        // inline: measured, an allocation costs more than the moves it saves.
        retry: Option<Attempts<S, B, Config>>,
    }

    impl<S, B> PinnedDrop for ResponseFuture<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        // A retry decided on and not sent when the caller lets go goes
        // back to the budget.
        fn drop(this: Pin<&mut Self>) {
            if let Some(retry) = this.project().retry.as_mut() {
                retry.cancel();
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Calling { #[pin] fut: F },
        // The deadline had passed before anything was sent.
        Expired,
        // An outcome to decide on again once the failed attempt's client
        // lets go of the request body, or the wait for it ends.
        Releasing { last: Option<Box<R>> },
        Backoff,
        Ready,
        Done,
    }
}

/// A [`ResponseFuture`] not polled yet, taken apart: see
/// [`ResponseFuture::into_unpolled`].
pub(super) struct Unpolled<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fut: Option<S::Future>,
    pub(super) deadline: Option<Instant>,
    pub(super) until: Option<Instant>,
    pub(super) idle: Option<Duration>,
    pub(super) grpc: bool,
    pub(super) retry: Option<Attempts<S, B, Config>>,
}

/// Which of the instants a wait ended at.
pub(super) enum Woke {
    /// The per-try timeout, or the end of the backoff.
    Until,
    /// The request's deadline.
    Deadline,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(super) fn new(
        fut: S::Future,
        deadline: Option<Instant>,
        until: Option<Instant>,
        idle: Option<Duration>,
        grpc: bool,
        retry: Option<Attempts<S, B, Config>>,
    ) -> Self {
        Self {
            state: State::Calling { fut },
            deadline,
            until,
            timer: None,
            idle,
            grpc,
            retry,
        }
    }

    /// What a future not polled yet holds, for the future of a
    /// [peeking](super::RouteStackLayer::peek_grpc_trailers) stack to go on
    /// from: the first attempt (`None` when the deadline had passed), and
    /// the rest. Not called on the head-only path.
    pub(super) fn into_unpolled(mut self) -> Unpolled<S, B> {
        let fut = match std::mem::replace(&mut self.state, State::Done) {
            State::Calling { fut } => Some(fut),
            _ => None,
        };
        Unpolled {
            fut,
            deadline: self.deadline,
            until: self.until,
            idle: self.idle,
            grpc: self.grpc,
            // Taken, so that dropping `self` gives nothing back.
            retry: self.retry.take(),
        }
    }

    /// The answer to a request whose deadline had passed when it came.
    pub(super) fn expired(grpc: bool) -> Self {
        Self {
            state: State::Expired,
            deadline: None,
            until: None,
            timer: None,
            idle: None,
            grpc,
            retry: None,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Default,
{
    type Output = Result<Response<TimeoutBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (deadline, idle, grpc) = (*this.deadline, *this.idle, *this.grpc);
        let respond = |result: Result<Response<RB>, BoxError>| {
            Poll::Ready(result.map(|res| res.map(|b| TimeoutBody::new(b, deadline, idle, grpc))))
        };
        let timed_out = || {
            tracing::debug!("request deadline passed before the response");
            Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(grpc)))
        };
        loop {
            // An attempt's outcome, the first time or again after waiting
            // for its client to let go of the body: decided on below, in
            // one place.
            let result = match this.state.as_mut().project() {
                StateProj::Calling { fut } => match fut.poll(cx) {
                    Poll::Ready(result) => result.map_err(Into::into),
                    Poll::Pending => match ready!(wait(this.timer, *this.until, deadline, cx)) {
                        Woke::Until => {
                            tracing::debug!("attempt timed out before its response");
                            Ok(ProxyErrorKind::Timeout.response_for(grpc))
                        }
                        Woke::Deadline => {
                            this.state.set(State::Done);
                            return timed_out();
                        }
                    },
                },
                StateProj::Releasing { last } => {
                    let released = this
                        .retry
                        .as_ref()
                        .is_none_or(|retry| retry.poll_released(cx).is_ready());
                    if !released
                        && let Woke::Deadline = ready!(wait(this.timer, *this.until, deadline, cx))
                    {
                        // Nothing was taken from the budget yet.
                        this.state.set(State::Done);
                        return timed_out();
                    }
                    *this.until = None;
                    match last.take() {
                        Some(last) => *last,
                        None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                    }
                }
                StateProj::Expired => {
                    this.state.set(State::Done);
                    return timed_out();
                }
                StateProj::Backoff => {
                    if let Woke::Deadline = ready!(wait(this.timer, *this.until, deadline, cx)) {
                        give_up_in_time(this.retry);
                        this.state.set(State::Done);
                        return timed_out();
                    }
                    *this.until = None;
                    this.state.set(State::Ready);
                    continue;
                }
                StateProj::Ready => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    // The service may become ready as the deadline passes,
                    // and a backoff's timer may end just before or after
                    // it: no attempt starts with no time left, or told
                    // `mesh-deadline: 0`.
                    let now = Instant::now();
                    if deadline.is_some_and(|deadline| !time_left(deadline, now, grpc)) {
                        retry.out_of_time();
                        this.state.set(State::Done);
                        return timed_out();
                    }
                    let next = match retry.poll_next(cx) {
                        Poll::Ready(Ok(next)) => next,
                        Poll::Ready(Err(error)) => {
                            retry.give_up(None);
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                        Poll::Pending => {
                            // Only the deadline can end this wait.
                            ready!(wait(this.timer, None, deadline, cx));
                            retry.out_of_time();
                            this.state.set(State::Done);
                            return timed_out();
                        }
                    };
                    let Some(mut req) = next else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    *this.until = start_attempt(
                        req.headers_mut(),
                        now,
                        deadline,
                        retry.config().per_try.as_ref(),
                        grpc,
                    );
                    let Some(service) = retry.service.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    this.state.set(State::Calling {
                        fut: service.call(req),
                    });
                    continue;
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            };
            // Drop the attempt before deciding, so that it no longer holds
            // the request body.
            this.state.set(State::Done);
            let Some(retry) = this.retry.as_mut() else {
                return respond(result);
            };
            match retry.decide(&result) {
                Decision::Return => return respond(result),
                Decision::AwaitBody => {
                    let now = Instant::now();
                    *this.until = Some(now.checked_add(BODY_RELEASE_WAIT).unwrap_or(now));
                    this.state.set(State::Releasing {
                        last: Some(Box::new(result)),
                    });
                }
                Decision::Retry { delay, .. } if delay.is_zero() => {
                    *this.until = None;
                    this.state.set(State::Ready);
                }
                Decision::Retry { delay, now } => {
                    // A wait past what the clock holds (an uncapped
                    // backoff and a huge `Retry-After`) ends as far out as
                    // it goes, as tokio's `sleep` does: with no instant to
                    // wake at, it never would.
                    let delay = delay.min(FAR_FUTURE);
                    *this.until = Some(now.checked_add(delay).unwrap_or(now));
                    this.state.set(State::Backoff);
                }
            }
        }
    }
}

/// Gives up a retry whose backoff the deadline cut short, as the retry
/// layer does when it finds no time left once the backoff is over.
pub(super) fn give_up_in_time<S, B>(retry: &mut Option<Attempts<S, B, Config>>) {
    if let Some(retry) = retry.as_mut() {
        retry.out_of_time();
    }
}

/// Waits until the nearer of `until` and `deadline`, on `timer`, which is
/// made or moved as needed. With neither, waits for ever: only the inner
/// future can end the wait.
pub(super) fn wait(
    timer: &mut Option<Pin<Box<Sleep>>>,
    until: Option<Instant>,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<Woke> {
    let at = match (until, deadline) {
        (Some(until), Some(deadline)) => until.min(deadline),
        (Some(at), None) | (None, Some(at)) => at,
        (None, None) => return Poll::Pending,
    };
    if let Some(timer) = timer.as_mut()
        && timer.deadline() != at
    {
        timer.as_mut().reset(at);
    }
    let timer = timer.get_or_insert_with(|| Box::pin(sleep_until(at)));
    ready!(timer.as_mut().poll(cx));
    // A per-try timeout that ends with the deadline is an attempt's
    // timeout, which the retry layer sees first, as when the layers were
    // stacked.
    Poll::Ready(if until.is_some_and(|until| until <= at) {
        Woke::Until
    } else {
        Woke::Deadline
    })
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .field("attempts", &self.retry.as_ref().map_or(1, |r| r.attempts))
            .finish_non_exhaustive()
    }
}
