//! The response future of [`Retry`](super::Retry).

use std::{
    convert::Infallible,
    fmt,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use mesh_core::{BoxError, ProxyErrorKind};
use tokio::time::{Instant, Sleep, sleep};
use tower_service::Service;

use super::{
    HeadOnly, Shared,
    attempts::{Attempts, BODY_RELEASE_WAIT, Decision, Head, Labels, holds},
};
use crate::{
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
        // `None` when the request is sent once, whatever happens. Held
        // inline: measured, an allocation costs more than the moves it saves.
        retry: Option<Attempts<S, B, Shared>>,
        // What the mode needs to know of each attempt: nothing in the
        // head-only mode.
        attempt: M::Attempt,
    }

    impl<S, B, M> PinnedDrop for Machine<S, B, M>
    where
        S: Service<Request<ReplayBody<B>>>,
        M: Mode<S::Response>,
    {
        // A retry decided on and not sent when the caller lets go (during
        // its backoff, or while the service is not ready) goes back to the
        // budget; one the deadline cut off, then or while the failed
        // attempt's client held the body, is counted.
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
        // `last` is the outcome the retry is to replace, kept in case the
        // retry is not sent after all (the deadline runs out, the service
        // fails to get ready): the caller gets it then. Boxed, and held
        // here rather than beside the state, so that only a retry pays for
        // it. An `Option` only so that it can be taken out.
        Backoff { #[pin] sleep: Sleep, last: Option<Box<R>> },
        // An outcome to decide on again once the failed attempt's client
        // lets go of the request body, or `sleep` ends.
        Releasing { #[pin] sleep: Sleep, last: Option<Box<R>> },
        Ready { last: Option<Box<R>> },
        // The request's deadline had passed when it came: nothing is sent.
        Expired { grpc: bool },
        Done,
        // An answer held while its first frame is read. Last, and holding
        // a type with no value in the head-only mode, so that there it
        // takes no room, leaves the other states' discriminants as they
        // were, and has no code.
        Peeking { #[pin] held: H },
    }
}

/// What the state machine holds in a mode of [`Retry`](super::Retry), for
/// answers of type `Res`: the types of [`Steps`], which the future's
/// fields need before its response body is known.
pub(super) trait Mode<Res> {
    /// An answer held while its first frame is read.
    type Held;
    /// The answer as it is decided on and handed on.
    type Output;
    /// What the mode keeps of the current attempt.
    type Attempt;
}

/// What a mode of [`Retry`](super::Retry) does with an answer, whose body
/// is `RB`, before deciding on it, so that both modes run one state
/// machine.
///
/// Every step is inlined, and the head-only mode's do nothing: its
/// [`Held`](Mode::Held) has no value, so the state that holds an answer,
/// and every branch to it, is removed from its code.
pub(super) trait Steps<RB>: Mode<Response<RB>> {
    /// An attempt's outcome as it is decided on, or the answer to hold
    /// while its first frame is read (`Err`).
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        retry: Option<&Attempts<S, B, Shared>>,
        attempt: &Self::Attempt,
    ) -> Result<Result<Self::Output, BoxError>, Self::Held>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>;

    /// Reads the held answer's first frame, within the wait the mode
    /// allows: the answer with it, or unread when the wait ended first.
    /// `None` if the answer was handed on already.
    fn poll_first(held: Pin<&mut Self::Held>, cx: &mut Context<'_>) -> Poll<Option<Self::Output>>;

    /// A further attempt is sent.
    fn starts(attempt: &mut Self::Attempt);

    /// Decides on an attempt's outcome.
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Shared>,
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
    type Attempt = ();
}

impl<RB> Steps<RB> for HeadOnly {
    #[inline(always)]
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        _: Option<&Attempts<S, B, Shared>>,
        (): &(),
    ) -> Result<Result<Response<RB>, BoxError>, Infallible>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        Ok(result)
    }

    #[inline(always)]
    fn poll_first(held: Pin<&mut Infallible>, _: &mut Context<'_>) -> Poll<Option<Response<RB>>> {
        match *held.get_mut() {}
    }

    #[inline(always)]
    fn starts((): &mut ()) {}

    #[inline(always)]
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Shared>,
        result: &Result<Response<RB>, BoxError>,
    ) -> Decision
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        retry.decide(result)
    }
}

