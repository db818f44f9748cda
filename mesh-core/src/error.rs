//! Failures the mesh answers itself.
//!
//! A proxy that turns every failure into a dropped connection leaves the
//! caller guessing. Each failure the mesh owns becomes a response instead: an
//! HTTP status for HTTP callers, and for gRPC callers a trailers-only response
//! whose `grpc-status` says the same thing, since gRPC clients read the status
//! there and ignore the HTTP code. Every such response carries a `mesh-error`
//! header with a short reason, and a [`ProxyErrorKind`] extension, so metrics
//! can tell a synthesized 503 from one the application sent.
//!
//! | kind | HTTP | gRPC |
//! |---|---|---|
//! | [`Denied`](ProxyErrorKind::Denied) | 403 | 7 `PERMISSION_DENIED` |
//! | [`NoRoute`](ProxyErrorKind::NoRoute) | 404 | 5 `NOT_FOUND` |
//! | [`RateLimited`](ProxyErrorKind::RateLimited) | 429 | 8 `RESOURCE_EXHAUSTED` |
//! | [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) | 502 | 14 `UNAVAILABLE` |
//! | [`Unavailable`](ProxyErrorKind::Unavailable) | 503 | 14 `UNAVAILABLE` |
//! | [`Timeout`](ProxyErrorKind::Timeout) | 504 | 4 `DEADLINE_EXCEEDED` |
//! | [`InvalidRequest`](ProxyErrorKind::InvalidRequest) | 400 | 13 `INTERNAL` |
//! | [`Unsupported`](ProxyErrorKind::Unsupported) | 501 | 12 `UNIMPLEMENTED` |
//!
//! gRPC's codes for the last two are the ones its HTTP mapping gives a
//! 400 and a 501 that carry no `grpc-status` (gRPC's
//! `doc/http-grpc-status-mapping.md`).
//!
//! # A connection closed before a response: one kind, its own reason
//!
//! An upstream that takes the connection and closes it without answering
//! (it crashed mid-request, it closes idle connections early, it is not
//! HTTP) was reached, and `upstream connect error` would send an operator
//! looking for a port nothing listens on. So its answer says
//! `upstream connection closed` ([`UPSTREAM_CLOSED`]) instead. It stays
//! an [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable), with
//! that kind's `502`, `UNAVAILABLE` and metric label, `unreachable`:
//!
//! - Linkerd's proxy has no kind of its own for it either. Its client
//!   rescue answers any failure with an I/O error in its cause, a refused
//!   connect and a reset connection alike, `502` (gRPC `UNAVAILABLE`),
//!   telling them apart only in its `l5d-proxy-error` text (the error's
//!   own), and its error metrics label both `i/o`. A clean close, hyper's
//!   "connection closed before message completed", has no I/O error in
//!   its cause and falls to its catch-all, `500` `unexpected error`; here
//!   it is a `502` like a reset, as RFC 9110 §15.6.3 has a gateway
//!   answer an upstream that gave no valid response;
//! - to the caller and its retries they are one thing: the endpoint
//!   failed this request before answering. A retry policy's "connection
//!   errors" cover a broken connection as they cover a refused one, and
//!   retry layers above the proxy decide by this kind; a new one would
//!   have them miss it;
//! - a label of its own would split one alert's series in two, and every
//!   exhaustive match on the kind would change, for a difference the
//!   `mesh-error` header and the proxy's log line (the full cause, with
//!   the endpoint) already carry.
//!
//! # An answer that is not HTTP: the same kind, its own reason
//!
//! An upstream that takes the connection and answers with bytes that are
//! not a response of the protocol spoken (a malformed status line or head,
//! another protocol on the port, HTTP/2 frames that break the protocol or
//! do not start with its preface's `SETTINGS`) was reached too, and did
//! answer. Its answer says `upstream protocol error`
//! ([`UPSTREAM_PROTOCOL_ERROR`]), Envoy's name for it (the `UPE` response
//! flag, and the `protocol error` reset reason of its
//! `upstream_reset_before_response_started` detail), so that an operator
//! looks at what listens on the port rather than at whether anything does.
//! It stays an [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable)
//! (`502`, gRPC `UNAVAILABLE`), for the reasons above, and as Envoy
//! answers it. Linkerd's client rescue answers `502` only a failure with
//! an I/O error in its cause, which a malformed head has not: its outbound
//! server rescue answers that its catch-all `500` (`unexpected error`),
//! and passes an HTTP/2 error on as a reset of the caller's stream; a
//! gateway that got no valid response answers `502` (RFC 9110 §15.6.3).
//! A response head larger than the client takes is one too: the bytes
//! are not a response the client can read.
//!
//! # A stream the upstream reset: the same kind, its own reason
//!
//! An HTTP/2 upstream that resets the request's stream before a response
//! (`RST_STREAM`: `REFUSED_STREAM` when it sheds load, `CANCEL`,
//! `INTERNAL_ERROR`...) took the connection and the request, and said
//! so: its answer says `upstream reset the stream` ([`UPSTREAM_RESET`]),
//! and the [`UpstreamCause`] beside it carries the code. It is an
//! [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) (`502`,
//! gRPC `UNAVAILABLE`) for the reasons above. Envoy names it apart from a
//! failed connect in the same way: the reset reason its answer gives is
//! `remote reset` (or `remote refused stream reset`), where a failed
//! connect's is a connection failure (its `resetReasonToString`).
//! Linkerd's outbound server rescue answers no response to an HTTP/2
//! error at all, and passes it on as the error it is; here the caller
//! gets a response, which an HTTP/1 caller (whose request may have
//! crossed to the upstream as an HTTP/2 stream) can read, and the retry
//! layers above decide by, as for every other failure of the upstream.
//!
//! # Any other failure: the same kind, and no connect error
//!
//! `upstream connect error` is only ever said of a connection that could
//! not be made ([`UpstreamCause::Connect`]): a request that fails after
//! its connection was made, for a reason that names none of the causes
//! (an established connection the kernel gave up on, `ETIMEDOUT`, say),
//! gets `upstream request failed` ([`UPSTREAM_FAILED`]); the proxy's log
//! line has the full error. [`UpstreamCause::reason`] maps each cause to
//! its reason.
//!
//! Two more extensions say what the status cannot. One tells a retry
//! layer that the upstream never processed the request ([`Unprocessed`],
//! found by [`is_unprocessed`]), so that sending it again is safe whatever
//! its method. The other, [`UpstreamCause`], tells metrics what failed: a
//! refused connection, a connection closed under the request, a stream
//! the upstream reset (and with which code), a `GOAWAY`, an answer that
//! breaks the protocol. The one kind and
//! its `mesh-error` stay as they are; a label that needs the finer cause
//! reads it there, as linkerd2-proxy's route backend metrics tell these
//! apart.

