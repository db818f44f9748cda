//! Timeouts that answer, and deadlines that travel.
//!
//! Three timeouts, as Linkerd and the Gateway API (GEP-1742) name them:
//!
//! | timeout | layer | covers | on expiry |
//! |---|---|---|---|
//! | `request` | [`RequestTimeoutLayer`] | the whole request: every attempt, the backoff between them, and the response body | 504, or gRPC `DEADLINE_EXCEEDED`; mid-body, see [`TimeoutBody`] |
//! | `idle` | [`RequestTimeoutLayer`] | the gap between two response body frames | as above, mid-body |
//! | `per_try` | [`AttemptTimeoutLayer`] | one attempt, until its response head | 504 or gRPC 4, which the retry layer retries |
//!
//! The layers **answer** with the mesh's timeout response
//! ([`ProxyErrorKind::Timeout`](mesh_core::ProxyErrorKind::Timeout), with
//! `mesh-error: request timed out`) instead of failing the service call, so
//! the caller gets a response it can read, metrics classify it like any
//! other 504, and the connection stays open.
//!
//! **No timeout is set by default.** A long-lived gRPC stream or a slow
//! download must not be cut by a default the operator never chose
//! (linkerd2 #12964). A deadline the caller sent (`grpc-timeout`,
//! `mesh-deadline`) is always honoured, and the remaining time is passed on;
//! see [`deadline`](crate::deadline).
//!
//! In a stack, the request timeout goes outside the retry layer, so its
//! deadline covers every attempt, and the per-try timeout inside it, so a
//! slow attempt can be retried:
//!
//! ```
//! use std::time::Duration;
//! use mesh_retry::{AttemptTimeoutLayer, RequestTimeoutLayer, Timeouts};
//!
//! let timeouts = Timeouts {
//!     request: Some(Duration::from_secs(10)),
//!     per_try: Some(Duration::from_secs(2)),
//!     ..Timeouts::default()
//! };
//! let stack = tower::ServiceBuilder::new()
//!     .layer(RequestTimeoutLayer::new(timeouts))
//!     // .layer(RetryLayer::new(...))
//!     .layer(AttemptTimeoutLayer::new(timeouts));
//! # drop(stack);
//! ```

use std::time::Duration;

pub mod attempt;
mod body;
pub mod error;
pub mod request;
#[cfg(test)]
mod tests;

pub use self::{
    attempt::{AttemptTimeout, AttemptTimeoutLayer},
    body::TimeoutBody,
    request::{RequestTimeout, RequestTimeoutLayer},
};

/// A route's timeouts. Each is off (`None`) by default.
///
/// **A timeout of zero is no timeout**, as `None` is. The Gateway API says
/// that a zero `timeouts.request` or `timeouts.backendRequest` (`0s`)
/// should disable the timeout altogether (`HTTPRouteTimeouts`), and the
/// configuration readers map `0s` to `None` for that reason; a `Some(Duration::ZERO)` written in code would
/// otherwise mean the opposite, a deadline every request has already
/// missed. The layers and [`RouteStack`](crate::RouteStack) read a zero as
/// `None` when they are built, so no request pays for the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// The deadline of the whole request, from the moment it enters the
    /// [`RequestTimeoutLayer`] to the end of the response body, across
    /// every attempt. Gateway API `timeouts.request`, Linkerd
    /// `timeout.linkerd.io/request`, ServiceProfile `routes[].timeout`.
    pub request: Option<Duration>,
    /// The time one attempt may take to return its response head. Gateway
    /// API `timeouts.backendRequest`, Linkerd `retry.linkerd.io/timeout`.
    pub per_try: Option<Duration>,
    /// The longest gap between two frames of the response body. Linkerd
    /// `timeout.linkerd.io/idle`.
    pub idle: Option<Duration>,
}

/// `timeout`, or `None` for a zero, which means no timeout (see
/// [`Timeouts`]). Called where a layer or a route stack is built.
pub(crate) fn enabled(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|timeout| !timeout.is_zero())
}
