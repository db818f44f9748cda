use std::{
    future::{Ready, ready},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{Service, ServiceExt, util::Oneshot};
use tracing::Instrument;

use super::{
    Accept, HttpVersion, Protocol, Retirement, Shared, Shutdown,
    accept::Close,
    builders::{self, InSpan, bounded},
    errors::{ConnectionError, ConnectionErrorKind},
    idle::{
        StreamIdle,
        body::IdleBody,
        future::{Answer, IdleFuture},
        reads::{Handover, LastRead, Opened, Watched},
        resets::{Flooded, RapidReset, ResetBound, Resets},
    },
    lease::{Cut, Lease, Leased},
    on_wake::OnWake,
    stall::WriteStall,
};
use crate::{
    conn::{ConnectionInfo, Tls},
    detect::{DetectError, Detected, detect},
    error::{BoxError, is_grpc},
    io::{BoxIo, PrefixedIo},
};

/// A connection handed to the opaque handler: its bytes, exactly as the peer
/// sent them (any that detection read are replayed), and where it came from.
///
/// The server bounds the connection while the handler's future runs: it
/// keeps its place under the connection limit, is cut when the shutdown
/// grace period ends, and is closed at its retirement close time. A
/// handler should therefore serve the connection in its future; one that
/// spawns the work and returns escapes all three.
pub struct OpaqueConnection {
    /// The stream, after the accept hook (so possibly decrypted TLS).
    pub io: BoxIo,
    /// The connection's addresses and TLS status.
    pub info: ConnectionInfo,
}

impl std::fmt::Debug for OpaqueConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaqueConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// An opaque handler that closes every connection it is given: the default
/// of HTTP-only servers.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefuseOpaque;

impl Service<OpaqueConnection> for RefuseOpaque {
    type Response = ();
    type Error = BoxError;
    type Future = Ready<Result<(), BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _conn: OpaqueConnection) -> Self::Future {
        // The server's connection span names the peer.
        tracing::debug!("closing a connection that is not HTTP");
        ready(Ok(()))
    }
}

pub(super) struct Connection<A, S, O> {
    pub(super) shared: Arc<Shared>,
    pub(super) accept: A,
    pub(super) http: S,
    pub(super) opaque: O,
    pub(super) shutdown: Shutdown,
    /// The connection's place under the limit, held until the connection
    /// and any tunnel it was upgraded to are done.
    pub(super) lease: Lease,
}

/// A connection the accept hook and detection are done with: to be
/// served as HTTP, or handed to the opaque handler.
enum Prepared<I> {
    Http(HttpVersion, PrefixedIo<I>, ConnectionInfo, Retirement),
    Opaque(PrefixedIo<I>, ConnectionInfo, Retirement),
}