use std::error::Error;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};

/// The error type layers pass around when they have no better one.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The header every synthesized response carries, with a short reason.
pub const MESH_ERROR: HeaderName = HeaderName::from_static("mesh-error");

/// The `mesh-error` (and `grpc-message`) of an
/// [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) answer
/// whose upstream took the connection, then closed it (or its socket was
/// reset, or its HTTP/2 connection went away with a `GOAWAY`) before a
/// response: the kind's own reason, `upstream connect error`, would send
/// an operator looking for a port nothing listens on.
pub const UPSTREAM_CLOSED: &str = "upstream connection closed";

/// The `mesh-error` (and `grpc-message`) of an
/// [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) answer
/// whose upstream took the connection and answered with bytes that are
/// not a response of the protocol spoken ([`UpstreamCause::Protocol`]).
pub const UPSTREAM_PROTOCOL_ERROR: &str = "upstream protocol error";

/// The `mesh-error` (and `grpc-message`) of an
/// [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) answer
/// whose HTTP/2 upstream took the connection and the request, then reset
/// the request's stream before a response (`RST_STREAM`, whatever its
/// code: [`UpstreamCause::Refused`], [`EnhanceYourCalm`](UpstreamCause::EnhanceYourCalm),
/// [`Canceled`](UpstreamCause::Canceled) or [`Reset`](UpstreamCause::Reset)
/// says which).
pub const UPSTREAM_RESET: &str = "upstream reset the stream";

/// The `mesh-error` (and `grpc-message`) of an
/// [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) answer
/// whose request failed after its connection was made, in a way that
/// names no [`UpstreamCause`]: a connection that timed out under it, say.
pub const UPSTREAM_FAILED: &str = "upstream request failed";

/// The gRPC status header.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC message header.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// A failure the mesh answers with a response of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyErrorKind {
    /// Authorization refused the request.
    Denied,
    /// No route matched the request.
    NoRoute,
    /// A rate limit refused the request.
    RateLimited,
    /// The upstream failed the request before any response: the
    /// connection could not be made (refused, timed out, a TLS handshake
    /// that failed), or the upstream closed it before answering, or reset
    /// the request's HTTP/2 stream, or answered with something that is
    /// not a response. `mesh-error` says which: `upstream connect error`
    /// (the kind's own [reason](Self::reason), for a connection that
    /// could not be made only), `upstream connection closed`
    /// ([`UPSTREAM_CLOSED`]), `upstream reset the stream`
    /// ([`UPSTREAM_RESET`]), `upstream protocol error`
    /// ([`UPSTREAM_PROTOCOL_ERROR`]) for an upstream that answered with
    /// bytes that are not HTTP, or `upstream request failed`
    /// ([`UPSTREAM_FAILED`]) when the error names none of these. One kind
    /// for all, as the module docs say why.
    UpstreamUnreachable,
    /// The mesh has nowhere to send the request right now.
    Unavailable,
    /// A timeout expired before the response arrived.
    Timeout,
    /// The request cannot be served as it was sent: a path or host that
    /// does not parse, or a body that failed or broke its framing while
    /// it was forwarded.
    InvalidRequest,
    /// The request asks for something the mesh does not do where it
    /// arrived, such as a `CONNECT` tunnel.
    Unsupported,
}

