//! Deciding whether a response is a success or a failure.
//!
//! Retries and metrics both ask "did this request fail?". If each answered on
//! its own, a dashboard could show 100 % success while the retry layer was
//! retrying, or the other way round. So there is one answer, [`Classify`],
//! built once from config and shared: the retry layer retries what it calls a
//! failure, and metrics count the same thing in
//! `response_total{classification="failure"}`.
//!
//! # What counts as a failure
//!
//! - **HTTP**: a status in [`Classify::http_failures`], by default 500 to 599.
//!   A 4xx says the request was wrong, not the server, so it is a success.
//! - **gRPC**: a `grpc-status` in [`Classify::grpc_failures`], by default
//!   Linkerd's set, [`GrpcCodes::linkerd_failures`]: `UNKNOWN`,
//!   `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, `INTERNAL`, `UNAVAILABLE`
//!   and `DATA_LOSS`. Why Linkerd's: users of a mesh read its success rates
//!   beside the ones `linkerd viz stat` shows, and linkerd2-proxy
//!   classifies every gRPC response that no route policy classifies
//!   otherwise by these codes (the default `Codes` of its client policy,
//!   `linkerd/proxy/client-policy/src/grpc.rs`, read by
//!   `linkerd/app/core/src/classify.rs`): for its `response_total`, for
//!   a ServiceProfile route's metrics and retries where no response class
//!   matches, and for its failure accrual. With another set, the same
//!   calls would read as two success rates.
//!
//!   The set is not gRPC's own line between a server's fault and its
//!   caller's: gRPC's HTTP mapping (`doc/http-grpc-status-mapping.md`)
//!   gives `UNIMPLEMENTED` a 5xx and `PERMISSION_DENIED` a 4xx. So here a
//!   gRPC call a policy denies (answered `PERMISSION_DENIED`) is a
//!   failure, though the same denial of an HTTP request (a `403`) is a
//!   success; and a call of a method the server does not have
//!   (`UNIMPLEMENTED`) is a success, though an HTTP `501` is a failure.
//!   `NOT_FOUND`, `INVALID_ARGUMENT` and the caller's other codes are
//!   successes in both. To draw the line where gRPC's mapping does, opt in
//!   with `with_grpc_failures(GrpcCodes::server_errors())`
//!   ([`GrpcCodes::server_errors`]); [`GrpcCodes::all_errors`] counts
//!   every code but `OK`.
//!
//!   A gRPC response carries its status either in the headers (a
//!   trailers-only response) or in the trailers. When the headers of a
//!   `200` do not have it, [`Classify::classify_response`] returns
//!   [`Classification::Pending`], and the caller asks again with
//!   [`Classify::classify_trailers`] when the body ends. A stream that ends
//!   with no `grpc-status` at all is a failure. A `grpc-status` that is not
//!   a number is read as `UNKNOWN`, as gRPC clients read it.
//!   A gRPC call answered by a response that is not gRPC (an HTTP server's
//!   page, `200` included) is read as its gRPC client reads it, by the
//!   code gRPC's HTTP mapping gives its status (a `200` page is `UNKNOWN`,
//!   a failure): [`Classify::classify_response_to`] reads it so when told
//!   the request was a gRPC call.
//! - **A route's response classes**: the statuses a ServiceProfile route's
//!   `responseClasses` match are decided by those classes, before any
//!   `grpc-status`, as Linkerd's profile classifier has them
//!   ([`Classify::with_class_statuses`]).
//! - **Errors**: a request that ended in an error instead of a response is
//!   always a failure. [`Classify::classify_error`] says what kind (timeout,
//!   connect, reset, other) by looking through the error's `source()` chain.
//! - **Synthesized responses**: a response the mesh answered itself carries a
//!   [`ProxyErrorKind`] extension. It is classified by the same status rules
//!   as any other response (so a mesh 504 and an application 504 agree), and
//!   when it is a failure the reason is [`FailureReason::Proxy`], so metrics
//!   can tell the two apart.
//!
//! Classifying a response does not allocate: the sets are bit sets, and the
//! headers are read in place.
//!
//! ```
//! use mesh_core::classify::{
//!     Classification, Classify, FailureReason, GrpcCode, GrpcCodes, ResponseClass,
//! };
//!
//! let classify = Classify::default();
//! let res = http::Response::builder().status(503).body(()).unwrap();
//! assert_eq!(
//!     classify.classify_response(&res),
//!     Classification::Final(ResponseClass::Failure(FailureReason::HttpStatus(
//!         http::StatusCode::SERVICE_UNAVAILABLE
//!     ))),
//! );
//!
//! // Linkerd's gRPC codes by default; gRPC's HTTP mapping on request.
//! let denied = GrpcCode::PERMISSION_DENIED;
//! let unimplemented = GrpcCode::UNIMPLEMENTED;
//! assert!(classify.classify_grpc_status(denied).is_failure());
//! assert!(classify.classify_grpc_status(unimplemented).is_success());
//! let by_grpc_mapping = Classify::new().with_grpc_failures(GrpcCodes::server_errors());
//! assert!(by_grpc_mapping.classify_grpc_status(denied).is_success());
//! assert!(by_grpc_mapping.classify_grpc_status(unimplemented).is_failure());
//! ```

