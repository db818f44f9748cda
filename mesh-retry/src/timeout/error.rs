//! The error a response body ends with when a timeout expires mid-stream.

use std::{fmt, io};

/// A timeout expired while the response body was streaming, after the
/// response head had been sent, so the timeout could no longer be answered
/// with a 504. (A gRPC caller gets `grpc-status: 4` in the trailers instead
/// of this error.)
///
/// Its [`source`](std::error::Error::source) is an [`io::Error`] of kind
/// [`TimedOut`](io::ErrorKind::TimedOut), so mesh-core's classifier reads
/// it as a timeout.
#[derive(Debug)]
pub struct Elapsed {
    timeout: Timeout,
    cause: io::Error,
}

/// Which timeout expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timeout {
    /// The request's deadline.
    Request,
    /// The idle timeout between body frames.
    Idle,
}

impl Elapsed {
    pub(crate) fn new(timeout: Timeout) -> Self {
        Self {
            timeout,
            cause: io::ErrorKind::TimedOut.into(),
        }
    }

    /// Which timeout expired.
    pub fn timeout(&self) -> Timeout {
        self.timeout
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.timeout {
            Timeout::Request => f.write_str("request deadline elapsed during the response body"),
            Timeout::Idle => f.write_str("response body idle timeout elapsed"),
        }
    }
}

impl std::error::Error for Elapsed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}