impl ProxyErrorKind {
    /// Every kind, in a fixed order. Useful to pre-register metric series.
    pub const ALL: [ProxyErrorKind; 8] = [
        Self::Denied,
        Self::NoRoute,
        Self::RateLimited,
        Self::UpstreamUnreachable,
        Self::Unavailable,
        Self::Timeout,
        Self::InvalidRequest,
        Self::Unsupported,
    ];

    /// The HTTP status an HTTP caller gets.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::Denied => StatusCode::FORBIDDEN,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unsupported => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The `grpc-status` code a gRPC caller gets.
    pub fn grpc_code(self) -> u16 {
        match self {
            Self::Denied => 7,
            Self::NoRoute => 5,
            Self::RateLimited => 8,
            Self::UpstreamUnreachable | Self::Unavailable => 14,
            Self::Timeout => 4,
            Self::InvalidRequest => 13,
            Self::Unsupported => 12,
        }
    }

    /// The reason written in the `mesh-error` header and `grpc-message`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Denied => "unauthorized request",
            Self::NoRoute => "no route",
            Self::RateLimited => "rate limited",
            Self::UpstreamUnreachable => "upstream connect error",
            Self::Unavailable => "service unavailable",
            Self::Timeout => "request timed out",
            Self::InvalidRequest => "invalid request",
            Self::Unsupported => "not supported",
        }
    }

    /// A short, stable name for metric labels: `denied`, `no_route`,
    /// `rate_limited`, `unreachable`, `unavailable`, `timeout`,
    /// `invalid_request` or `unsupported`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::NoRoute => "no_route",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnreachable => "unreachable",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::InvalidRequest => "invalid_request",
            Self::Unsupported => "unsupported",
        }
    }

    /// The response for `req`: trailers-only gRPC when `req` is gRPC, plain
    /// HTTP otherwise. The body is `B::default()`, which for every body type
    /// the engine uses is empty.
    pub fn response<B: Default>(self, req: &Request<impl Sized>) -> Response<B> {
        self.response_for(is_grpc(req.headers()))
    }

    /// The response for a caller that speaks gRPC (`grpc == true`) or plain
    /// HTTP.
    pub fn response_for<B: Default>(self, grpc: bool) -> Response<B> {
        self.response_with_reason(grpc, self.reason())
    }

    /// [`response_for`](Self::response_for), with `reason` in `mesh-error`
    /// (and `grpc-message`) instead of the kind's own: a more precise one,
    /// such as `invalid path` for an [`InvalidRequest`](Self::InvalidRequest).
    /// `reason` must be printable ASCII, as every reason the mesh writes is.
    pub fn response_with_reason<B: Default>(self, grpc: bool, reason: &'static str) -> Response<B> {
        self.respond(
            HeaderValue::from_static(reason),
            grpc.then(|| grpc_message(reason)),
        )
    }

    /// [`response_for`](Self::response_for), with `message`, made when the
    /// request is refused, in `mesh-error` (and `grpc-message`): a rate
    /// limit's refusal names the limit and its rate there, as
    /// linkerd2-proxy's `l5d-proxy-error` carries its `RateLimitError`
    /// (`total rate limit exceeded: 100rps`), so an operator reading one
    /// response knows which limit to raise.
    ///
    /// A header value must be printable: an empty `message`, or one with a
    /// control character or a character outside ASCII, gets the kind's own
    /// [reason](Self::reason) instead, so the response is always valid.
    /// In `grpc-message`, `%` is percent-encoded, as gRPC's HTTP/2
    /// protocol requires.
    pub fn response_with_message<B: Default>(self, grpc: bool, message: &str) -> Response<B> {
        if message.is_empty() || !message.bytes().all(|b| matches!(b, b' '..=b'~')) {
            return self.response_for(grpc);
        }
        let Ok(value) = HeaderValue::from_str(message) else {
            return self.response_for(grpc);
        };
        let grpc_message = grpc.then(|| match message.contains('%') {
            true => HeaderValue::from_str(&message.replace('%', "%25"))
                .unwrap_or_else(|_| value.clone()),
            false => value.clone(),
        });
        self.respond(value, grpc_message)
    }

    /// The answer, with `grpc_message` for a gRPC caller and `None` for
    /// an HTTP one.
    fn respond<B: Default>(
        self,
        mesh_error: HeaderValue,
        grpc_message: Option<HeaderValue>,
    ) -> Response<B> {
        let mut res = Response::new(B::default());
        if grpc_message.is_none() {
            *res.status_mut() = self.http_status();
        }
        let headers = res.headers_mut();
        headers.insert(MESH_ERROR, mesh_error);
        if let Some(grpc_message) = grpc_message {
            // A trailers-only response: HTTP 200, the status in the headers.
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_code()));
            headers.insert(GRPC_MESSAGE, grpc_message);
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl std::fmt::Display for ProxyErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Whether headers describe a gRPC request or response: a content type of
/// `application/grpc`, alone or with a `+proto`-style suffix.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(is_grpc_content_type)
}

