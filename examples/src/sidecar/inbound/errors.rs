//! What the inbound side counts in `inbound_tcp_errors_total`: the
//! connections it closed for an error of its own.
//!
//! Linkerd's proxy counts there a connection whose TLS detection timed
//! out or failed, and one whose service failed (the application could
//! not be connected, a socket failed), once each, and leaves out the
//! ones its policy refused, which the authorization families count
//! (linkerd2-proxy, `app/inbound/src/metrics/error.rs`). So does the
//! sidecar, where it meets each:
//!
//! - the accept hook's failures ([`CountAcceptErrors`], around the TLS
//!   acceptor): a detection or handshake that timed out is
//!   `tls detection timeout`, one that failed (a socket error, a
//!   certificate the handshake refused) `i/o`, a TLS client that came
//!   while the sidecar had no usable certificate `identity unavailable`.
//!   A peer that closed before sending a byte (a health check) is not
//!   counted, nor is a strict port's refusal of a client without mutual
//!   TLS, which is its policy's (Linkerd refuses such a client by its
//!   policy, and leaves it out too; `tls_handshake_failures_total`
//!   counts it);
//! - an opaque connection's failures ([`opaque_error`]): an application
//!   that refused the connection (`i/o`) or did not take it in time
//!   (`connect timeout`), a pipe whose socket failed (`i/o`). A
//!   connection its policy refused never reaches the pipe;
//! - an HTTP connection's own failures, which the server tells of
//!   ([`connection_errors`], on the inbound and the outbound servers):
//!   one whose socket failed (`i/o`), one whose peer broke the protocol,
//!   sent something other than HTTP to a port that serves HTTP only, or
//!   had not said what it speaks by the detection timeout
//!   (`unexpected`, as Linkerd counts the errors of its HTTP server
//!   that are not I/O). Not counted: a peer that closed before sending
//!   a byte, or in the middle of a request (it went away; nothing
//!   failed), an HTTP/1 connection closed at the header read timeout
//!   (an idle keep-alive connection ends so, and cannot be told from one
//!   whose head came too slowly; Linkerd's server has no such timeout),
//!   and a service or response body that failed, which the request's
//!   families count.
//!
//! Every series names the address the connection came to, with the
//! application's port (`target_port`), as the HTTP families do;
//! outbound, the address the application connected to.

use std::{
    error::Error,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
};

use mesh_core::{
    error::BoxError,
    serve::{Accept, Accepted, ConnectionError, ConnectionErrorKind, Protocol},
};
use mesh_metrics::{Direction, TcpMetrics, errors::ProxyError};
use mesh_tls::accept::AcceptError;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;

use super::AppConnectError;

/// An [`Accept`] hook that counts the connections its inner hook fails in
/// `inbound_tcp_errors_total`. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct CountAcceptErrors<A> {
    inner: A,
    metrics: TcpMetrics,
    target: Target,
}

/// The address a connection came to, with the application's port.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The listener's own address names it: it listens on one IP.
    Fixed(SocketAddr),
    /// Asked of each connection, which may have come to any of the
    /// host's addresses.
    PerConnection { app_port: u16 },
}

impl<A> CountAcceptErrors<A> {
    /// Counts the failures of `inner`, a hook of the listener bound to
    /// `listener` that serves the application's port `app_port`.
    pub(crate) fn new(
        inner: A,
        metrics: &TcpMetrics,
        listener: Option<SocketAddr>,
        app_port: u16,
    ) -> Self {
        let target = match listener {
            Some(addr) if !addr.ip().is_unspecified() => {
                Target::Fixed(SocketAddr::new(addr.ip(), app_port))
            }
            _ => Target::PerConnection { app_port },
        };
        Self {
            inner,
            metrics: metrics.clone(),
            target,
        }
    }
}

impl<A> Accept<TcpStream> for CountAcceptErrors<A>
where
    A: Accept<TcpStream>,
{
    type Io = A::Io;
    type Future = CountAcceptFuture<A::Future>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        let target = match self.target {
            Target::Fixed(addr) => Some(addr),
            Target::PerConnection { app_port } => io
                .local_addr()
                .ok()
                .map(|local| SocketAddr::new(local.ip(), app_port)),
        };
        CountAcceptFuture {
            inner: self.inner.accept(io),
            counter: target.map(|target| (self.metrics.clone(), target)),
        }
    }

    fn for_protocol(&self, protocol: Protocol) -> Self {
        Self {
            inner: self.inner.for_protocol(protocol),
            metrics: self.metrics.clone(),
            target: self.target,
        }
    }
}

pin_project! {
    /// The inner hook, counted if it fails.
    #[derive(Debug)]
    pub(crate) struct CountAcceptFuture<F> {
        #[pin]
        inner: F,
        counter: Option<(TcpMetrics, SocketAddr)>,
    }
}

