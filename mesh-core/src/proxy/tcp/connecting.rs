//! Connecting to an endpoint before there is a client connection to
//! join it with.
//!
//! A `CONNECT` tunnel must know whether its target can be reached before
//! it answers: a `200` promises a tunnel, and only an error status can
//! tell the client it has none. [`ForwardTcp::connect`] does the connect
//! half of [`ForwardTcp`]'s work (the pick, the timeout, the balancer's
//! accounting) and hands back a [`Connected`] endpoint, which
//! [`Connected::forward`] later joins with the client's connection.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::Uri;
use tokio::time::{Timeout, error::Elapsed};
use tower::Service;

use super::{ConnectFailed, ForwardTcp, Waiting, endpoint_uri, pipe};
use crate::{
    error::BoxError,
    proxy::{
        balance::{Established, Pending, Picked},
        forward::{
            NoEndpoints,
            failure::{Chain, DisplayOr},
        },
    },
    serve::OpaqueConnection,
};

impl<C> ForwardTcp<C>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
{
    /// Picks an endpoint and connects to it, as a forwarded connection
    /// would, without a client connection yet: the future ends with the
    /// endpoint connected, or why it is not ([`NoEndpoints`],
    /// [`ConnectFailed`], or the connector's readiness error). The
    /// connector is driven to readiness first.
    ///
    /// The connect counts as in flight against its endpoint, and its
    /// outcome is the endpoint's sample, as for [`call`](Service::call);
    /// once connected, the [`Connected`] endpoint and then the connection
    /// it forwards keep counting until they end. A future dropped before
    /// the connect ends counts the time it waited as the endpoint's
    /// latency sample, and no failure.
    pub fn connect(self) -> Connecting<C, C::Future> {
        self.connect_for(None)
    }

