use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll, ready},
    time::SystemTime,
};

use http::uri::Authority;
use hyper_util::{
    client::legacy::connect::{Connection, HttpInfo},
    rt::TokioIo,
};
use mesh_core::{BoxError, Identity};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::time::{Sleep, sleep};
use tokio_rustls::client::TlsStream;

use super::{ClientIo, ConnectError, ConnectTarget, ExpectedServer, Route, Shared};
use crate::{
    metrics::{Direction, HandshakeFailure},
    retire::{self, Authenticated, ConnState},
    store::Snapshot,
};

/// The future of a [`TlsConnector`](super::TlsConnector) connection: the
/// underlying connect, then, for mutual TLS targets, the handshake.
pub struct ConnectFuture<F, T> {
    state: State<F, T>,
}

// The handshake variant dominates the size, and it is the state the future
// spends its time in; boxing it would cost an allocation per connection.
#[allow(clippy::large_enum_variant)]
enum State<F, T> {
    Failed(Option<ConnectError>),
    // Each connect keeps the URI's authority, which the error of one
    // that fails names.
    Plaintext {
        connect: F,
        authority: Option<Authority>,
    },
    /// Plaintext by the URI, unless the connection reached an `mtls`
    /// target's address.
    Checking {
        connect: F,
        authority: Option<Authority>,
        /// Whether the URI is `https`: refused unless the connection
        /// reached an `mtls` target.
        https: bool,
        shared: Arc<Shared>,
    },
    Connecting {
        connect: F,
        authority: Option<Authority>,
        handshake: Option<Handshake>,
    },
    Handshaking {
        /// Fallible, so that a failed handshake gives the connection back
        /// to read its address from.
        tls: tokio_rustls::FallibleConnect<TokioIo<T>>,
        deadline: Pin<Box<Sleep>>,
        handshake: Option<Handshake>,
    },
    Done,
}

/// Everything a handshake needs, resolved before the connect starts.
pub(super) struct Handshake {
    identity: Identity,
    /// Where the connection goes, when known before the handshake: the
    /// address the URI names, or the one the connection reached (read
    /// when the handshake starts, for a URI naming a host or a plaintext
    /// URI). Read only when the handshake fails, for its error.
    addr: Option<SocketAddr>,
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    snapshot: Arc<Snapshot>,
    /// When the local chain stops verifying, from the time of the check.
    local_not_after: SystemTime,
    shared: Arc<Shared>,
}

impl Handshake {
    /// Checks that there are local credentials to present, inside their
    /// validity by the store's clock: an `mtls` target without them fails
    /// before it connects.
    /// Their error names `authority`, the URI's, and `identity`; the
    /// authority is copied only then.
    pub(super) fn prepare(
        shared: &Arc<Shared>,
        identity: Identity,
        addr: Option<SocketAddr>,
        authority: Option<&Authority>,
        tls: tokio_rustls::TlsConnector,
        server_name: ServerName<'static>,
    ) -> Result<Self, ConnectError> {
        let fail = |reason, error| {
            shared
                .store
                .metrics()
                .handshake_failed(Direction::Outbound, reason);
            Err(error)
        };
        let Some(snapshot) = shared.store.snapshot() else {
            let target = ConnectTarget::new(authority.cloned(), Some(identity));
            return fail(
                HandshakeFailure::NoCredentials,
                ConnectError::NoCredentials { target },
            );
        };
        let local_not_after = match snapshot.creds.usable_at(shared.store.now()) {
            Ok(until) => until,
            Err(unusable) => {
                snapshot.log_unusable(&unusable, "outbound");
                let target = ConnectTarget::new(authority.cloned(), Some(identity));
                return fail(
                    unusable.failure(),
                    ConnectError::CredentialsUnusable { target, unusable },
                );
            }
        };
        Ok(Self {
            identity,
            addr,
            tls,
            server_name,
            snapshot,
            local_not_after,
            shared: shared.clone(),
        })
    }

    fn start<F, T>(mut self, io: T) -> State<F, T>
    where
        T: hyper::rt::Read + hyper::rt::Write + Connection + Unpin,
    {
        // A URI naming a host gives no address. Read the one the
        // connection reached now: a handshake that times out does not
        // give the connection back, and its error would name no server.
        if self.addr.is_none() {
            self.addr = peer_addr(&io);
        }
        State::Handshaking {
            tls: self
                .tls
                .connect(self.server_name.clone(), TokioIo::new(io))
                .into_fallible(),
            deadline: Box::pin(sleep(self.shared.config.handshake_timeout)),
            handshake: Some(self),
        }
    }