impl<A, S, B, O> Connection<A, S, O>
where
    A: Accept<TcpStream>,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    O: Service<OpaqueConnection, Response = ()> + Clone + Send + 'static,
    O::Future: Send + 'static,
    O::Error: Into<BoxError>,
{
    /// Serves `tcp`, accepted from `remote_addr`, in `span`, the
    /// connection's: what is logged while it is served (by the accept
    /// hook, detection, the services) is logged in it, and names the peer
    /// and the port through it.
    ///
    /// The peer's address is the one `accept` returned: asked of the
    /// socket later, it is gone once the peer has reset the connection
    /// (`ENOTCONN`), and such a connection, accepted all the same, would
    /// end before the accept hook (and the transport metrics) saw it.
    ///
    /// The line said of a connection that could not be served at all is
    /// said outside the span and names the peer itself; the one said when
    /// a connection ends with an error is said in it, so that a filter
    /// that raises one connection's level (`[conn{peer=…}]=debug`) shows
    /// how it ended too.
    pub(super) async fn run(
        self,
        tcp: TcpStream,
        remote_addr: std::net::SocketAddr,
        span: tracing::Span,
    ) {
        let local_addr = match tcp.local_addr() {
            Ok(addr) => addr,
            Err(error) => {
                tracing::debug!(peer = %remote_addr, %error, "an accepted connection has no local address");
                return;
            }
        };
        span.in_scope(|| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            // An opaque pipe or a tunnel has no timer of its own: a peer
            // whose host died, or whose path dropped, without a FIN would
            // keep its place for ever. Keepalive probes after 10 s of
            // quiet (Linkerd's accept keepalive), then every 10 s, give it
            // up after three unanswered ones; live peers answer from their
            // kernel, idle or not.
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(10))
                .with_interval(Duration::from_secs(10))
                .with_retries(3);
            if let Err(error) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "cannot set TCP keepalive");
            }
        });
        // Only a server with a hook pays for keeping it (an `Arc`).
        let on_error = self.shared.on_error.clone();
        let served = self
            .serve(tcp, local_addr, remote_addr)
            .instrument(span.clone())
            .await;
        if let Err(Ended { error, kind }) = served {
            span.in_scope(|| {
                tracing::debug!(
                    local = %local_addr,
                    error = %Causes(&*error),
                    "connection closed with an error"
                );
                if let (Some(kind), Some(hook)) = (kind, on_error) {
                    (hook.0)(&ConnectionError {
                        local_addr,
                        remote_addr,
                        kind,
                        error: &*error,
                    });
                }
            });
        }
    }

    async fn serve(
        self,
        tcp: TcpStream,
        local_addr: std::net::SocketAddr,
        remote_addr: std::net::SocketAddr,
    ) -> Result<(), Ended> {
        // Until the peer has said what it speaks (the accept hook's
        // handshake, then detection), it has sent no request to finish: a
        // shutdown closes it at once rather than wait out the timeouts, as
        // hyper-util's auto server does. Preparation is polled first: a
        // peer whose request is already here, when the shutdown is too,
        // has one to finish.
        let prepared = tokio::select! {
            biased;
            prepared = prepare(&self.shared, &self.accept, tcp, local_addr, remote_addr) => prepared?,
            () = self.shutdown.clone().wait() => {
                tracing::debug!("closing a connection not yet served: shutting down");
                return Ok(());
            }
        };
        let (version, io, info, retire) = match prepared {
            Prepared::Http(version, io, info, retire) => (version, io, info, retire),
            Prepared::Opaque(io, info, retire) => {
                return self.opaque(io, info, retire).await.map_err(Ended::from);
            }
        };
        let config = &self.shared.config;
        let stream_idle = config.stream_idle_timeout.filter(|t| !t.is_zero());
        // The reads of an HTTP/2 connection count the streams its client
        // resets prematurely: see `idle::resets`.
        let reset_bound = ResetBound::of(config).filter(|_| version == HttpVersion::Http2);
        let flooded = reset_bound.map(|_| Arc::new(Flooded::default()));
        let resets = reset_bound
            .zip(flooded.clone())
            .map(|(bound, flooded)| Resets::new(bound, flooded));
        let (io, idle, opened) = match (stream_idle.map(bounded), version) {
            (None, HttpVersion::Http1) => (Watched::off(io), None, None),
            (None, HttpVersion::Http2) => match resets {
                None => (Watched::off(io), None, None),
                Some(resets) => (Watched::http2(io, None, Some(resets)), None, None),
            },
            (Some(timeout), HttpVersion::Http1) => {
                let reads = Arc::new(LastRead::now());
                (
                    Watched::http1(io, reads.clone()),
                    Some(StreamIdle::http1(timeout, reads)),
                    None,
                )
            }
            (Some(timeout), HttpVersion::Http2) => {
                let reads = Arc::new(LastRead::now());
                let opened = Arc::new(Opened::default());
                (
                    Watched::http2(io, Some((reads.clone(), opened.clone())), resets),
                    Some(StreamIdle::http2(timeout, reads, opened.clone())),
                    Some(opened),
                )
            }
        };
        let (drain, close) = retire.split();
        let lease = self.lease.closing(close.clone(), remote_addr);
        // The I/O holds the place too: an upgraded connection keeps it
        // for as long as it is open, whoever serves it (see `lease`).
        let cut = Arc::new(Cut::default());
        let io = Leased::new(
            WriteStall::new(io, bounded(config.write_stall_timeout)),
            lease.clone(),
            cut.clone(),
        );
        let until_cut = lease.clone();
        let tasks = idle.as_ref().and_then(|idle| idle.tasks().cloned());
        let svc = HyperService {
            inner: self.http,
            info,
            lease,
            cut: cut.clone(),
            idle,
            served: flooded.clone(),
        };
        let io = TokioIo::new(io);
        let served = match version {
            HttpVersion::Http1 => {
                let conn = self.shared.http1.serve_connection(io, svc).with_upgrades();
                drive(conn, version, self.shutdown, drain, close).await
            }
            HttpVersion::Http2 => {
                // Timed streams are timed in their tasks, which hyper spawns
                // with the builder's executor: see `idle::task`.
                let timing = tasks.map(|tasks| builders::http2(config, InSpan::timing(tasks)));
                let http2 = timing.as_ref().unwrap_or(&self.shared.http2);
                let conn = Handover::new(http2.serve_connection(io, svc), opened, flooded.clone());
                let served = drive(conn, version, self.shutdown, drain, close).await;
                match flooded.zip(reset_bound) {
                    Some((flooded, bound)) if flooded.is_set() => {
                        flooded_end(served, version, bound, &flooded)
                    }
                    _ => served,
                }
            }
        };
        // The I/O outlived its connection: hyper handed it to whoever
        // serves the upgrade. Cut it when the lease ends, as the proxy's
        // tunnel does itself, whoever holds it: an application's handler
        // knows neither the grace period nor the close time.
        if Arc::strong_count(&cut) > 1 {
            tokio::spawn(cut.when_lease_ends(until_cut));
        }
        served
    }

    /// Hands the connection to the opaque handler. A byte pipe cannot be
    /// drained, so only the retirement's close time applies.
    async fn opaque<I: crate::io::Io>(
        self,
        io: PrefixedIo<I>,
        info: ConnectionInfo,
        retire: Retirement,
    ) -> Result<(), BoxError> {
        let conn = OpaqueConnection {
            io: Box::new(io),
            info,
        };
        let (_, close) = retire.split();
        // Polled when its own timer wakes the task, not on every read.
        let armed = close.is_armed();
        let closed = OnWake::new(close.wait());
        tokio::select! {
            biased;
            res = self.opaque.oneshot(conn) => res.map_err(Into::into),
            () = closed, if armed => Err(CLOSED_AT_EXPIRY.into()),
        }
    }
}