    /// [`connect`](Self::connect) for the client at `peer`, whom the logs
    /// of a failed connect name.
    pub(crate) fn connect_for(self, peer: Option<SocketAddr>) -> Connecting<C, C::Future> {
        Connecting {
            peer,
            state: State::Ready {
                forward: Some(self),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ForwardTcp::connect`].
    pub struct Connecting<C, F> {
        // The client the connect is for, when known, for the logs.
        peer: Option<SocketAddr>,
        #[pin]
        state: State<C, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<C, F> {
        Ready {
            forward: Option<ForwardTcp<C>>,
        },
        // No endpoint was ready: boxed, as only such a connect has it.
        Waiting {
            waiting: Box<Waiting<C>>,
        },
        Connecting {
            #[pin]
            connect: Timeout<F>,
            endpoint: Picked,
            // Counted against the endpoint; once connected, the count
            // passes to the `Connected`.
            pending: Option<Pending>,
        },
        Done,
    }
}

impl<C, F> fmt::Debug for Connecting<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "ready",
            State::Waiting { .. } => "waiting for an endpoint",
            State::Connecting { endpoint, .. } => endpoint.authority().as_str(),
            State::Done => "done",
        };
        f.debug_struct("Connecting").field("state", &state).finish()
    }
}

impl<C, IO> Future for Connecting<C, C::Future>
where
    C: Service<Uri, Response = IO>,
    C::Error: Into<BoxError>,
{
    type Output = Result<Connected<IO>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Ready { forward: slot } => {
                    let Some(forward) = slot.as_mut() else {
                        return Poll::Ready(Err(NoEndpoints.into()));
                    };
                    if let Err(error) = ready!(forward.connector.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error.into()));
                    }
                    match forward.endpoints.current().pick_connection() {
                        Some((endpoint, pending)) => {
                            let connect =
                                forward.connector.call(endpoint_uri(endpoint.authority()));
                            State::Connecting {
                                connect: tokio::time::timeout(forward.connect_timeout, connect),
                                endpoint,
                                pending,
                            }
                        }
                        None => {
                            let Some(forward) = slot.take() else {
                                return Poll::Ready(Err(NoEndpoints.into()));
                            };
                            match Waiting::admit(forward) {
                                Ok(waiting) => State::Waiting {
                                    waiting: Box::new(waiting),
                                },
                                Err(refused) => {
                                    super::waiting::log_refused(refused, None);
                                    this.state.set(State::Done);
                                    return Poll::Ready(Err(refused.into_error()));
                                }
                            }
                        }
                    }
                }
                StateProj::Waiting { waiting } => match ready!(waiting.poll_pick(cx)) {
                    Ok((endpoint, pending)) => {
                        let forward = &mut waiting.forward;
                        let connect = forward.connector.call(endpoint_uri(endpoint.authority()));
                        State::Connecting {
                            connect: tokio::time::timeout(forward.connect_timeout, connect),
                            endpoint,
                            pending,
                        }
                    }
                    Err(refused) => {
                        super::waiting::log_refused(refused, None);
                        this.state.set(State::Done);
                        return Poll::Ready(Err(refused.into_error()));
                    }
                },
                StateProj::Connecting {
                    connect,
                    endpoint,
                    pending,
                } => {
                    let result = ready!(connect.poll(cx));
                    let result = settle(result, endpoint, pending.take(), *this.peer);
                    let endpoint = endpoint.clone();
                    this.state.set(State::Done);
                    return Poll::Ready(match result {
                        Ok((upstream, load)) => Ok(Connected {
                            upstream,
                            endpoint,
                            load,
                        }),
                        Err(failed) => Err(failed.into()),
                    });
                }
                StateProj::Done => return Poll::Ready(Err(NoEndpoints.into())),
            };
            this.state.set(next);
        }
    }
}

/// The outcome of a connect to `endpoint` for the client at `peer`,
/// counted against the endpoint: the connection, with its count against
/// the endpoint to hold until it ends, or why there is none.
///
/// A failed connect is logged here, for both a forwarded connection and
/// a `CONNECT` tunnel: at `warn` when it begins a streak of them (the
/// first since the endpoint last took a connection, or joined), at
/// `debug` for the rest of the streak, as [`Forward`](crate::proxy::Forward)
/// logs a request's failed connect. A connect made ends the streak.
pub(super) fn settle<IO, E: Into<BoxError>>(
    result: Result<Result<IO, E>, Elapsed>,
    endpoint: &Picked,
    pending: Option<Pending>,
    peer: Option<SocketAddr>,
) -> Result<(IO, Option<Established>), ConnectFailed> {
    let error = match result {
        Ok(Ok(upstream)) => {
            endpoint.answered();
            return Ok((upstream, pending.map(Pending::connected)));
        }
        Ok(Err(error)) => error.into(),
        Err(elapsed) => elapsed.into(),
    };
    if let Some(pending) = pending {
        pending.failed();
    }
    let failed = ConnectFailed::new(endpoint.addr(), error);
    let peer = DisplayOr(peer);
    let error = Chain(&*failed.source);
    let timeout = failed.is_timeout();
    if endpoint.connect_failed() {
        tracing::warn!(%peer, %endpoint, %error, timeout, "cannot connect to the endpoint");
    } else {
        tracing::debug!(%peer, %endpoint, %error, timeout, "cannot connect to the endpoint");
    }
    Err(failed)
}

/// An endpoint [`ForwardTcp::connect`] connected to, waiting for the
/// client connection to [`forward`](Self::forward) to it.
/// Until then, and while it forwards, the connection counts against the
/// endpoint.
pub struct Connected<IO> {
    upstream: IO,
    endpoint: Picked,
    load: Option<Established>,
}

impl<IO> fmt::Debug for Connected<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connected")
            .field("endpoint", &self.endpoint.authority())
            .finish_non_exhaustive()
    }
}

impl<IO> Connected<IO>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    /// The endpoint connected to.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// Copies bytes between `client` and the endpoint until both
    /// directions are done or either side fails, as [`ForwardTcp`] does.
    pub fn forward(
        self,
        client: OpaqueConnection,
    ) -> impl Future<Output = Result<(), BoxError>> + Send + 'static {
        pipe(
            client.io,
            self.upstream,
            client.info,
            self.endpoint,
            self.load,
        )
    }
}