/// Whether a `content-type` value is gRPC's, as [`is_grpc`] reads it: for
/// a caller that found the value on its own.
pub fn is_grpc_content_type(value: &HeaderValue) -> bool {
    value.to_str().ok().is_some_and(|ct| {
        ct.strip_prefix("application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
    })
}

/// Marks the mesh's own `502` (gRPC `UNAVAILABLE`) for a request the
/// upstream did not process, as [`is_unprocessed`] tells.
///
/// A request the upstream never processed took no effect there, so it can
/// be sent again whatever its method, a `POST` or a gRPC call included:
/// gRPC clients retry such calls on their own ("transparent retries",
/// gRPC proposal A6), and Envoy has a retry condition for them
/// (`refused-stream`). A retry layer above the proxy sees only the
/// response, and the
/// [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable) kind alone
/// also covers a connection that broke after the upstream acted: so
/// [`Forward`](crate::proxy::Forward) puts this extension beside the kind,
/// on that response only, when the error proves the request unprocessed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Unprocessed;

/// What made the upstream fail a request before any response, on the
/// mesh's [`UpstreamUnreachable`](ProxyErrorKind::UpstreamUnreachable)
/// answer as an extension beside the kind, when the error says.
///
/// Why: the answer is a response, and a layer above (the metrics of a
/// route's backends, say) sees only that: the error that caused it is
/// gone. Its `mesh-error` tells a connect error from a closed connection,
/// a reset stream and an answer that is not HTTP for an operator, but not
/// a stream the upstream refused from one it reset with another code,
/// which a dashboard tells apart (linkerd2-proxy labels its route
/// backend metrics `REFUSED`, `ENHANCE_YOUR_CALM`, `RESET`, `GO_AWAY`,
/// `IO`...). A `Copy` value read from the error once, on the failure path:
/// a response from the upstream carries none.
///
/// Found by [`of`](Self::of).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpstreamCause {
    /// The connection could not be opened: refused, unreachable, timed
    /// out, or a TLS handshake that failed. Nothing was sent.
    Connect,
    /// The connection closed or broke under the request: the upstream
    /// closed it before a response, or it was reset (`ECONNRESET`), or a
    /// write found it gone, or its HTTP/2 connection failed with such an
    /// I/O error.
    Closed,
    /// An HTTP/2 upstream reset the stream with `REFUSED_STREAM`: it did
    /// no processing of it (RFC 9113 §8.7).
    Refused,
    /// An HTTP/2 upstream reset the stream with `ENHANCE_YOUR_CALM`: it
    /// finds this client too demanding (RFC 9113 §7).
    EnhanceYourCalm,
    /// An HTTP/2 stream was reset with `CANCEL`: it is no longer needed.
    Canceled,
    /// An HTTP/2 stream was reset with any other error code.
    Reset,
    /// The stream failed because of a `GOAWAY`: the upstream is closing
    /// the connection, and this stream is one it will not answer.
    GoAway,
    /// The upstream answered with bytes that are not a response of the
    /// protocol spoken: an HTTP/1 head that does not parse (or is larger
    /// than the client takes), or HTTP/2 frames that break the protocol
    /// (a preface that is not HTTP/2, a frame too large, headers that do
    /// not decode), for which the client reset the stream or closed the
    /// connection itself. A reset or `GOAWAY` the upstream sent, whatever
    /// its code, is [`Reset`](Self::Reset) or [`GoAway`](Self::GoAway).
    /// A response framed with a transfer coding the proxy cannot pass on
    /// (`mesh-error: upstream transfer coding not supported`) is one too:
    /// it is no response the caller can be given.
    Protocol,
}

