//! What kind of error ended a request.

use std::{error::Error, io};

/// The kind of error that ended a request before a response arrived.
///
/// A closed set, so it can be a metric label ([`as_label`](Self::as_label))
/// and a retry condition (Envoy's `connect-failure` and `reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A timeout expired.
    Timeout,
    /// The connection to the upstream could not be opened. Nothing was
    /// sent.
    Connect,
    /// The connection or stream was reset, aborted or closed mid-request.
    Reset,
    /// Any other error.
    Other,
}

impl ErrorKind {
    /// Every kind, in a fixed order. Useful to pre-register metric series.
    pub const ALL: [ErrorKind; 4] = [Self::Timeout, Self::Connect, Self::Reset, Self::Other];

    /// `timeout`, `connect`, `reset` or `other`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Reset => "reset",
            Self::Other => "other",
        }
    }

    /// The kind of `error`, found by walking its `source()` chain from the
    /// outside in. The first error that says something decides:
    ///
    /// - hyper-util's client error that is a connect error: `Connect`;
    /// - tokio's `Elapsed`: `Timeout`;
    /// - a `std::io::Error` of kind `TimedOut`: `Timeout`; of kind
    ///   `ConnectionRefused`, `HostUnreachable`, `NetworkUnreachable` or
    ///   `AddrNotAvailable`: `Connect`; of kind `ConnectionReset`,
    ///   `ConnectionAborted`, `BrokenPipe` or `UnexpectedEof`: `Reset`; of
    ///   another kind: whatever the error it wraps says, if any;
    /// - a hyper error that is a timeout: `Timeout`; that was cancelled,
    ///   closed, or cut mid-message: `Reset`;
    /// - an HTTP/2 error (`h2::Error`): a stream reset (`RST_STREAM`) or
    ///   refused by a `GOAWAY`, whatever its code and whichever side sent
    ///   the frame: `Reset`; an I/O error of the connection: as that
    ///   `std::io::Error` above.
    ///
    /// An h2 error has no `source()`: hyper passes one on as the cause of
    /// its own error when a stream or a response body fails, and the walk
    /// ends there. A `GOAWAY` is a reset because Linkerd's
    /// `response_total` labels the two alike (by their HTTP/2 code). A
    /// reset h2 sends itself (for a body that ends short of its
    /// `content-length`, say) is one too: its client gets an incomplete
    /// message, as from the upstream's own reset.
    ///
    /// A layer's own error type is recognized when it has one of these as a
    /// source, so a timeout layer should keep tokio's `Elapsed` (or an
    /// `io::Error` of kind `TimedOut`) as its source. Anything else is
    /// `Other`.
    pub fn of(error: &(dyn Error + 'static)) -> Self {
        kind_of_chain(error).unwrap_or(Self::Other)
    }
}

fn kind_of_chain(error: &(dyn Error + 'static)) -> Option<ErrorKind> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(kind) = kind_of_one(e) {
            return Some(kind);
        }
        next = e.source();
    }
    None
}

fn kind_of_one(error: &(dyn Error + 'static)) -> Option<ErrorKind> {
    if let Some(e) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
        // A non-connect client error says nothing more; its source may.
        return e.is_connect().then_some(ErrorKind::Connect);
    }
    if error.is::<tokio::time::error::Elapsed>() {
        return Some(ErrorKind::Timeout);
    }
    if let Some(e) = error.downcast_ref::<io::Error>() {
        // A custom `io::Error` hides the error it wraps from `source()`.
        return io_kind(e.kind()).or_else(|| e.get_ref().and_then(|inner| kind_of_chain(inner)));
    }
    if let Some(e) = error.downcast_ref::<h2::Error>() {
        if e.is_reset() || e.is_go_away() {
            return Some(ErrorKind::Reset);
        }
        // An error made from a bare code, or the caller's misuse of h2,
        // says nothing of the connection.
        return e.get_io().and_then(|io| kind_of_one(io));
    }
    if let Some(e) = error.downcast_ref::<hyper::Error>() {
        if e.is_timeout() {
            return Some(ErrorKind::Timeout);
        }
        if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
            return Some(ErrorKind::Reset);
        }
    }
    None
}

fn io_kind(kind: io::ErrorKind) -> Option<ErrorKind> {
    use io::ErrorKind as Io;
    match kind {
        Io::TimedOut => Some(ErrorKind::Timeout),
        Io::ConnectionRefused
        | Io::HostUnreachable
        | Io::NetworkUnreachable
        | Io::AddrNotAvailable => Some(ErrorKind::Connect),
        Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof => {
            Some(ErrorKind::Reset)
        }
        _ => None,
    }
}