use std::fmt;

use http::{Extensions, HeaderMap, Response, StatusCode, response};

use crate::error::{GRPC_STATUS, ProxyErrorKind, is_grpc};

mod error_kind;
mod grpc;
#[cfg(test)]
mod parse_tests;
mod status;
#[cfg(test)]
mod tests;

pub use self::{
    error_kind::ErrorKind,
    grpc::{GrpcCode, GrpcCodes, InvalidGrpcCode},
    status::{InvalidStatusRange, StatusRanges},
};

/// Whether a request succeeded, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// The request succeeded.
    Success,
    /// The request failed.
    Failure(FailureReason),
}

impl ResponseClass {
    /// Whether this is [`Success`](Self::Success).
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// Whether this is a [`Failure`](Self::Failure).
    pub fn is_failure(&self) -> bool {
        !self.is_success()
    }

    /// The reason for a failure; `None` for a success.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        match self {
            Self::Success => None,
            Self::Failure(reason) => Some(*reason),
        }
    }

    /// `success` or `failure`: the values of the `classification` label.
    pub fn as_label(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure(_) => "failure",
        }
    }
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// The HTTP status is one of the failure statuses.
    HttpStatus(StatusCode),
    /// The `grpc-status` is one of the failure codes.
    GrpcStatus(GrpcCode),
    /// A gRPC response ended without a `grpc-status`.
    GrpcStatusMissing,
    /// A gRPC call was answered by a response that is not gRPC (neither
    /// its `content-type` nor a `grpc-status`), with this status.
    NotGrpc(StatusCode),
    /// There was no response, only an error.
    Error(ErrorKind),
    /// The mesh answered with a failure response of its own.
    Proxy(ProxyErrorKind),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpStatus(status) => write!(f, "http status {}", status.as_u16()),
            Self::GrpcStatus(code) => write!(f, "grpc status {code}"),
            Self::GrpcStatusMissing => f.write_str("grpc status missing"),
            Self::NotGrpc(status) => {
                write!(f, "not a grpc response (http status {})", status.as_u16())
            }
            Self::Error(kind) => write!(f, "{} error", kind.as_label()),
            Self::Proxy(kind) => write!(f, "{kind}"),
        }
    }
}

/// What the response head says: a final class, or "ask the trailers".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Classification {
    /// The head decides the class.
    Final(ResponseClass),
    /// A gRPC response without `grpc-status` in its headers: the status comes
    /// in the trailers. Call [`Classify::classify_trailers`] when the body
    /// ends, or [`Classify::classify_error`] if it fails first.
    Pending,
}

impl Classification {
    /// The final class, or `None` while pending.
    pub fn into_final(self) -> Option<ResponseClass> {
        match self {
            Self::Final(class) => Some(class),
            Self::Pending => None,
        }
    }
}

/// The success-or-failure rules retries and metrics share.
///
/// Build it once from config and clone it into each layer: it is a pair of
/// bit sets, so a clone is a small copy and classifying never allocates.
///
/// ```
/// use mesh_core::classify::{Classify, GrpcCodes, StatusRanges};
///
/// // Count 429 as a failure too, and every gRPC code but `OK`.
/// let classify = Classify::new()
///     .with_http_failures("5xx,429".parse()?)
///     .with_grpc_failures(GrpcCodes::all_errors());
/// assert!(classify.classify_status(http::StatusCode::TOO_MANY_REQUESTS).is_failure());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Classify {
    http_failures: StatusRanges,
    grpc_failures: GrpcCodes,
    class_statuses: StatusRanges,
}

impl Default for Classify {
    /// 5xx statuses and Linkerd's gRPC codes,
    /// [`GrpcCodes::linkerd_failures`], are failures (see the
    /// [module docs](self) for why).
    fn default() -> Self {
        Self {
            http_failures: StatusRanges::server_errors(),
            grpc_failures: GrpcCodes::linkerd_failures(),
            class_statuses: StatusRanges::empty(),
        }
    }
}

