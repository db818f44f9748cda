//! `/tap` on the admin server, and the client that reads it.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mesh_core::{
    body::{self, BoxBody},
    error::BoxError,
};

use super::{Subscription, Tap, TapEvent, TapFilter};
use crate::printable::Printable;

/// How long [`watch`] waits for the admin server to accept the tap.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest line of `/tap` that [`watch`] reads: 1 MiB. An event's
/// longest texts, its path and authority, come from one request head,
/// which hyper keeps well under it; a server that sends more without a
/// newline is not sending events, and what it sends is not held.
pub const MAX_EVENT_LINE: usize = 1 << 20;

/// How much of a refusal's body [`WatchError`] keeps, in bytes.
const MAX_REFUSAL: usize = 1024;

impl Tap {
    /// Answers `GET /tap?QUERY` with a stream of the events of the
    /// requests the query matches, a line of JSON each, for as long as the
    /// client reads. Only loopback clients are served (the request's
    /// [`ConnectionInfo`](mesh_core::conn::ConnectionInfo) says who the peer is; without one, it is
    /// refused), and not to the pages of other sites a browser shows
    /// (`403`). Another method than `GET` gets `405`, with `Allow: GET`.
    /// `400` names a query parameter that does not read, and
    /// `503` says that too many taps are open, or that the server is
    /// shutting down ([`Tap::with_shutdown`]). The stream ends when that
    /// shutdown fires.
    ///
    /// An admin server mounts this as its extension, or routes `/tap` to
    /// it from one.
    pub fn serve<B>(&self, req: &Request<B>) -> Response<BoxBody> {
        if let Some(why) = mesh_core::admin::not_local_reason(req) {
            return text(
                StatusCode::FORBIDDEN,
                format!("tap is only served to loopback: {why}\n"),
            );
        }
        if from_another_site(req) {
            return text(
                StatusCode::FORBIDDEN,
                "tap is not served to the pages of other sites\n".into(),
            );
        }
        if req.method() != Method::GET {
            // RFC 9110 §15.5.6: a `405` says, in `Allow`, which methods
            // the resource does answer.
            let mut res = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} is not served at {}: it answers GET\n",
                    req.method(),
                    req.uri().path()
                ),
            );
            res.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
            return res;
        }
        let filter = match TapFilter::from_query(req.uri().query().unwrap_or("")) {
            Ok(filter) => filter,
            Err(error) => return text(StatusCode::BAD_REQUEST, format!("{error}\n")),
        };
        if self.shutdown.as_ref().is_some_and(|s| s.is_triggered()) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the proxy is shutting down\n".into(),
            );
        }
        match self.subscribe(filter) {
            Ok(subscription) => {
                let stop = self
                    .shutdown
                    .clone()
                    .map(|signal| Box::pin(signal.wait()) as Stop);
                let mut res = Response::new(body::boxed(EventLines { subscription, stop }));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/x-ndjson"),
                );
                res
            }
            Err(error) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
        }
    }
}

/// Whether a browser sent `req` for a page of another site. Such a page
/// cannot read the events, but each tap it leaves open holds one of
/// [`MAX_TAPS`](super::MAX_TAPS) places, and the proxy taps for nobody.
/// Browsers say where a request comes from with `Sec-Fetch-Site`
/// (`none` when the user typed the address), and older ones with `Origin`
/// on requests a script makes; tools send neither.
fn from_another_site<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    match headers
        .get("sec-fetch-site")
        .map(header::HeaderValue::as_bytes)
    {
        Some(b"none" | b"same-origin") => false,
        Some(_) => true,
        None => headers.contains_key(header::ORIGIN),
    }
}

fn text(status: StatusCode, body: String) -> Response<BoxBody> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A tap's events as a body of JSON lines. Dropping it (the client went
/// away) closes the tap.
struct EventLines {
    subscription: Subscription,
    /// Ends the stream when it resolves: the server is shutting down.
    stop: Option<Stop>,
}

/// The shutdown a stream of events ends at.
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Body for EventLines {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // The events still queued at shutdown are not sent: the server is
        // waiting for this stream to end.
        if let Some(stop) = self.stop.as_mut()
            && stop.as_mut().poll(cx).is_ready()
        {
            self.stop = None;
            return Poll::Ready(None);
        }
        let Some(event) = std::task::ready!(self.subscription.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let mut line = event.to_json().into_bytes();
        line.push(b'\n');
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
    }
}

