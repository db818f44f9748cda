//! Telling a failed request's causes apart, and writing them down.

use std::{error::Error, fmt};

/// Whether `error` is the caller's rather than the endpoint's: hyper
/// could not send the request as given, most often because its body
/// failed (a malformed chunked body, say). Such a failure says nothing of
/// the endpoint, and counted against it, a client could have failure
/// accrual take every endpoint out.
///
/// Over HTTP/1 hyper says so with a user error. Over HTTP/2 a request
/// body that fails makes the client reset its stream, and what comes back
/// is that reset: one this side sent on the user's behalf, where a reset
/// the upstream sent is remote and one for a protocol error is the
/// library's.
pub(super) fn is_callers(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        if e.downcast_ref::<h2::Error>()
            .is_some_and(|e| e.is_reset() && !e.is_remote() && !e.is_library())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// An error and its causes, outermost first, joined by `: `, as an
/// operator reads them in a log line: `upstream connect error: client
/// error (Connect): tcp connect error: Connection refused (os error 111)`.
/// The client's own error says only what kind of failure it was; the
/// reason is in its sources.
pub(super) struct Chain<'a>(pub(super) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

/// A value, or `-` when there is none.
pub(super) struct DisplayOr<T>(pub(super) Option<T>);

impl<T: fmt::Display> fmt::Display for DisplayOr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("upstream connect error")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_chain_names_every_cause_outermost_first() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Outer(refused);
        assert_eq!(Chain(&error).to_string(), "upstream connect error: refused");
        assert!(!is_callers(&error));
    }
}