impl UpstreamCause {
    /// The cause `error`, which ended a request before any response, names,
    /// or `None` when it names none of these. The first error of the
    /// `source()` chain, from the outside in, that says decides:
    ///
    /// - the client's connect error: [`Connect`](Self::Connect), whatever
    ///   its own cause (a TLS handshake the peer cut short fails with a
    ///   reset, but no connection was made);
    /// - an HTTP/2 error: one the client made itself, a reset or `GOAWAY`
    ///   for what the upstream sent, is [`Protocol`](Self::Protocol);
    ///   else a reset by its code, a `GOAWAY`, or an I/O error of the
    ///   connection ([`Closed`](Self::Closed));
    /// - an I/O error: a broken connection (reset, aborted, broken pipe,
    ///   an early end) is [`Closed`](Self::Closed); one that says the
    ///   connection could not be made (refused, unreachable) is
    ///   [`Connect`](Self::Connect);
    /// - hyper's error for a response head that does not parse:
    ///   [`Protocol`](Self::Protocol);
    /// - hyper's error for a connection that closed before a whole
    ///   response, or a request dropped unsent because its connection
    ///   closed, is [`Closed`](Self::Closed), unless an HTTP/2 error
    ///   among its causes says more.
    pub fn of(error: &(dyn Error + 'static)) -> Option<Self> {
        let mut closed = false;
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(e) = e.downcast_ref::<crate::client::ClientError>() {
                if e.is_connect() {
                    return Some(Self::Connect);
                }
            } else if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
                if e.is_connect() {
                    return Some(Self::Connect);
                }
            } else if let Some(e) = e.downcast_ref::<h2::Error>() {
                // An h2 error has no source: it decides.
                return Self::of_h2(e).or(closed.then_some(Self::Closed));
            } else if let Some(e) = e.downcast_ref::<std::io::Error>() {
                if let Some(cause) = Self::of_io(e.kind()) {
                    return Some(cause);
                }
                // A custom `io::Error` hides the error it wraps from
                // `source()`.
                if let Some(cause) = e.get_ref().and_then(|inner| Self::of(inner)) {
                    return Some(cause);
                }
            } else if let Some(e) = e.downcast_ref::<hyper::Error>() {
                if e.is_parse() {
                    return Some(Self::Protocol);
                }
                closed |= e.is_incomplete_message() || e.is_canceled() || e.is_closed();
            }
            next = e.source();
        }
        closed.then_some(Self::Closed)
    }

    /// The `mesh-error` (and `grpc-message`) of the mesh's answer to a
    /// request that failed for this cause, so that it says what happened:
    ///
    /// - [`Connect`](Self::Connect): `upstream connect error`, the kind's
    ///   own [reason](ProxyErrorKind::reason), and the only cause that
    ///   says it, as the only one where no connection was made;
    /// - [`Closed`](Self::Closed), [`GoAway`](Self::GoAway): `upstream
    ///   connection closed` ([`UPSTREAM_CLOSED`]);
    /// - [`Refused`](Self::Refused), [`EnhanceYourCalm`](Self::EnhanceYourCalm),
    ///   [`Canceled`](Self::Canceled), [`Reset`](Self::Reset): `upstream
    ///   reset the stream` ([`UPSTREAM_RESET`]);
    /// - [`Protocol`](Self::Protocol): `upstream protocol error`
    ///   ([`UPSTREAM_PROTOCOL_ERROR`]).
    ///
    /// A failure with no cause gets `upstream request failed`
    /// ([`UPSTREAM_FAILED`]).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Connect => ProxyErrorKind::UpstreamUnreachable.reason(),
            Self::Closed | Self::GoAway => UPSTREAM_CLOSED,
            Self::Refused | Self::EnhanceYourCalm | Self::Canceled | Self::Reset => UPSTREAM_RESET,
            Self::Protocol => UPSTREAM_PROTOCOL_ERROR,
        }
    }

    fn of_h2(e: &h2::Error) -> Option<Self> {
        // A reset or `GOAWAY` h2 made itself, for what the upstream sent.
        if e.is_library() {
            return Some(Self::Protocol);
        }
        if e.is_reset() {
            return Some(match e.reason() {
                Some(h2::Reason::REFUSED_STREAM) => Self::Refused,
                Some(h2::Reason::ENHANCE_YOUR_CALM) => Self::EnhanceYourCalm,
                Some(h2::Reason::CANCEL) => Self::Canceled,
                _ => Self::Reset,
            });
        }
        if e.is_go_away() {
            return Some(Self::GoAway);
        }
        e.is_io().then_some(Self::Closed)
    }

    fn of_io(kind: std::io::ErrorKind) -> Option<Self> {
        use std::io::ErrorKind as Io;
        match kind {
            Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::UnexpectedEof => {
                Some(Self::Closed)
            }
            Io::ConnectionRefused
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::AddrNotAvailable => Some(Self::Connect),
            _ => None,
        }
    }
}

