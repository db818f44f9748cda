//! The response future of [`RouteStack`](super::RouteStack).

use std::{
    convert::Infallible,
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
        HeadOnly,
        attempts::{Attempts, BODY_RELEASE_WAIT, Decision, holds},
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
        inner: Machine<S, B, HeadOnly>,
    }
}

pin_project_lite::pin_project! {
    /// The state machine of both modes' futures: `M` says what is done
    /// with an answer before it is decided on (see [`Mode`]).
    pub(super) struct Machine<S, B, M>
    where
        S: Service<Request<ReplayBody<B>>>,
        M: Mode<S::Response>,
    {
        #[pin]
        state: State<S::Future, Result<M::Output, BoxError>, M::Held>,
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

    impl<S, B, M> PinnedDrop for Machine<S, B, M>
    where
        S: Service<Request<ReplayBody<B>>>,
        M: Mode<S::Response>,
    {
        // A retry decided on and not sent when the caller lets go goes
        // back to the budget.
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(retry) = this.retry.as_mut() {
                let releasing = matches!(this.state.as_mut().project(), StateProj::Releasing { .. });
                retry.cancel(releasing);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, R, H> {
        Calling { #[pin] fut: F },
        // The deadline had passed before anything was sent.
        Expired,
        // An outcome to decide on again once the failed attempt's client
        // lets go of the request body, or the wait for it ends.
        Releasing { last: Option<Box<R>> },
        // `last` is the outcome the retry is to replace, kept in case the
        // service fails to get ready for the retry: the caller gets it
        // then, as from the retry layer. Boxed, so that only a retry pays
        // for it; an `Option` only so that it can be taken out.
        Backoff { last: Option<Box<R>> },
        Ready { last: Option<Box<R>> },
        Done,
        // An answer held while its first frame is read. Last, and holding
        // a type with no value in the head-only mode, so that there it
        // takes no room, leaves the other states' discriminants as they
        // were, and has no code.
        Peeking { held: H },
    }
}

/// What the state machine holds in a mode of the route stack, for
/// answers of type `Res`: the types of [`Steps`], which the future's
/// fields need before its response body is known.
pub(super) trait Mode<Res> {
    /// An answer held while its first frame is read.
    type Held;
    /// The answer as it is decided on and handed on.
    type Output;
}

/// What a mode of the route stack does with an answer, whose body is `RB`,
/// before deciding on it, so that both modes run one state machine.
///
/// Every step is inlined, and the head-only mode's do nothing: its
/// [`Held`](Mode::Held) has no value, so the state that holds an answer,
/// and every branch to it, is removed from its code.
pub(super) trait Steps<RB>: Mode<Response<RB>> {
    /// An attempt's outcome as it is decided on, or the answer to hold
    /// while its first frame is read (`Err`).
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        retry: Option<&Attempts<S, B, Config>>,
    ) -> Result<Result<Self::Output, BoxError>, Self::Held>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>;

    /// Reads the held answer's first frame: the answer with it, once read.
    /// `None` if the answer was handed on already.
    fn poll_first(held: &mut Self::Held, cx: &mut Context<'_>) -> Poll<Option<Self::Output>>;

    /// The held answer, unread, when the wait for its first frame ends.
    fn unread(held: &mut Self::Held) -> Option<Self::Output>;

    /// Decides on an attempt's outcome.
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Config>,
        result: &Result<Self::Output, BoxError>,
    ) -> Decision
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>;
}

/// The default: the head decides, and the answer is handed on unread.
impl<Res> Mode<Res> for HeadOnly {
    type Held = Infallible;
    type Output = Res;
}

impl<RB> Steps<RB> for HeadOnly {
    #[inline(always)]
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        _: Option<&Attempts<S, B, Config>>,
    ) -> Result<Result<Response<RB>, BoxError>, Infallible>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        Ok(result)
    }

    #[inline(always)]
    fn poll_first(held: &mut Infallible, _: &mut Context<'_>) -> Poll<Option<Response<RB>>> {
        match *held {}
    }

    #[inline(always)]
    fn unread(held: &mut Infallible) -> Option<Response<RB>> {
        match *held {}
    }

    #[inline(always)]
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Config>,
        result: &Result<Response<RB>, BoxError>,
    ) -> Decision
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        retry.decide(result)
    }
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
            inner: Machine {
                state: State::Calling { fut },
                deadline,
                until,
                timer: None,
                idle,
                grpc,
                retry,
            },
        }
    }

    /// The answer to a request whose deadline had passed when it came.
    pub(super) fn expired(grpc: bool) -> Self {
        Self {
            inner: Machine {
                state: State::Expired,
                deadline: None,
                until: None,
                timer: None,
                idle: None,
                grpc,
                retry: None,
            },
        }
    }

    /// The same future, not polled yet, in mode `M`: what the call of a
    /// [peeking](super::RouteStackLayer::peek_grpc_trailers) stack goes on
    /// from. Not called on the head-only path.
    pub(super) fn into_mode<M: Mode<S::Response>>(self) -> Machine<S, B, M> {
        let mut from = self.inner;
        let state = match std::mem::replace(&mut from.state, State::Done) {
            State::Calling { fut } => State::Calling { fut },
            _ => State::Expired,
        };
        Machine {
            state,
            deadline: from.deadline,
            until: from.until,
            timer: None,
            idle: from.idle,
            grpc: from.grpc,
            // Taken, so that dropping `from` gives nothing back.
            retry: from.retry.take(),
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body + Default,
{
    type Output = Result<Response<TimeoutBody<RB>>, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S, B, M, RB, OB> Future for Machine<S, B, M>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    M: Steps<RB, Output = Response<OB>>,
    OB: http_body::Body + Default,
{
    type Output = Result<Response<TimeoutBody<OB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (deadline, idle, grpc) = (*this.deadline, *this.idle, *this.grpc);
        let respond = |result: Result<Response<OB>, BoxError>| {
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
                    Poll::Ready(result) => {
                        match M::outcome(result.map_err(Into::into), this.retry.as_ref()) {
                            Ok(result) => result,
                            Err(held) => {
                                // The per-try timeout (`until`) and the
                                // deadline still run: they bound the wait
                                // for the frame.
                                this.state.set(State::Peeking { held });
                                continue;
                            }
                        }
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
                StateProj::Peeking { held } => {
                    let first = match M::poll_first(held, cx) {
                        Poll::Ready(read) => read,
                        Poll::Pending => {
                            // Out of time, the per-try timeout's or the
                            // deadline's: the answer goes on unread, and
                            // its body is held to the deadline from there.
                            ready!(wait(this.timer, *this.until, deadline, cx));
                            tracing::debug!("no first frame within the attempt's time");
                            M::unread(held)
                        }
                    };
                    match first {
                        Some(res) => Ok(res),
                        None => return Poll::Ready(Err(PolledAfterCompletion.into())),
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
                        // Nothing was taken from the budget yet, but the
                        // failure went unretried for the deadline.
                        if let Some(retry) = this.retry.as_ref() {
                            retry.out_of_time_awaiting_body();
                        }
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
                StateProj::Backoff { last } => {
                    if let Woke::Deadline = ready!(wait(this.timer, *this.until, deadline, cx)) {
                        give_up_in_time(this.retry);
                        this.state.set(State::Done);
                        return timed_out();
                    }
                    *this.until = None;
                    let last = last.take();
                    this.state.set(State::Ready { last });
                    continue;
                }
                StateProj::Ready { last } => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    // The service may become ready as the deadline passes,
                    // and a backoff's timer may end just before or after
                    // it: no retry starts with no time left, or with less
                    // than the millisecond `mesh-deadline` can say.
                    let now = Instant::now();
                    if deadline.is_some_and(|deadline| !time_left(deadline, now, grpc)) {
                        retry.out_of_time();
                        this.state.set(State::Done);
                        return timed_out();
                    }
                    let next = match retry.poll_next(cx) {
                        Poll::Ready(Ok(next)) => next,
                        Poll::Ready(Err(error)) => {
                            // A service that fails to get ready (a balancer
                            // left with no endpoints, a closed connection)
                            // takes no retry: the caller gets the response
                            // the retry was to replace, as from the retry
                            // layer, since the service's error says nothing
                            // of this request, which was answered. The
                            // retry goes back to the budget, counted as
                            // `unavailable`.
                            tracing::debug!(%error, "service failed to get ready for a retry");
                            retry.unavailable();
                            let last = last.take();
                            this.state.set(State::Done);
                            return match last {
                                Some(last) => respond(*last),
                                None => Poll::Ready(Err(error)),
                            };
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
                    // Setting the state drops the response it replaces.
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
            match M::decide(retry, &result) {
                Decision::Return => return respond(result),
                Decision::AwaitBody => {
                    let now = Instant::now();
                    *this.until = Some(now.checked_add(BODY_RELEASE_WAIT).unwrap_or(now));
                    this.state.set(State::Releasing {
                        last: Some(Box::new(result)),
                    });
                }
                Decision::Retry { delay, now } => {
                    // The retry may still not be sent (the service fails
                    // to get ready): keep what the caller then gets, if it
                    // is small enough to hold (see `HELD_RESPONSE_CAP`); a
                    // larger one is dropped here, which frees its
                    // connection's window, and the readiness error
                    // answers then.
                    let last = holds(&result).then(|| Box::new(result));
                    if delay.is_zero() {
                        *this.until = None;
                        this.state.set(State::Ready { last });
                    } else {
                        // A wait past what the clock holds (an uncapped
                        // backoff and a huge `Retry-After`) ends as far
                        // out as it goes, as tokio's `sleep` does: with no
                        // instant to wake at, it never would.
                        let delay = delay.min(FAR_FUTURE);
                        *this.until = Some(now.checked_add(delay).unwrap_or(now));
                        this.state.set(State::Backoff { last });
                    }
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
        self.inner.fmt_fields(f)
    }
}

impl<S, B, M> Machine<S, B, M>
where
    S: Service<Request<ReplayBody<B>>>,
    M: Mode<S::Response>,
{
    /// The `Debug` of either mode's future.
    pub(super) fn fmt_fields(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .field("attempts", &self.retry.as_ref().map_or(1, |r| r.attempts))
            .finish_non_exhaustive()
    }
}