/// Runs the accept hook and decides how the connection is served.
async fn prepare<A: Accept<TcpStream>>(
    shared: &Shared,
    accept: &A,
    tcp: TcpStream,
    local_addr: std::net::SocketAddr,
    remote_addr: std::net::SocketAddr,
) -> Result<Prepared<A::Io>, Ended> {
    let config = &shared.config;
    let accepted = accept.accept(tcp).await?;
    let info = ConnectionInfo {
        local_addr,
        remote_addr,
        tls: accepted.tls,
    };
    let retire = accepted.retire;
    // A connection the accept hook passed through is the application's
    // own TLS (see `Tls::Passthrough`): its bytes are TLS records, for the
    // application to read, never HTTP, so there is nothing to detect. It
    // goes to the opaque handler, whatever the port serves, where its
    // authorization decides: read by detection, it would be closed by a
    // port that serves HTTP only, as a client that spoke no HTTP. Linkerd's
    // proxy runs HTTP detection on a passed-through connection as on any
    // other (linkerd2-proxy `linkerd/app/inbound/src/detect.rs`), and
    // forwards it as opaque when detection finds no HTTP.
    if matches!(info.tls, Tls::Passthrough { .. }) {
        let io = PrefixedIo::new(Bytes::new(), accepted.io);
        return Ok(Prepared::Opaque(io, info, retire));
    }
    let (version, io) = match (accepted.alpn, config.protocol) {
        (_, Protocol::Opaque) => {
            let io = PrefixedIo::new(Bytes::new(), accepted.io);
            return Ok(Prepared::Opaque(io, info, retire));
        }
        (Some(HttpVersion::Http1), _) => (
            HttpVersion::Http1,
            PrefixedIo::new(Bytes::new(), accepted.io),
        ),
        // hyper's HTTP/2 handshake waits for the preface with no timer
        // (its pings start after it, and a graceful shutdown waits for
        // it), so a peer that chose `h2` and went silent would hold its
        // place under the limit for ever. The preface is read here,
        // under the detection timeout, and replayed. A peer that chose
        // `h2` promised HTTP/2: one that does not keep to it is closed,
        // at the timeout too.
        (Some(HttpVersion::Http2), _) => match detect(accepted.io, config.detect_timeout).await {
            Err(error) => return Err(Ended::detect(error)),
            Ok((Some(Detected::Http2), io)) => (HttpVersion::Http2, io),
            Ok((Some(_), _)) => return Err(Ended::at(ConnectionErrorKind::NotHttp, NO_PREFACE)),
            Ok((None, _)) => {
                return Err(Ended::at(
                    ConnectionErrorKind::DetectTimeout,
                    format!(
                        "ALPN chose HTTP/2, but the peer sent no preface within {:?}",
                        config.detect_timeout
                    ),
                ));
            }
        },
        (None, protocol) => match detect(accepted.io, config.detect_timeout)
            .await
            .map_err(Ended::detect)?
        {
            (Some(Detected::Http1), io) => (HttpVersion::Http1, io),
            (Some(Detected::Http2), io) => (HttpVersion::Http2, io),
            (Some(Detected::Opaque), io) if protocol == Protocol::Detect => {
                return Ok(Prepared::Opaque(io, info, retire));
            }
            // Too little to decide: a server-speaks-first protocol whose
            // client waits for a greeting, or a slow client. Linkerd's
            // proxy continues after the timeout and forwards the
            // connection as opaque (`detect::allow_timeout`), so the
            // application's greeting comes late rather than never. What
            // was read is replayed; opaque authorization applies.
            (None, io) if protocol == Protocol::Detect => {
                tracing::info!(
                    local = %local_addr,
                    timeout = ?config.detect_timeout,
                    read = io.prefix().len(),
                    "protocol detection timed out; continuing as opaque"
                );
                return Ok(Prepared::Opaque(io, info, retire));
            }
            (Some(Detected::Opaque), _) => {
                return Err(Ended::at(
                    ConnectionErrorKind::NotHttp,
                    "not HTTP on an HTTP-only port",
                ));
            }
            (None, _) => {
                return Err(Ended::at(
                    ConnectionErrorKind::DetectTimeout,
                    format!(
                        "protocol detection timed out after {:?} on an HTTP-only port",
                        config.detect_timeout
                    ),
                ));
            }
        },
    };
    Ok(Prepared::Http(version, io, info, retire))
}

