//! The response future of a [`RouteStack`](super::RouteStack) that
//! [peeks](super::RouteStackLayer::peek_grpc_trailers).
//!
//! # Why a future of its own
//!
//! A gRPC server may fail a call with an ordinary head followed at once by
//! trailers carrying the status (see [`retry::peek`](crate::retry::peek)).
//! Retrying that means reading the first frame of the answer before
//! deciding on it, and handing that frame on first when it is not
//! retried: the response body becomes a [`PeekBody`], and the future gains
//! a state that holds an answer while its first frame is read. The
//! head-only stack's future, which every route's plain requests go
//! through, is left as it was; this one starts from it, unpolled, and
//! decides as it does but for that state.

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use mesh_core::{BoxError, ProxyErrorKind};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{
    Config,
    future::{self as head_only, Woke, give_up_in_time, wait},
};
use crate::{
    deadline::{FAR_FUTURE, time_left},
    replay::ReplayBody,
    retry::{
        PeekBody,
        attempts::{Attempts, BODY_RELEASE_WAIT, Decision},
        future::PolledAfterCompletion,
    },
    timeout::{TimeoutBody, attempt::start_attempt},
};

pin_project_lite::pin_project! {
    /// Sends a request, reads the first frame of a gRPC answer that could
    /// be retried for its trailers, and retries while the policy, the
    /// body, the deadline and the budget allow; holds each attempt to its
    /// per-try timeout (its first frame included, when one is read) and
    /// the whole to the deadline.
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        RB: Body,
    {
        #[pin]
        state: State<S::Future, Response<RB>, Result<Response<PeekBody<RB>>, BoxError>>,
        deadline: Option<Instant>,
        // The end of the current attempt's per-try timeout, or of the
        // backoff.
        until: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        idle: Option<Duration>,
        grpc: bool,
        retry: Option<Attempts<S, B, Config>>,
    }

    impl<S, B, RB> PinnedDrop for ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        RB: Body,
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
    enum State<F, Res, R> {
        Calling { #[pin] fut: F },
        // An answer held while its first frame is read.
        Peeking { res: Option<Res> },
        Expired,
        Releasing { last: Option<Box<R>> },
        Backoff,
        Ready,
        Done,
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    /// Goes on from the head-only stack's future, not polled yet.
    pub(super) fn new(from: head_only::ResponseFuture<S, B>) -> Self {
        let from = from.into_unpolled();
        Self {
            state: match from.fut {
                Some(fut) => State::Calling { fut },
                None => State::Expired,
            },
            deadline: from.deadline,
            until: from.until,
            timer: None,
            idle: from.idle,
            grpc: from.grpc,
            retry: from.retry,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body + Default + Unpin,
{
    type Output = Result<Response<TimeoutBody<PeekBody<RB>>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (deadline, idle, grpc) = (*this.deadline, *this.idle, *this.grpc);
        let respond = |result: Result<Response<PeekBody<RB>>, BoxError>| {
            Poll::Ready(result.map(|res| res.map(|b| TimeoutBody::new(b, deadline, idle, grpc))))
        };
        let timed_out = || {
            tracing::debug!("request deadline passed before the response");
            Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(grpc)))
        };
        loop {
            let result = match this.state.as_mut().project() {
                StateProj::Calling { fut } => match fut.poll(cx) {
                    Poll::Ready(Ok(res))
                        if this.retry.as_ref().is_some_and(|retry| retry.peeks(&res)) =>
                    {
                        // The per-try timeout (`until`) and the deadline
                        // still run: they bound the wait for the frame.
                        this.state.set(State::Peeking { res: Some(res) });
                        continue;
                    }
                    Poll::Ready(result) => {
                        result.map(|res| res.map(PeekBody::new)).map_err(Into::into)
                    }
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
                StateProj::Peeking { res } => {
                    let Some(held) = res.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    match Pin::new(held.body_mut()).poll_frame(cx) {
                        Poll::Ready(first) => match res.take() {
                            Some(held) => Ok(held.map(|body| PeekBody::peeked(body, first))),
                            None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                        },
                        Poll::Pending => {
                            // Out of time, the per-try timeout's or the
                            // deadline's: the answer goes on unread, and
                            // its body is held to the deadline from there.
                            ready!(wait(this.timer, *this.until, deadline, cx));
                            tracing::debug!("no first frame within the attempt's time");
                            match res.take() {
                                Some(held) => Ok(held.map(PeekBody::new)),
                                None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                            }
                        }
                    }
                }
                StateProj::Releasing { last } => {
                    let released = this
                        .retry
                        .as_ref()
                        .is_none_or(|retry| retry.poll_released(cx).is_ready());
                    if !released
                        && let Woke::Deadline = ready!(wait(this.timer, *this.until, deadline, cx))
                    {
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
            let trailers = result
                .as_ref()
                .ok()
                .and_then(|res| res.body().peeked_trailers());
            match retry.decide_peeked(&result, trailers) {
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
                    let delay = delay.min(FAR_FUTURE);
                    *this.until = Some(now.checked_add(delay).unwrap_or(now));
                    this.state.set(State::Backoff);
                }
            }
        }
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .field("attempts", &self.retry.as_ref().map_or(1, |r| r.attempts))
            .finish_non_exhaustive()
    }
}