/// Whether `error`, which ended a request before any response, proves that
/// the upstream did not process the request: sending it again cannot
/// repeat anything it did. The first error of the `source()` chain, from
/// the outside in, that says something decides:
///
/// - an HTTP/2 stream the upstream reset with `REFUSED_STREAM`, which a
///   server may send only for a stream it did no processing of (RFC 9113
///   §8.7);
/// - an HTTP/2 stream failed by a `GOAWAY` the upstream sent with
///   `NO_ERROR`. h2 fails so the streams above the frame's last stream id,
///   which the upstream says it has not processed and will not, and a
///   request that would open a stream after the frame; the streams at or
///   below it carry on, and if the connection closes under them, they end
///   with a broken pipe, which is not one. A `GOAWAY` with an error code
///   is not taken as proof: when the connection closes after it, h2 ends
///   the connection itself with that same remote `GOAWAY`, which says
///   nothing about which side of the last stream id a request was on;
/// - hyper's canceled error: the request was dropped before it was
///   written to a connection. hyper-util's client sends such a request
///   again itself when it was meant for a pooled connection; the rest
///   reach the caller.
///
/// Any other failure (a reset with another code, a connection that broke,
/// a timeout, an error of the caller's own body) may have come after the
/// upstream acted on the request, and is not one. An HTTP/2 error this
/// side made (a reset or `GOAWAY` it sent, a protocol error it found) is
/// not the upstream's word either. A connection that could not be opened
/// sent nothing, but is not one here: it is a connection error, which a
/// retry policy retries or not on its own terms.
pub fn is_unprocessed(error: &(dyn Error + 'static)) -> bool {
    if is_turned_away(error) {
        return true;
    }
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether `error` is an HTTP/2 upstream turning the request away
/// unprocessed, by its own word: a stream it reset with `REFUSED_STREAM`,
/// or one above the last stream id of a `GOAWAY` it sent with `NO_ERROR`.
/// The part of [`is_unprocessed`] that says nothing bad of the endpoint.
pub(crate) fn is_turned_away(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<h2::Error>() {
            // An h2 error has no source: it decides.
            return e.is_remote()
                && match e.reason() {
                    Some(h2::Reason::REFUSED_STREAM) => e.is_reset(),
                    Some(h2::Reason::NO_ERROR) => e.is_go_away(),
                    _ => false,
                };
        }
        next = e.source();
    }
    false
}

fn grpc_message(reason: &'static str) -> HeaderValue {
    // The reasons are plain ASCII with spaces, which gRPC's percent-encoding
    // leaves as they are.
    HeaderValue::from_static(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_message_made_at_refusal_is_carried_by_both_headers() {
        let message = "total rate limit exceeded: 100rps";
        let res: Response<String> =
            ProxyErrorKind::RateLimited.response_with_message(false, message);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[MESH_ERROR], message);
        let res: Response<String> =
            ProxyErrorKind::RateLimited.response_with_message(true, message);
        assert_eq!(res.headers()[GRPC_STATUS], "8");
        assert_eq!(res.headers()[GRPC_MESSAGE], message);
        assert_eq!(res.headers()[MESH_ERROR], message);
    }

    #[test]
    fn a_message_that_is_no_valid_header_gets_the_kinds_reason() {
        for message in [
            "limit\r\nset-cookie: x=1",
            "tab\there",
            "caf\u{e9} limit",
            "del\u{7f}",
            "",
        ] {
            let res: Response<String> =
                ProxyErrorKind::RateLimited.response_with_message(true, message);
            assert_eq!(res.headers()[MESH_ERROR], "rate limited", "{message:?}");
            assert_eq!(res.headers()[GRPC_MESSAGE], "rate limited", "{message:?}");
            assert!(res.headers().get("set-cookie").is_none());
        }
    }

    #[test]
    fn percent_is_encoded_in_grpc_message_only() {
        let res: Response<String> =
            ProxyErrorKind::RateLimited.response_with_message(true, "100% of a 5 rps limit");
        assert_eq!(res.headers()[MESH_ERROR], "100% of a 5 rps limit");
        assert_eq!(res.headers()[GRPC_MESSAGE], "100%25 of a 5 rps limit");
    }

    #[test]
    fn http_callers_get_the_status_and_a_mesh_error_header() {
        let res: Response<String> = ProxyErrorKind::UpstreamUnreachable.response(&request(None));
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()[MESH_ERROR], "upstream connect error");
        assert!(res.headers().get(GRPC_STATUS).is_none());
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::UpstreamUnreachable)
        );
    }

    #[test]
    fn grpc_callers_get_a_trailers_only_response() {
        for (kind, code) in [
            (ProxyErrorKind::Denied, "7"),
            (ProxyErrorKind::NoRoute, "5"),
            (ProxyErrorKind::RateLimited, "8"),
            (ProxyErrorKind::UpstreamUnreachable, "14"),
            (ProxyErrorKind::Unavailable, "14"),
            (ProxyErrorKind::Timeout, "4"),
            (ProxyErrorKind::InvalidRequest, "13"),
            (ProxyErrorKind::Unsupported, "12"),
        ] {
            let res: Response<String> = kind.response(&request(Some("application/grpc+proto")));
            assert_eq!(res.status(), StatusCode::OK, "{kind:?}");
            assert_eq!(res.headers()[GRPC_STATUS], code, "{kind:?}");
            assert_eq!(res.headers()[GRPC_MESSAGE], kind.reason());
            assert!(res.headers().contains_key(MESH_ERROR));
        }
    }

    #[test]
    fn every_kind_has_its_http_status() {
        let statuses: Vec<u16> = ProxyErrorKind::ALL
            .iter()
            .map(|k| k.http_status().as_u16())
            .collect();
        assert_eq!(statuses, [403, 404, 429, 502, 503, 504, 400, 501]);
    }

    #[test]
    fn a_precise_reason_replaces_the_kinds_own_and_keeps_the_kind() {
        let res: Response<String> =
            ProxyErrorKind::InvalidRequest.response_with_reason(false, "invalid path");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[MESH_ERROR], "invalid path");
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::InvalidRequest)
        );
        let grpc: Response<String> =
            ProxyErrorKind::InvalidRequest.response_with_reason(true, "invalid path");
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()[GRPC_STATUS], "13");
        assert_eq!(grpc.headers()[GRPC_MESSAGE], "invalid path");
    }

    /// An error whose cause is `.0`, as a client wraps the errors of the
    /// connection below it.
    #[derive(Debug)]
    struct Wrapped(BoxError);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    /// The error of a request whose stream an HTTP/2 server resets with
    /// `reason` at once, over an in-memory connection.
    async fn reset_by_server(reason: h2::Reason) -> h2::Error {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(server).await.unwrap();
            while let Some(Ok((_, mut respond))) = conn.accept().await {
                respond.send_reset(reason);
            }
        });
        let (mut send, conn) = h2::client::handshake(client).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("http://upstream/").body(()).unwrap();
        let (response, _) = send.send_request(req, true).unwrap();
        response.await.unwrap_err()
    }

    #[tokio::test]
    async fn a_stream_the_upstream_refused_was_not_processed() {
        let refused = reset_by_server(h2::Reason::REFUSED_STREAM).await;
        assert!(refused.is_remote(), "{refused}");
        assert!(is_unprocessed(&refused));
        assert!(is_unprocessed(&Wrapped(Box::new(refused))));
    }

    #[tokio::test]
    async fn a_stream_the_upstream_reset_otherwise_may_have_been_processed() {
        for reason in [
            h2::Reason::INTERNAL_ERROR,
            h2::Reason::CANCEL,
            h2::Reason::NO_ERROR,
        ] {
            let reset = reset_by_server(reason).await;
            assert!(reset.is_remote(), "{reset}");
            assert!(!is_unprocessed(&reset), "{reset}");
            assert!(!is_unprocessed(&Wrapped(Box::new(reset))), "{reason:?}");
        }
    }

    #[test]
    fn an_http2_error_this_side_made_is_not_the_upstreams_word() {
        // A bare reason is what h2 and hyper make of a protocol error found
        // on this side, or of a reset this side sends.
        for reason in [h2::Reason::REFUSED_STREAM, h2::Reason::NO_ERROR] {
            let error = h2::Error::from(reason);
            assert!(!error.is_remote());
            assert!(!is_unprocessed(&error), "{error}");
            assert!(!is_unprocessed(&Wrapped(Box::new(error))), "{reason:?}");
        }
    }

    #[tokio::test]
    async fn a_request_hyper_canceled_before_sending_it_was_not_processed() {
        let (io, _peer) = tokio::io::duplex(1024);
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        // The connection goes before the request is written to it.
        drop(conn);
        let req = Request::post("/orders")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
        let canceled = send.send_request(req).await.unwrap_err();
        assert!(canceled.is_canceled(), "{canceled}");
        assert!(is_unprocessed(&canceled));
        assert!(is_unprocessed(&Wrapped(Box::new(canceled))));
    }

    #[test]
    fn a_broken_connection_and_other_errors_prove_nothing() {
        use std::io;
        for kind in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::TimedOut,
        ] {
            let error = io::Error::new(kind, "stream closed because of a broken pipe");
            assert!(!is_unprocessed(&error), "{kind:?}");
            assert!(!is_unprocessed(&Wrapped(Box::new(error))), "{kind:?}");
        }
        let other: BoxError = "something else".into();
        assert!(!is_unprocessed(&*other));
    }

    #[tokio::test]
    async fn a_reset_names_its_cause_by_its_code() {
        for (reason, cause) in [
            (h2::Reason::REFUSED_STREAM, UpstreamCause::Refused),
            (
                h2::Reason::ENHANCE_YOUR_CALM,
                UpstreamCause::EnhanceYourCalm,
            ),
            (h2::Reason::CANCEL, UpstreamCause::Canceled),
            (h2::Reason::INTERNAL_ERROR, UpstreamCause::Reset),
            (h2::Reason::PROTOCOL_ERROR, UpstreamCause::Reset),
        ] {
            let reset = reset_by_server(reason).await;
            assert_eq!(UpstreamCause::of(&reset), Some(cause), "{reset}");
            let wrapped = Wrapped(Box::new(reset));
            assert_eq!(UpstreamCause::of(&wrapped), Some(cause), "{reason:?}");
        }
    }

    #[test]
    fn an_io_error_names_a_broken_or_refused_connection() {
        use std::io;
        for (kind, cause) in [
            (io::ErrorKind::ConnectionReset, Some(UpstreamCause::Closed)),
            (io::ErrorKind::BrokenPipe, Some(UpstreamCause::Closed)),
            (io::ErrorKind::UnexpectedEof, Some(UpstreamCause::Closed)),
            (
                io::ErrorKind::ConnectionAborted,
                Some(UpstreamCause::Closed),
            ),
            (
                io::ErrorKind::ConnectionRefused,
                Some(UpstreamCause::Connect),
            ),
            (io::ErrorKind::HostUnreachable, Some(UpstreamCause::Connect)),
            (io::ErrorKind::TimedOut, None),
            (io::ErrorKind::InvalidData, None),
        ] {
            let error = io::Error::from(kind);
            assert_eq!(UpstreamCause::of(&error), cause, "{kind:?}");
            assert_eq!(
                UpstreamCause::of(&Wrapped(Box::new(error))),
                cause,
                "{kind:?}"
            );
        }
        // One an `io::Error` wraps, hidden from `source()`.
        let hidden = io::Error::other(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(UpstreamCause::of(&hidden), Some(UpstreamCause::Closed));
        let other: BoxError = "something else".into();
        assert_eq!(UpstreamCause::of(&*other), None);
    }

    #[tokio::test]
    async fn a_request_dropped_as_its_connection_closed_names_a_closed_one() {
        let (io, _peer) = tokio::io::duplex(1024);
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        drop(conn);
        let req = Request::get("/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let canceled = send.send_request(req).await.unwrap_err();
        assert_eq!(UpstreamCause::of(&canceled), Some(UpstreamCause::Closed));
    }

    #[tokio::test]
    async fn a_head_that_does_not_parse_names_a_protocol_error() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (io, mut peer) = tokio::io::duplex(1024);
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        // Answers once the request head is in: bytes before it would be
        // no answer to it.
        tokio::spawn(async move {
            let mut buf = [0; 1024];
            let _ = peer.read(&mut buf).await;
            let _ = peer.write_all(b"garbage\r\n\r\n").await;
            while matches!(peer.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        let req = Request::get("/")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let error = send.send_request(req).await.unwrap_err();
        assert!(error.is_parse(), "{error}");
        assert_eq!(UpstreamCause::of(&error), Some(UpstreamCause::Protocol));
        let wrapped = Wrapped(Box::new(error));
        assert_eq!(UpstreamCause::of(&wrapped), Some(UpstreamCause::Protocol));
    }

    #[test]
    fn only_a_connection_that_was_not_made_is_a_connect_error() {
        use UpstreamCause as C;
        for (cause, reason) in [
            (C::Connect, "upstream connect error"),
            (C::Closed, UPSTREAM_CLOSED),
            (C::GoAway, UPSTREAM_CLOSED),
            (C::Refused, UPSTREAM_RESET),
            (C::EnhanceYourCalm, UPSTREAM_RESET),
            (C::Canceled, UPSTREAM_RESET),
            (C::Reset, UPSTREAM_RESET),
            (C::Protocol, UPSTREAM_PROTOCOL_ERROR),
        ] {
            assert_eq!(cause.reason(), reason, "{cause:?}");
        }
    }

    #[test]
    fn grpc_detection_reads_the_content_type() {
        assert!(is_grpc(request(Some("application/grpc")).headers()));
        assert!(is_grpc(request(Some("application/grpc+json")).headers()));
        assert!(!is_grpc(request(Some("application/grpcweb")).headers()));
        assert!(!is_grpc(request(Some("text/plain")).headers()));
        assert!(!is_grpc(request(None).headers()));
    }
}