/// How a connection ended with an error: the error, and where it failed
/// when that is the server's to tell of (see [`ConnectionError`]).
pub(super) struct Ended {
    error: BoxError,
    kind: Option<ConnectionErrorKind>,
}

impl Ended {
    /// An error the server tells of, met at `kind`.
    fn at(kind: ConnectionErrorKind, error: impl Into<BoxError>) -> Self {
        Self {
            error: error.into(),
            kind: Some(kind),
        }
    }

    /// Detection's failure: told of, but for a peer that closed before
    /// sending a byte, which is gone, not failed.
    fn detect(error: DetectError) -> Self {
        let kind = match error {
            DetectError::Closed => None,
            _ => Some(ConnectionErrorKind::DetectRead),
        };
        Self {
            error: error.into(),
            kind,
        }
    }

    /// hyper's error, ending a connection served as `version`.
    fn http(error: hyper::Error, version: HttpVersion) -> Self {
        // On an HTTP/1 server hyper's only timeout is the header read's.
        let kind = if version == HttpVersion::Http1 && error.is_timeout() {
            ConnectionErrorKind::HeaderTimeout
        } else {
            ConnectionErrorKind::Http(version)
        };
        Self::at(kind, error)
    }
}

/// The errors the server does not tell of: the accept hook's, the opaque
/// handler's, a close at the retirement's close time.
impl From<BoxError> for Ended {
    fn from(error: BoxError) -> Self {
        Self { error, kind: None }
    }
}

/// An error and its causes, `error: cause: cause`. hyper's errors say
/// only what failed ("connection error"), and leave why to their source.
struct Causes<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

const CLOSED_AT_EXPIRY: &str = "closed: the certificate that authenticated it expired";
const NO_PREFACE: &str = "ALPN chose HTTP/2, but the peer did not open with its preface";

