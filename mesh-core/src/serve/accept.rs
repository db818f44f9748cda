use std::future::{Ready, ready};

use crate::{
    conn::{NoTlsReason, Tls},
    error::BoxError,
    io::Io,
};

/// A connection after the [`Accept`] hook has run.
#[derive(Debug)]
pub struct Accepted<I> {
    /// The stream to serve: the TCP stream itself, or a TLS stream over it.
    pub io: I,
    /// How the peer was authenticated.
    pub tls: Tls,
    /// The HTTP version ALPN settled on, when the hook negotiated one. It
    /// skips protocol detection.
    pub alpn: Option<HttpVersion>,
}

/// An HTTP version a connection is served with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 (and 1.0).
    Http1,
    /// HTTP/2.
    Http2,
}

/// The hook every accepted connection passes through before it is served.
///
/// This is where TLS plugs in: an implementation may read the first bytes,
/// run a handshake and report the peer's identity. Returning an error closes
/// the connection.
pub trait Accept<I>: Clone + Send + Sync + 'static {
    /// The stream handed on to the protocol handlers.
    type Io: Io;
    /// The future of an accepted connection.
    type Future: Future<Output = Result<Accepted<Self::Io>, BoxError>> + Send + 'static;

    /// Runs the hook on a newly accepted connection.
    fn accept(&self, io: I) -> Self::Future;
}

/// The [`Accept`] hook of a plaintext listener: it takes the connection as it
/// is and records that the peer offered no TLS.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlaintextAccept;

impl<I: Io> Accept<I> for PlaintextAccept {
    type Io = I;
    type Future = Ready<Result<Accepted<I>, BoxError>>;

    fn accept(&self, io: I) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
        }))
    }
}