    fn fail(&self, reason: HandshakeFailure) {
        self.shared
            .store
            .metrics()
            .handshake_failed(Direction::Outbound, reason);
    }

    /// The server this handshake is with, for its error: the address the
    /// connection reached when `io` records it.
    fn server<T: Connection>(self, io: Option<&T>) -> ExpectedServer {
        ExpectedServer {
            addr: io.and_then(peer_addr).or(self.addr),
            identity: self.identity,
        }
    }

    fn finish<T: Connection>(
        self,
        result: Result<TlsStream<TokioIo<T>>, (io::Error, TokioIo<T>)>,
    ) -> Result<ClientIo<T>, ConnectError> {
        let stream = match result {
            Ok(stream) => stream,
            Err((error, io)) => {
                let reason = HandshakeFailure::of_io(&error);
                self.fail(reason);
                let error = ConnectError::handshake(self.server(Some(io.inner())), error);
                tracing::debug!(
                    reason = reason.as_label(),
                    error = %Chain(&error),
                    "outbound tls handshake failed"
                );
                return Err(error);
            }
        };
        let local = self.local_not_after;
        // The store's clock, which found the local chain valid and which
        // rustls verified the server's at.
        let now = self.shared.store.now();
        let server_chain: Arc<[CertificateDer<'static>]> = stream
            .get_ref()
            .1
            .peer_certificates()
            .map_or_else(|| Arc::from([]), Arc::from);
        let peer = self.snapshot.peer_path_until(
            &self.shared.store,
            &server_chain,
            webpki::KeyUsage::server_auth(),
        );
        let expiry = peer.map_or(local, |peer| peer.min(local));
        let config = &self.shared.config;
        let (retire_at, close_at) = retire::deadlines(expiry, config.retire_before_expiry, now);
        let retire_at = retire::Deadline::new(
            self.shared.store.clone(),
            retire::retire_time(expiry, config.retire_before_expiry),
            retire_at,
        );
        let close_at = config.close_at_expiry.then_some((expiry, close_at));
        let authenticated = Authenticated {
            local: self.snapshot.creds.identity().clone(),
            server_chain,
            server_not_after: peer,
        };
        let state = ConnState::new(self.shared.retire.clone(), authenticated);
        if !self.snapshot.connections.register(&state) {
            // An update replaced the credentials during the handshake:
            // those now in service keep the connection or retire it.
            retire::carry_over(
                &self.shared.store,
                self.snapshot.clone(),
                vec![state.clone()],
            );
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(ClientIo::mtls(
            stream,
            self.identity,
            state,
            id,
            retire_at,
            close_at,
        ))
    }
}

impl<F, T> ConnectFuture<F, T> {
    pub(super) fn failed(error: ConnectError) -> Self {
        Self {
            state: State::Failed(Some(error)),
        }
    }

    pub(super) fn plaintext(connect: F, authority: Option<Authority>) -> Self {
        Self {
            state: State::Plaintext { connect, authority },
        }
    }

    pub(super) fn plaintext_unless_mtls(
        connect: F,
        authority: Option<Authority>,
        https: bool,
        shared: &Arc<Shared>,
    ) -> Self {
        Self {
            state: State::Checking {
                connect,
                authority,
                https,
                shared: shared.clone(),
            },
        }
    }

    pub(super) fn mtls(connect: F, authority: Option<Authority>, handshake: Handshake) -> Self {
        Self {
            state: State::Connecting {
                connect,
                authority,
                handshake: Some(handshake),
            },
        }
    }
}

impl<F, T, E> Future for ConnectFuture<F, T>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E: Into<BoxError>,
    T: hyper::rt::Read + hyper::rt::Write + Connection + Unpin,
{
    type Output = Result<ClientIo<T>, ConnectError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Failed(error) => {
                    let error = error.take().unwrap_or_else(polled_after_completion);
                    this.state = State::Done;
                    return Poll::Ready(Err(error));
                }
                State::Plaintext { connect, authority } => {
                    let result = ready!(Pin::new(connect).poll(cx));
                    let authority = authority.take();
                    this.state = State::Done;
                    return Poll::Ready(result.map(ClientIo::plain).map_err(|e| {
                        ConnectError::connect(ConnectTarget::new(authority, None), e)
                    }));
                }
                State::Checking {
                    connect,
                    authority,
                    https,
                    shared,
                } => {
                    let io = match ready!(Pin::new(connect).poll(cx)) {
                        Ok(io) => io,
                        Err(e) => {
                            let target = ConnectTarget::new(authority.take(), None);
                            this.state = State::Done;
                            return Poll::Ready(Err(ConnectError::connect(target, e)));
                        }
                    };
                    let reached = peer_addr(&io).and_then(|peer| {
                        match super::targets::mtls_endpoint(&shared.mtls_endpoints, peer)? {
                            Route::Mtls {
                                identity,
                                config,
                                server_name,
                            } => {
                                Some((peer, identity.clone(), config.clone(), server_name.clone()))
                            }
                            Route::Plaintext => None,
                        }
                    });
                    let Some((peer, identity, config, server_name)) = reached else {
                        let result = if *https {
                            // Dropping the connection closes it unwritten.
                            let target = ConnectTarget::new(authority.take(), None);
                            Err(ConnectError::HttpsInPlaintext { target })
                        } else {
                            Ok(ClientIo::plain(io))
                        };
                        this.state = State::Done;
                        return Poll::Ready(result);
                    };
                    let server_name =
                        server_name.unwrap_or_else(|| ServerName::IpAddress(peer.ip().into()));
                    let tls = tokio_rustls::TlsConnector::from(config);
                    let authority = authority.as_ref();
                    match Handshake::prepare(
                        shared,
                        identity,
                        Some(peer),
                        authority,
                        tls,
                        server_name,
                    ) {
                        Ok(handshake) => this.state = handshake.start(io),
                        Err(e) => {
                            this.state = State::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                State::Connecting {
                    connect,
                    authority,
                    handshake,
                } => {
                    let result = ready!(Pin::new(connect).poll(cx));
                    let handshake = handshake.take();
                    match (result, handshake) {
                        (Ok(io), Some(handshake)) => this.state = handshake.start(io),
                        (Err(e), handshake) => {
                            let identity = handshake.map(|h| h.identity);
                            let target = ConnectTarget::new(authority.take(), identity);
                            this.state = State::Done;
                            return Poll::Ready(Err(ConnectError::connect(target, e)));
                        }
                        (Ok(_), None) => this.state = State::Failed(None),
                    }
                }
                State::Handshaking {
                    tls,
                    deadline,
                    handshake,
                } => {
                    let result = match Pin::new(tls).poll(cx) {
                        Poll::Ready(result) => Ok(result),
                        Poll::Pending => {
                            ready!(deadline.as_mut().poll(cx));
                            Err(())
                        }
                    };
                    let Some(handshake) = handshake.take() else {
                        this.state = State::Failed(None);
                        continue;
                    };
                    this.state = State::Done;
                    return Poll::Ready(match result {
                        Ok(result) => handshake.finish(result),
                        Err(()) => {
                            handshake.fail(HandshakeFailure::Timeout);
                            let after = handshake.shared.config.handshake_timeout;
                            Err(ConnectError::Timeout {
                                server: handshake.server::<T>(None),
                                after,
                            })
                        }
                    });
                }
                State::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// The address `io` reached, as the inner connector recorded it
/// (hyper-util's `HttpConnector` does, in [`HttpInfo`]).
fn peer_addr<T: Connection>(io: &T) -> Option<SocketAddr> {
    let mut extras = http::Extensions::new();
    io.connected().get_extras(&mut extras);
    extras.get::<HttpInfo>().map(HttpInfo::remote_addr)
}

/// An error and its causes, joined as a log line reads them: what each
/// end logs of a failed handshake.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

fn polled_after_completion() -> ConnectError {
    ConnectError::connect(
        ConnectTarget::default(),
        "connect future polled after completion",
    )
}

impl<F, T> std::fmt::Debug for ConnectFuture<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Failed(_) => "failed",
            State::Plaintext { .. } => "plaintext",
            State::Checking { .. } => "checking",
            State::Connecting { .. } => "connecting",
            State::Handshaking { .. } => "handshaking",
            State::Done => "done",
        };
        f.debug_struct("ConnectFuture")
            .field("state", &state)
            .finish()
    }
}
