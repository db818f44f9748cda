//! `/proxy-log-level`: the process's log filter, read and changed while it
//! runs.
//!
//! Debugging a live proxy usually means more logs for a while, and a
//! restart would lose the state worth looking at. Linkerd's proxy serves
//! its filter on the admin port for that, and so does this admin:
//! `GET /proxy-log-level` answers the filter in force, and
//! `PUT /proxy-log-level` with a new filter as the body puts it in force at
//! once (`204`), or answers `400` with why it does not parse and keeps the
//! one in force (`413` for a body over 16 KiB, `400` with the reason for
//! one that breaks off, and for an empty one: a `PUT` sent without a body
//! is a slip, not a filter that logs nothing; `408` for one that has not
//! all arrived 10 seconds after the request's head). Like `/shutdown`,
//! and as in Linkerd, only loopback clients are served.
//!
//! The admin knows nothing of the logging library: the process that set up
//! its logging hands over a [`LogLevel`] that reads and replaces its filter
//! ([`Admin::with_log_level`](super::Admin::with_log_level)).

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{future::ResponseFuture, text};
use crate::{body::BoxBody, error::BoxError};

/// The longest filter a `PUT` may send. Filters are a line or two.
const MAX_FILTER_BYTES: usize = 16 * 1024;

/// How long a `PUT` may take to send its filter once its head has
/// arrived. A line or two goes out with the head (`curl -d`); a client
/// that announced more than it sends would otherwise hold its connection,
/// and at shutdown the admin server's drain, for as long as it stays
/// connected: the server times the wait for a request's head, never for
/// its body.
const FILTER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's log filter, as `/proxy-log-level` reads and changes it.
pub trait LogLevel: fmt::Debug + Send + Sync + 'static {
    /// The filter in force, in the syntax [`set`](Self::set) takes.
    fn get(&self) -> String;

    /// Puts `filter` in force.
    ///
    /// # Errors
    ///
    /// Why `filter` does not parse; the filter in force stays.
    fn set(&self, filter: &str) -> Result<(), String>;
}

/// Answers a request for `/proxy-log-level` with `level`, or `404` when the
/// process gave none.
pub(super) fn serve<B>(level: Option<&Arc<dyn LogLevel>>, req: Request<B>) -> ResponseFuture
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Some(level) = level else {
        return ResponseFuture::ready(text(StatusCode::NOT_FOUND, "log level control is off\n"));
    };
    if let Some(refused) =
        super::refuse_unless_local(&req, "the log level is only served to loopback")
    {
        return ResponseFuture::ready(refused);
    }
    match *req.method() {
        Method::GET | Method::HEAD => {
            ResponseFuture::ready(text(StatusCode::OK, format!("{}\n", level.get())))
        }
        Method::PUT => {
            let level = level.clone();
            ResponseFuture::boxed(Box::pin(async move { put(&*level, req).await }))
        }
        _ => ResponseFuture::ready(super::method_not_allowed(&req, "GET, HEAD, PUT")),
    }
}

async fn put<B>(level: &dyn LogLevel, req: Request<B>) -> Response<BoxBody>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let http1 = req.version() < http::Version::HTTP_2;
    let read = Limited::new(req.into_body(), MAX_FILTER_BYTES).collect();
    let Ok(read) = tokio::time::timeout(FILTER_READ_TIMEOUT, read).await else {
        let mut res = text(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the filter did not arrive within {}s; the filter in force stays\n",
                FILTER_READ_TIMEOUT.as_secs()
            ),
        );
        // The rest of the body may still come: an HTTP/1 connection
        // cannot carry another request. (HTTP/2 forbids the header; the
        // stream ends alone.)
        if http1 {
            res.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        return res;
    };
    let body = match read {
        Ok(body) => body.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a filter has at most {MAX_FILTER_BYTES} bytes\n"),
            );
        }
        // The body broke off: the client may still read the answer (an
        // HTTP/1 body with a bad chunk), and should learn why.
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the filter: {error}\n"),
            );
        }
    };
    let Ok(filter) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "the filter is not UTF-8\n");
    };
    // `curl -X PUT` without `-d` sends no body: a mistake, which the
    // process's filter syntax may well read as "log nothing".
    if filter.trim().is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "the filter is empty: send one in the body, such as `info`, or `off` for no logs\n",
        );
    }
    match level.set(filter.trim()) {
        Ok(()) => {
            tracing::info!(
                filter = filter.trim(),
                "log filter changed through the admin server"
            );
            let mut res = text(StatusCode::NO_CONTENT, "");
            res.headers_mut().remove(http::header::CONTENT_TYPE);
            res
        }
        Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    }
}
