//! What the server tells of a connection it closed for an error of its
//! own: see [`ConnectionError`].

use std::{error::Error, fmt, net::SocketAddr, sync::Arc};

use super::HttpVersion;

/// A connection that the server closed for an error of its own, given to
/// the hook of [`Server::on_connection_error`](super::Server::on_connection_error).
///
/// # Why
///
/// A connection that fails while its first bytes are read, or while
/// hyper serves it, fails where no service sees it: the accept hook has
/// handed it on, and no request (or none that is still open) carries the
/// failure. Only the server's log line said so. Linkerd's proxy counts
/// such connections in its `inbound_tcp_errors_total` and
/// `outbound_tcp_errors_total` (linkerd2-proxy: the TCP error layer wraps
/// its HTTP detection and server), and a proxy that means to count them
/// the same needs the server to say when one ends so.
///
/// # What is told
///
/// Only the errors the server meets itself, once per connection, as it
/// ends: protocol detection's, and the HTTP connection's. Not:
///
/// - an accept hook's failure, nor an opaque handler's: the hook and the
///   handler meet those first, with more to say about them, and can
///   count them where they do;
/// - a peer that closed before sending a byte: it is gone, not failed;
/// - a connection closed at its retirement's close time (the certificate
///   that authenticated it expired): the server's choice, not a failure.
///
/// The hook is called only when a connection ends with one of these:
/// one that ends well costs nothing more than it did without it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionError<'a> {
    /// The address the connection came to.
    pub local_addr: SocketAddr,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// Where it failed.
    pub kind: ConnectionErrorKind,
    /// The error, whose causes say why: an [`std::io::Error`] among them
    /// when a socket failed; a [`hyper::Error`] for
    /// [`ConnectionErrorKind::Http`].
    pub error: &'a (dyn Error + 'static),
}

/// Where a connection failed. See [`ConnectionError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionErrorKind {
    /// Its first bytes told nothing within the detection timeout: on an
    /// HTTP-only port, or from a peer that chose HTTP/2 with ALPN and
    /// sent no preface. (A port that detects serves such a connection
    /// as opaque instead.)
    DetectTimeout,
    /// Its first bytes were not HTTP on an HTTP-only port, or not
    /// HTTP/2's preface from a peer that chose HTTP/2 with ALPN.
    NotHttp,
    /// Reading its first bytes failed.
    DetectRead,
    /// An HTTP/1 connection whose next request head did not come within
    /// the header read timeout. An idle keep-alive connection ends so
    /// too, which is no failure: the two cannot be told apart.
    HeaderTimeout,
    /// hyper ended the HTTP connection with an error (`error` is the
    /// [`hyper::Error`]): a protocol error, a socket that failed, a
    /// write that stalled, an HTTP/2 peer that answered no ping, a peer
    /// that closed in the middle of a request, a service or response
    /// body that failed.
    Http(HttpVersion),
}

/// The hook a [`Server`](super::Server) calls with a
/// [`ConnectionError`].
#[derive(Clone)]
pub(super) struct ErrorHook(pub(super) Arc<dyn Fn(&ConnectionError<'_>) + Send + Sync>);

impl fmt::Debug for ErrorHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorHook")
    }
}