/// Runs an HTTP connection. When shutdown fires or the connection is to be
/// retired, lets it finish the requests in flight and close; at the
/// retirement's close time, closes it regardless.
async fn drive<C>(
    conn: C,
    version: HttpVersion,
    shutdown: Shutdown,
    drain: impl Future<Output = ()>,
    close: Close,
) -> Result<(), Ended>
where
    C: Graceful,
{
    // The connection wakes the task several times a request; the signals
    // are polled only when they woke it, the close not at all when there
    // is none. The connection is polled first, so that it reads a request
    // already sent before a shutdown or a drain finds it with nothing read
    // and closes it: its client could not tell whether the request was
    // lost.
    let shutdown = OnWake::new(shutdown.wait());
    let drain = OnWake::new(drain);
    let armed = close.is_armed();
    let closed = OnWake::new(close.wait());
    tokio::pin!(conn, closed);
    tokio::select! {
        biased;
        res = conn.as_mut() => return res.map_err(|e| Ended::http(e, version)),
        () = shutdown => {}
        () = drain => {
            tracing::debug!("draining a connection whose credentials went stale");
        }
        () = closed.as_mut(), if armed => return Err(Ended::from(BoxError::from(CLOSED_AT_EXPIRY))),
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        biased;
        res = conn => res.map_err(|e| Ended::http(e, version)),
        () = closed, if armed => Err(Ended::from(BoxError::from(CLOSED_AT_EXPIRY))),
    }
}

/// How a connection whose client went past the premature-reset bound
/// ended. A client that took its `GOAWAY` and went, or went silent until
/// a keep-alive ping it left unanswered ended the connection, is told of
/// as one that kept on is, whose reads failed (and as the burst bound's
/// are): an HTTP/2 connection error whose cause is an I/O error, a rapid
/// reset, so that a sidecar counts them all alike; what ended the
/// connection, if anything failed, is its cause. A connection whose reads
/// failed already ended so; one closed at its retirement's close time is
/// not told of.
fn flooded_end(
    served: Result<(), Ended>,
    version: HttpVersion,
    bound: ResetBound,
    flooded: &Flooded,
) -> Result<(), Ended> {
    let ended_by = match served {
        Ok(()) => None,
        Err(ended) if flooded.was_cut() || ended.kind.is_none() => return Err(ended),
        Err(ended) => Some(ended.error),
    };
    let error = RapidReset {
        bound,
        kept_on: false,
        told: true,
        ended_by,
    };
    Err(Ended::at(
        ConnectionErrorKind::Http(version),
        std::io::Error::new(std::io::ErrorKind::InvalidData, error),
    ))
}

/// An HTTP connection that can be asked to finish its requests and close.
pub(super) trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B> Graceful for hyper::server::conn::http2::Connection<I, S, InSpan>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    InSpan: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

impl<C: Graceful> Graceful for Handover<C> {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        self.conn().graceful_shutdown();
    }
}

/// Adapts a tower service to hyper: each request gets the connection's info
/// and is sent to a clone of the service that is driven to readiness first.
#[derive(Clone)]
struct HyperService<S> {
    inner: S,
    info: ConnectionInfo,
    lease: Lease,
    /// How the connection's I/O is ended once an upgrade handed it over.
    cut: Arc<Cut>,
    /// The stream idle bound, when configured.
    idle: Option<StreamIdle>,
    /// Where the streams served are counted, for the premature-reset
    /// bound, when it is on.
    served: Option<Arc<Flooded>>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for HyperService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<IdleBody<B>>;
    type Error = S::Error;
    type Future = IdleFuture<Oneshot<S, Request<Incoming>>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(served) = &self.served {
            served.serve();
        }
        req.extensions_mut().insert(self.info.clone());
        // A request that may turn the connection into a tunnel (an
        // `Upgrade`, or a `CONNECT`) carries the lease for the tunnel to
        // hold: see `lease`. A tunnel is not timed as a stream (see
        // `idle`); a request that asks for an upgrade is, until a `101`
        // answers it: any client can ask.
        let connect = req.method() == Method::CONNECT;
        let upgrade = req.headers().contains_key(header::UPGRADE);
        if connect || upgrade {
            req.extensions_mut().insert(self.lease.clone());
            self.cut.arm();
        }
        let clock = self.idle.as_ref().and_then(|idle| {
            // Taken even for a request that is not timed: HTTP/2 hands
            // each stream over to the next request made.
            let reads = idle.request_data();
            if connect {
                idle.untimed();
                return None;
            }
            let answer = Answer {
                grpc: is_grpc(req.headers()),
                http1: req.version() < http::Version::HTTP_2,
                upgrade,
            };
            Some((idle.clock(reads), answer))
        });
        IdleFuture::new(self.inner.clone().oneshot(req), clock)
    }
}