/// Opens a tap on the admin server at `admin` (`host:port`) and hands
/// each event to `each` until it returns `false` or the server ends the
/// stream.
///
/// # Errors
///
/// The admin server cannot be reached in [`CONNECT_TIMEOUT`], refuses the
/// tap (the start of its answer is in the error), or sends something that
/// is not an event, or a line over [`MAX_EVENT_LINE`].
pub async fn watch(
    admin: &str,
    filter: &TapFilter,
    mut each: impl FnMut(TapEvent) -> bool,
) -> Result<(), WatchError> {
    let err = |kind| WatchError {
        addr: admin.to_owned(),
        kind,
    };
    let mut body = tokio::time::timeout(CONNECT_TIMEOUT, open(admin, filter))
        .await
        .map_err(|_| err(WatchErrorKind::Timeout))?
        .map_err(err)?;
    let mut pending = BytesMut::new();
    // How much of `pending` is known to hold no newline.
    let mut scanned = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| err(WatchErrorKind::Http(e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(data.chunk());
        while let Some(at) = pending[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + at;
            scanned = 0;
            if end > MAX_EVENT_LINE {
                return Err(err(WatchErrorKind::LineTooLong));
            }
            let line = pending.split_to(end + 1);
            let event: TapEvent = serde_json::from_slice(&line[..end])
                .map_err(|e| err(WatchErrorKind::NotAnEvent(e)))?;
            if !each(event) {
                return Ok(());
            }
        }
        scanned = pending.len();
        if scanned > MAX_EVENT_LINE {
            return Err(err(WatchErrorKind::LineTooLong));
        }
    }
    Ok(())
}

async fn open(admin: &str, filter: &TapFilter) -> Result<hyper::body::Incoming, WatchErrorKind> {
    let tcp = tokio::net::TcpStream::connect(admin)
        .await
        .map_err(WatchErrorKind::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(WatchErrorKind::Http)?;
    // The connection ends when the body is dropped: the task with it.
    tokio::spawn(conn);
    let req = Request::get(format!("/tap?{}", filter.to_query()))
        .header(header::HOST, admin)
        .body(Empty::<Bytes>::new())
        .map_err(|_| WatchErrorKind::Refused(StatusCode::BAD_REQUEST, String::new()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(WatchErrorKind::Http)?;
    if res.status() != StatusCode::OK {
        let status = res.status();
        return Err(WatchErrorKind::Refused(
            status,
            refusal(res.into_body()).await,
        ));
    }
    Ok(res.into_body())
}

/// The first [`MAX_REFUSAL`] bytes of a refusal's body, as text; the
/// rest is not read.
async fn refusal(mut body: hyper::body::Incoming) -> String {
    let mut why = Vec::new();
    while why.len() < MAX_REFUSAL {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    why.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    why.truncate(MAX_REFUSAL);
    String::from_utf8_lossy(&why).trim().to_owned()
}

/// A tap that could not be watched.
#[derive(Debug)]
pub struct WatchError {
    addr: String,
    kind: WatchErrorKind,
}

#[derive(Debug)]
enum WatchErrorKind {
    Connect(io::Error),
    Timeout,
    Http(hyper::Error),
    Refused(StatusCode, String),
    NotAnEvent(serde_json::Error),
    LineTooLong,
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = &self.addr;
        match &self.kind {
            WatchErrorKind::Connect(_) => write!(f, "cannot connect to {addr}"),
            WatchErrorKind::Timeout => write!(f, "{addr} did not answer the tap in time"),
            WatchErrorKind::Http(_) => write!(f, "http exchange with {addr} failed"),
            WatchErrorKind::Refused(status, why) if why.is_empty() => {
                write!(f, "{addr} refused the tap: {}", status.as_u16())
            }
            WatchErrorKind::Refused(status, why) => {
                // The server wrote it: it goes to a terminal escaped.
                let why = Printable::new(why);
                write!(f, "{addr} refused the tap: {} {why}", status.as_u16())
            }
            WatchErrorKind::NotAnEvent(_) => {
                write!(f, "{addr} sent a line that is not a tap event")
            }
            WatchErrorKind::LineTooLong => {
                write!(f, "{addr} sent a line over {MAX_EVENT_LINE} bytes")
            }
        }
    }
}

impl std::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            WatchErrorKind::Connect(e) => Some(e),
            WatchErrorKind::Http(e) => Some(e),
            WatchErrorKind::NotAnEvent(e) => Some(e),
            WatchErrorKind::Timeout | WatchErrorKind::Refused(..) | WatchErrorKind::LineTooLong => {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