impl Classify {
    /// The default rules: HTTP 500 to 599 and the gRPC codes of
    /// [`GrpcCodes::linkerd_failures`] are failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the HTTP statuses that are failures. Default is 500 to 599.
    #[must_use]
    pub fn with_http_failures(mut self, statuses: StatusRanges) -> Self {
        self.http_failures = statuses;
        self
    }

    /// Sets the gRPC codes that are failures. Default is
    /// [`GrpcCodes::linkerd_failures`], as linkerd2-proxy counts them;
    /// [`GrpcCodes::server_errors`] counts the codes gRPC's HTTP mapping
    /// gives a 5xx instead.
    #[must_use]
    pub fn with_grpc_failures(mut self, codes: GrpcCodes) -> Self {
        self.grpc_failures = codes;
        self
    }

    /// Sets the statuses a route's own response classes decide: those
    /// that one of a ServiceProfile route's `responseClasses` matches.
    /// Default none.
    ///
    /// Why: a profile's classes are written for the route, and Linkerd
    /// lets them decide before anything else. Its profile classifier
    /// (`classify::Response::Profile` in linkerd2-proxy's
    /// `linkerd/app/core/src/classify.rs`) tries the classes on the
    /// response head first; only when none matches does a `grpc-status`
    /// (in the head, or else in the trailers) decide, and then the HTTP
    /// status. So a response whose status is in this set is classified by
    /// that status alone, against [`http_failures`](Self::http_failures)
    /// (which holds the class's verdict), whatever `grpc-status` or gRPC
    /// `content-type` it carries: a gRPC call answered `200` with
    /// `grpc-status: 13` is a success on a route whose class calls `200`
    /// one. A response with any other status is classified as without
    /// classes.
    ///
    /// ```
    /// use mesh_core::classify::{Classify, StatusRanges};
    ///
    /// // responseClasses: [{condition: {status: {min: 200, max: 299}}, isFailure: false}]
    /// let classify = Classify::new().with_class_statuses("200-299".parse()?);
    /// let res = http::Response::builder()
    ///     .header("content-type", "application/grpc")
    ///     .header("grpc-status", "13")
    ///     .body(())
    ///     .unwrap();
    /// assert!(classify.classify_response(&res).into_final().is_some_and(|c| c.is_success()));
    /// # Ok::<(), mesh_core::classify::InvalidStatusRange>(())
    /// ```
    #[must_use]
    pub fn with_class_statuses(mut self, statuses: StatusRanges) -> Self {
        self.class_statuses = statuses;
        self
    }

    /// The HTTP statuses that are failures.
    pub fn http_failures(&self) -> &StatusRanges {
        &self.http_failures
    }

    /// The statuses a route's response classes decide (see
    /// [`with_class_statuses`](Self::with_class_statuses)).
    pub fn class_statuses(&self) -> &StatusRanges {
        &self.class_statuses
    }

    /// The gRPC codes that are failures.
    pub fn grpc_failures(&self) -> GrpcCodes {
        self.grpc_failures
    }

    /// Classifies a response by its head, as the answer to a request of
    /// any kind: the response alone says whether it is gRPC. When the
    /// request is known, [`classify_response_to`](Self::classify_response_to)
    /// also reads a gRPC call answered by something that is not gRPC.
    pub fn classify_response<B>(&self, res: &Response<B>) -> Classification {
        self.classify_head(false, res.status(), res.headers(), res.extensions())
    }

    /// Classifies a response by its head, knowing whether it answers a gRPC
    /// call (a request with a gRPC `content-type`, see
    /// [`is_grpc`]).
    ///
    /// Why the request matters: a gRPC call that reaches an HTTP server
    /// (a misrouted call, a proxy's error page) can be answered by a `200`
    /// that is not gRPC at all. An HTTP client would call that a success;
    /// the gRPC client that made the call fails it, with `UNKNOWN`. So for a
    /// gRPC call, a response with neither a gRPC `content-type` nor a
    /// `grpc-status` is classified by the code its client turns the HTTP
    /// status into (gRPC's "HTTP to gRPC status code mapping": `200` and
    /// every status it does not list are `UNKNOWN`, `404` is
    /// `UNIMPLEMENTED`...), with [`FailureReason::NotGrpc`] as the reason.
    /// Every other response is classified as by
    /// [`classify_response`](Self::classify_response).
    pub fn classify_response_to<B>(&self, grpc_call: bool, res: &Response<B>) -> Classification {
        self.classify_head(grpc_call, res.status(), res.headers(), res.extensions())
    }

    /// Classifies a response head, as [`classify_response`](Self::classify_response).
    pub fn classify_parts(&self, parts: &response::Parts) -> Classification {
        self.classify_head(false, parts.status, &parts.headers, &parts.extensions)
    }