impl<F, T> Future for CountAcceptFuture<F>
where
    F: Future<Output = Result<Accepted<T>, BoxError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Err(error), Some((metrics, target))) = (&result, this.counter.take())
            && let Some(kind) = accept_error(&**error)
        {
            metrics.count_error(Direction::Inbound, target, kind);
        }
        Poll::Ready(result)
    }
}

/// The error an accept hook's failure is counted under, if any: see the
/// [module docs](self).
fn accept_error(error: &(dyn Error + 'static)) -> Option<ProxyError> {
    let Some(accept) = error.downcast_ref::<AcceptError>() else {
        return Some(ProxyError::of_error(error));
    };
    Some(match accept {
        AcceptError::Timeout(_) => ProxyError::TlsDetectTimeout,
        AcceptError::Closed
        | AcceptError::PlaintextRefused
        | AcceptError::NoClientCertificate
        | AcceptError::PassthroughRefused(_) => return None,
        AcceptError::NoCredentials | AcceptError::CredentialsUnusable(_) => {
            ProxyError::IdentityUnavailable
        }
        AcceptError::Io(_)
        | AcceptError::Handshake(_)
        | AcceptError::NoPeerIdentity(_)
        | AcceptError::NoAnchorOfTrustDomain(_) => ProxyError::Io,
        _ => ProxyError::of_error(error),
    })
}

/// The error an opaque connection's failure is counted under: see the
/// [module docs](self).
pub(super) fn opaque_error(error: &(dyn Error + 'static)) -> Option<ProxyError> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(AppConnectError::TimedOut { .. }) = error.downcast_ref() {
            return Some(ProxyError::ConnectTimeout);
        }
        next = error.source();
    }
    Some(ProxyError::of_error(error))
}

/// The hook of a server whose connections' own failures are counted in
/// `direction`'s TCP error family, under the address each came to (with
/// `target_port` in place of its port, when given): see the
/// [module docs](self). It runs only when a connection fails.
pub(crate) fn connection_errors(
    metrics: &TcpMetrics,
    direction: Direction,
    target_port: Option<u16>,
) -> impl Fn(&ConnectionError<'_>) + Send + Sync + 'static {
    let metrics = metrics.clone();
    move |ended| {
        if let Some(error) = connection_error(ended.kind, ended.error) {
            let local = ended.local_addr;
            let target = SocketAddr::new(local.ip(), target_port.unwrap_or(local.port()));
            metrics.count_error(direction, target, error);
        }
    }
}

/// The error a connection's own failure, met at `kind`, is counted
/// under, if any: see the [module docs](self).
fn connection_error(
    kind: ConnectionErrorKind,
    error: &(dyn Error + 'static),
) -> Option<ProxyError> {
    match kind {
        ConnectionErrorKind::HeaderTimeout => return None,
        ConnectionErrorKind::Http(_) => {
            let hyper = error.downcast_ref::<hyper::Error>();
            if hyper.is_some_and(|e| e.is_user() || e.is_incomplete_message()) {
                return None;
            }
        }
        _ => {}
    }
    Some(ProxyError::of_error(error))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_strict_ports_refusals_and_a_silent_close_are_not_counted() {
        for refusal in [AcceptError::PlaintextRefused, AcceptError::Closed] {
            assert_eq!(accept_error(&refusal), None, "{refusal}");
        }
        assert_eq!(
            accept_error(&AcceptError::Timeout(Duration::from_secs(10))),
            Some(ProxyError::TlsDetectTimeout)
        );
        assert_eq!(
            accept_error(&AcceptError::Io(std::io::ErrorKind::ConnectionReset.into())),
            Some(ProxyError::Io)
        );
    }

    #[test]
    fn a_connections_own_failures_are_io_or_unexpected_and_an_idle_close_is_none() {
        let idle: BoxError = "read header from client timeout".into();
        assert_eq!(
            connection_error(ConnectionErrorKind::HeaderTimeout, &*idle),
            None
        );
        let slow: BoxError = "protocol detection timed out".into();
        assert_eq!(
            connection_error(ConnectionErrorKind::DetectTimeout, &*slow),
            Some(ProxyError::Unexpected)
        );
        let read = mesh_core::detect::DetectError::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(
            connection_error(ConnectionErrorKind::DetectRead, &read),
            Some(ProxyError::Io)
        );
    }

    #[test]
    fn an_application_that_does_not_answer_in_time_is_a_connect_timeout() {
        let app = SocketAddr::from(([127, 0, 0, 1], 8080));
        let timed_out = AppConnectError::TimedOut {
            app,
            after: Duration::from_secs(1),
        };
        assert_eq!(opaque_error(&timed_out), Some(ProxyError::ConnectTimeout));
        let refused = AppConnectError::Failed {
            app,
            error: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(opaque_error(&refused), Some(ProxyError::Io));
    }
}