/// How a [`Retry`](super::Retry) of a mode other than
/// [`HeadOnly`](super::HeadOnly) makes its future.
pub(crate) trait Start<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    /// A request sent once, with no retry ever.
    fn once(fut: S::Future) -> Self;

    /// The answer to a request whose deadline had passed when it came.
    fn expired(grpc: bool) -> Self;

    /// A request sent by `fut`, at `now`, whose further attempts `retry`
    /// keeps (it says when there are none).
    fn attempts(fut: S::Future, retry: Attempts<S, B, Shared>, now: Instant) -> Self;
}

impl<S, B, M> Machine<S, B, M>
where
    S: Service<Request<ReplayBody<B>>>,
    M: Mode<S::Response>,
{
    /// A request sent by `fut`, whose further attempts `retry` keeps, if
    /// it may have any.
    pub(super) fn calling(
        fut: S::Future,
        retry: Option<Attempts<S, B, Shared>>,
        attempt: M::Attempt,
    ) -> Self {
        Self {
            state: State::Calling { fut },
            retry,
            attempt,
        }
    }

    /// The answer to a request whose deadline had passed when it came.
    pub(super) fn expired(grpc: bool, attempt: M::Attempt) -> Self {
        Self {
            state: State::Expired { grpc },
            retry: None,
            attempt,
        }
    }

    /// What the mode keeps of the current attempt.
    pub(super) fn attempt(&self) -> &M::Attempt {
        &self.attempt
    }

    /// The same, to change before the future is first polled.
    pub(super) fn attempt_mut(&mut self) -> &mut M::Attempt {
        &mut self.attempt
    }

    /// How many attempts were made, for `Debug`.
    pub(super) fn attempts(&self) -> u32 {
        self.retry.as_ref().map_or(1, |r| r.attempts)
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>>,
{
    /// A request sent once, with no retry ever.
    pub(super) fn once(fut: S::Future) -> Self {
        Self {
            inner: Machine::calling(fut, None, ()),
        }
    }

    /// The answer to a request whose deadline had passed when it came.
    pub(super) fn expired(grpc: bool) -> Self {
        Self {
            inner: Machine::expired(grpc, ()),
        }
    }

    /// A request that will not be retried because of `reason`, which is
    /// counted if its response turns out to be a retryable failure (see
    /// [`Attempts::unretryable`] for `unprocessed_only`).
    pub(super) fn unretryable(
        fut: S::Future,
        shared: Arc<Shared>,
        reason: NotRetryable,
        unprocessed_only: bool,
        grpc: bool,
        labels: Labels,
    ) -> Self {
        let retry = Attempts::unretryable(shared, reason, unprocessed_only, grpc, labels);
        Self {
            inner: Machine::calling(fut, Some(retry), ()),
        }
    }

    /// A request that may be retried: after any retryable failure, or only
    /// after one the upstream did not process when `unprocessed_only`.
    /// `grpc` says whether it is a gRPC call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn retryable(
        fut: S::Future,
        service: S,
        shared: Arc<Shared>,
        head: Head,
        replay: Replay<B>,
        unprocessed_only: bool,
        grpc: bool,
        labels: Labels,
    ) -> Self {
        let retry = Attempts::retryable(
            shared,
            service,
            head,
            replay,
            unprocessed_only,
            grpc,
            labels,
        );
        Self {
            inner: Machine::calling(fut, Some(retry), ()),
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: http_body::Body + Default,
{
    type Output = Result<Response<RB>, BoxError>;

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
    type Output = Result<Response<OB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // An attempt's outcome, the first time or again after waiting
            // for its client to let go of the body: decided on below, in
            // one place.
            let result = match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    match M::outcome(result, this.retry.as_ref(), this.attempt) {
                        Ok(result) => result,
                        Err(held) => {
                            this.state.set(State::Peeking { held });
                            continue;
                        }
                    }
                }
                StateProj::Peeking { held } => match ready!(M::poll_first(held, cx)) {
                    Some(res) => Ok(res),
                    None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                },
                StateProj::Releasing { sleep, last } => {
                    let released = this
                        .retry
                        .as_ref()
                        .is_none_or(|retry| retry.poll_released(cx).is_ready());
                    if !released {
                        ready!(sleep.poll(cx));
                    }
                    match last.take() {
                        Some(last) => *last,
                        None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                    }
                }
                StateProj::Backoff { sleep, last } => {
                    ready!(sleep.poll(cx));
                    let last = last.take();
                    this.state.set(State::Ready { last });
                    continue;
                }
                StateProj::Ready { last } => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    // A service that fails to get ready (a balancer left
                    // with no endpoints, a closed connection) takes no
                    // retry: the caller gets the response the retry was to
                    // replace, the retry goes back to the budget, and it is
                    // counted as `unavailable` (see the module docs).
                    if let Err(error) = ready!(retry.poll_ready(cx)) {
                        tracing::debug!(%error, "service failed to get ready for a retry");
                        retry.unavailable();
                        let last = last.take();
                        this.state.set(State::Done);
                        return Poll::Ready(match last {
                            Some(last) => *last,
                            None => Err(error),
                        });
                    }
                    // The copied head says how much time was left when the
                    // first attempt was sent; say how much is left now. The
                    // backoff's timer (which fires on a whole millisecond)
                    // or the service may have taken the rest: then no
                    // attempt goes upstream with no time left, and the
                    // caller gets the response the retry was to replace.
                    if !retry.refresh_deadline() {
                        retry.out_of_time();
                        let last = last.take();
                        let grpc = retry.grpc;
                        this.state.set(State::Done);
                        // A response too large to hold was dropped: the
                        // mesh's timeout answers for it, as the route
                        // stack's does.
                        return Poll::Ready(match last {
                            Some(last) => *last,
                            None => Ok(ProxyErrorKind::Timeout.response_for(grpc)),
                        });
                    }
                    let Some(req) = retry.next_request() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let Some(service) = retry.service.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    M::starts(this.attempt);
                    // Setting the state drops the response it replaces.
                    this.state.set(State::Calling {
                        fut: service.call(req),
                    });
                    continue;
                }
                StateProj::Expired { grpc } => {
                    let grpc = *grpc;
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(grpc)));
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            };
            // Drop the attempt before deciding, so that it no longer holds
            // the request body.
            this.state.set(State::Done);
            let Some(retry) = this.retry.as_mut() else {
                return Poll::Ready(result);
            };
            match M::decide(retry, &result) {
                Decision::Return => return Poll::Ready(result),
                Decision::AwaitBody => this.state.set(State::Releasing {
                    sleep: sleep(BODY_RELEASE_WAIT),
                    last: Some(Box::new(result)),
                }),
                Decision::Retry { delay, .. } => {
                    // The retry may still not be sent (the deadline runs
                    // out, the service fails to get ready): keep what the
                    // caller then gets, if it is small enough to hold
                    // (see `HELD_RESPONSE_CAP`); a larger one is dropped
                    // here, which frees its connection's window.
                    let last = holds(&result).then(|| Box::new(result));
                    if delay.is_zero() {
                        this.state.set(State::Ready { last });
                    } else {
                        this.state.set(State::Backoff {
                            sleep: sleep(delay),
                            last,
                        });
                    }
                }
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
            .field("attempts", &self.inner.attempts())
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