    fn classify_head(
        &self,
        grpc_call: bool,
        status: StatusCode,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Classification {
        // A route's response classes decide first (see
        // `with_class_statuses`). They are asked only on the gRPC
        // branches: anywhere else the status decides anyway, by the same
        // `http_failures`, so a plain HTTP response does no more work for
        // them, with classes or without.
        let class = if let Some(code) = grpc_status(headers) {
            if self.class_statuses.contains(status) {
                self.classify_status(status)
            } else {
                // Trailers-only: the status is in the headers.
                self.classify_grpc_status(code)
            }
        } else if is_grpc(headers) {
            if self.class_statuses.contains(status) {
                self.classify_status(status)
            } else if status == StatusCode::OK {
                // Only a `200` carries a gRPC stream. gRPC clients fail
                // any other status without a `grpc-status` in its
                // headers, a `204` or `206` included, whatever trailers
                // follow.
                return Classification::Pending;
            } else {
                self.classify_grpc_http_status(status, FailureReason::HttpStatus(status))
            }
        } else if grpc_call && !self.class_statuses.contains(status) {
            self.classify_grpc_http_status(status, FailureReason::NotGrpc(status))
        } else {
            self.classify_status(status)
        };
        Classification::Final(match (class, extensions.get::<ProxyErrorKind>()) {
            (ResponseClass::Failure(_), Some(kind)) => {
                ResponseClass::Failure(FailureReason::Proxy(*kind))
            }
            (class, _) => class,
        })
    }

    /// Classifies the trailers of a response that was
    /// [`Pending`](Classification::Pending). `None` (the stream ended
    /// without trailers) and trailers without `grpc-status` are failures.
    pub fn classify_trailers(&self, trailers: Option<&HeaderMap>) -> ResponseClass {
        match trailers.and_then(grpc_status) {
            Some(code) => self.classify_grpc_status(code),
            None => ResponseClass::Failure(FailureReason::GrpcStatusMissing),
        }
    }

    /// Classifies an HTTP status.
    pub fn classify_status(&self, status: StatusCode) -> ResponseClass {
        if self.http_failures.contains(status) {
            ResponseClass::Failure(FailureReason::HttpStatus(status))
        } else {
            ResponseClass::Success
        }
    }

    /// Classifies a gRPC status. A code gRPC does not define is read as
    /// `UNKNOWN`, but the reason keeps the code as received.
    pub fn classify_grpc_status(&self, code: GrpcCode) -> ResponseClass {
        let effective = if code.is_defined() {
            code
        } else {
            GrpcCode::UNKNOWN
        };
        if self.grpc_failures.contains(effective) {
            ResponseClass::Failure(FailureReason::GrpcStatus(code))
        } else {
            ResponseClass::Success
        }
    }

    /// Classifies an error that ended a request, or a response body, before
    /// it completed. It is always a failure; see [`ErrorKind::of`] for how
    /// the kind is found.
    ///
    /// A [`BoxError`](crate::BoxError) `e` is passed as `&*e`.
    pub fn classify_error(&self, error: &(dyn std::error::Error + 'static)) -> ResponseClass {
        ResponseClass::Failure(FailureReason::Error(ErrorKind::of(error)))
    }

    /// A gRPC response with a status other than `200` and no `grpc-status`
    /// in its headers, or any response to a gRPC call that is not gRPC.
    /// gRPC clients turn it into a code (gRPC's "HTTP to gRPC status code
    /// mapping", where every status it does not list is `UNKNOWN`); it is a
    /// failure, for `reason`, when that code is one.
    fn classify_grpc_http_status(
        &self,
        status: StatusCode,
        reason: FailureReason,
    ) -> ResponseClass {
        let code = match status.as_u16() {
            400 => GrpcCode::INTERNAL,
            401 => GrpcCode::UNAUTHENTICATED,
            403 => GrpcCode::PERMISSION_DENIED,
            404 => GrpcCode::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => GrpcCode::UNAVAILABLE,
            _ => GrpcCode::UNKNOWN,
        };
        if self.grpc_failures.contains(code) {
            ResponseClass::Failure(reason)
        } else {
            ResponseClass::Success
        }
    }
}

/// The `grpc-status` in `headers`, if any; a value that is not a number is
/// `UNKNOWN`.
fn grpc_status(headers: &HeaderMap) -> Option<GrpcCode> {
    headers
        .get(&GRPC_STATUS)
        .map(|value| GrpcCode::from_header(value).unwrap_or(GrpcCode::UNKNOWN))
}
