//! Linkerd's error families: the requests and connections the proxy
//! failed for an error of its own.
//!
//! `response_total` counts a `502` the proxy answered beside the `500`s
//! of the application, told apart by their `error` label only. Linkerd's
//! users alert on the proxy's own failures from four families of its
//! proxy (linkerd2-proxy, `app/{inbound,outbound}/src/metrics/error`),
//! which count nothing else, so this crate writes them under the same
//! names, labels and `error` values:
//!
//! | family | labels |
//! |---|---|
//! | `inbound_http_errors_total` | `error`, `target_addr`, `target_ip`, `target_port`, `srv_group`, `srv_kind`, `srv_name`, `srv_port` |
//! | `outbound_http_errors_total` | `error` |
//! | `inbound_tcp_errors_total` | `error`, `target_addr`, `target_ip`, `target_port` |
//! | `outbound_tcp_errors_total` | `target_addr`, `target_ip`, `target_port`, `error` |
//!
//! An HTTP request is counted once, by the
//! [`MetricsLayer`](crate::MetricsLayer) it goes through, when the proxy
//! answered it itself (its response carries a
//! [`ProxyErrorKind`]) or it failed without a response: where Linkerd
//! counts the errors its server stack turns into responses. Inbound, the
//! layer runs after authorization, so a request the policy denied, or
//! that matched no route, is not counted here: Linkerd leaves its policy
//! errors out of these families too, and both are counted by the
//! authorization families. Inbound series name the target and the Server
//! as the request's `request_total` does (without the Server's labels
//! when the request was refused before authorization).
//!
//! A request a Server's rate limit refused (`429`, or gRPC
//! `RESOURCE_EXHAUSTED`) is counted inbound as `rate limited`, with the
//! target and the Server: Linkerd counts it too (as `unexpected`), its
//! rate limit error not being one of the policy errors it leaves out,
//! and its error layer wrapping its policy. mesh-policy's `Authorize`
//! answers it before the layer, so the layer never sees it: the
//! authorizing layer's hook (`AuthorizeLayer::on_rate_limited`) hands it
//! to [`HttpMetrics::count_inbound_answer`], which counts it here and
//! nowhere else. Like a denial, it is left out of `request_total` and
//! `response_total`, which count what the Server let through, as
//! Linkerd's request families sit inside its policy.
//!
//! A `CONNECT` that a tunnel in front of the layers answered itself
//! (mesh-core's `ConnectTunnel`: `502` for an endpoint that could not be
//! connected, `503` for none to try) is counted outbound too, under the
//! same values, by the tunnel's hook
//! ([`HttpMetrics::count_outbound_answer`]): Linkerd's proxy counts a
//! `CONNECT` it failed in its HTTP error family, as any request.
//!
//! A connection is counted once, by whoever meets the error that ends it
//! ([`TcpMetrics::count_error`](crate::TcpMetrics::count_error)): a TLS
//! detection that timed out or failed, an application or endpoint that
//! could not be connected, a pipe that failed, an HTTP connection that
//! failed (its socket, or its peer's HTTP: mesh-core's server tells of
//! those through `Server::on_connection_error`), as Linkerd's TCP error
//! layer counts the failures of the HTTP server it wraps.
//!
//! Nothing is counted on the success path: a request's handles hold a
//! counter per error value, resolved at its first error, and a
//! connection's error finds its series once, when it ends. A family with
//! no series is left out of the scrape, as Linkerd leaves it out.

use std::{error::Error, net::SocketAddr, sync::Arc};

use http::HeaderMap;
use mesh_core::{
    error::{ProxyErrorKind, UpstreamCause},
    labels::{Authorized, ResourceKind},
    proxy::{
        NoEndpoints,
        queue::{InFailFast, QueueRefusal},
    },
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder},
    metrics::counter::Counter,
};

use crate::{
    HttpMetrics,
    family::{Family, Fold, HasSeries},
    labels::{Direction, label, write_target_addr},
};

/// An error the proxy failed a request or connection for: the `error`
/// label of the error families.
///
/// The first six are Linkerd's values. The others name errors of this
/// proxy that Linkerd's counts under `unexpected`, or does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProxyError {
    /// `i/o`: a socket failed (a connection refused or reset), or a TLS
    /// handshake did.
    Io,
    /// `tls detection timeout`: an inbound connection sent too little to
    /// tell TLS from plaintext, or did not finish its handshake, in time.
    TlsDetectTimeout,
    /// `failfast`: the request waited for an endpoint until its service
    /// went into fail-fast, having had none ready for its fail-fast
    /// timeout (with a zero timeout, the request that found none).
    FailFast,
    /// `loadshed`: the request was turned away without waiting for an
    /// endpoint: the service is in fail-fast, or its queue is full, as
    /// Linkerd's `LoadShed` turns requests away in front of a shut gate
    /// or a full queue.
    LoadShed,
    /// `response timeout`: a timeout passed before the response came.
    ResponseTimeout,
    /// `unexpected`: any other error.
    Unexpected,
    /// `connect timeout`: the application or endpoint did not accept the
    /// connection in time (Linkerd: `unexpected`).
    ConnectTimeout,
    /// `rate limited`: a rate limit refused the request (Linkerd:
    /// `unexpected`).
    RateLimited,
    /// `no route`: no outbound route matched the request.
    NoRoute,
    /// `invalid request`: a request that cannot be served as it was sent
    /// (a host or path that does not parse, a body that broke its
    /// framing).
    InvalidRequest,
    /// `unsupported`: a request for what the proxy does not do where it
    /// arrived (a `CONNECT`, a transfer coding it cannot pass on).
    Unsupported,
    /// `unavailable`: no endpoint to send to for another reason than
    /// the queue's (a traffic split whose backends all weigh 0).
    Unavailable,
    /// `identity unavailable`: a TLS client came while the proxy had no
    /// usable certificate of its own.
    IdentityUnavailable,
}

impl ProxyError {
    /// How many values there are.
    pub(crate) const COUNT: usize = 13;

    /// The `error` label's value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Io => "i/o",
            Self::TlsDetectTimeout => "tls detection timeout",
            Self::FailFast => "failfast",
            Self::LoadShed => "loadshed",
            Self::ResponseTimeout => "response timeout",
            Self::Unexpected => "unexpected",
            Self::ConnectTimeout => "connect timeout",
            Self::RateLimited => "rate limited",
            Self::NoRoute => "no route",
            Self::InvalidRequest => "invalid request",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
            Self::IdentityUnavailable => "identity unavailable",
        }
    }

    /// The error of a response the proxy answered itself, of `kind`,
    /// with the head `headers` and the cause `cause` it carries; `None`
    /// for a denial, which the authorization families count.
    ///
    /// Inbound, a request that matched no route is the policy's too
    /// (`None`), as in Linkerd; outbound it is `no route`. An upstream
    /// whose socket failed (a connection refused, reset or closed under
    /// the request) is `i/o`, as Linkerd counts an I/O error; one that
    /// reset the stream, sent a `GOAWAY`, or answered something that is
    /// not HTTP is `unexpected`, as Linkerd counts its HTTP/2 and parse
    /// errors, which have no I/O error among their causes. A `503` is
    /// `failfast` when it says so (it waited until fail-fast came),
    /// `loadshed` when the queue shed it (`service unavailable`: full, or
    /// the service in fail-fast), `unavailable` otherwise.
    pub fn of_answer(
        direction: Direction,
        kind: ProxyErrorKind,
        headers: &HeaderMap,
        cause: Option<UpstreamCause>,
    ) -> Option<Self> {
        Some(match kind {
            ProxyErrorKind::Denied => return None,
            ProxyErrorKind::NoRoute => match direction {
                Direction::Inbound => return None,
                Direction::Outbound => Self::NoRoute,
            },
            ProxyErrorKind::RateLimited => Self::RateLimited,
            ProxyErrorKind::UpstreamUnreachable => match cause {
                Some(
                    UpstreamCause::Protocol
                    | UpstreamCause::Refused
                    | UpstreamCause::EnhanceYourCalm
                    | UpstreamCause::Canceled
                    | UpstreamCause::Reset
                    | UpstreamCause::GoAway,
                ) => Self::Unexpected,
                _ => Self::Io,
            },
            ProxyErrorKind::Unavailable => match QueueRefusal::of(headers) {
                Some(QueueRefusal::FailedFast) => Self::FailFast,
                Some(QueueRefusal::Shed) => Self::LoadShed,
                _ => Self::Unavailable,
            },
            ProxyErrorKind::Timeout => Self::ResponseTimeout,
            ProxyErrorKind::InvalidRequest => Self::InvalidRequest,
            ProxyErrorKind::Unsupported => Self::Unsupported,
            _ => Self::Unexpected,
        })
    }

    /// The error of a failure `error`, as Linkerd finds it: the first of
    /// its causes this proxy knows (an I/O error, a service in fail-fast,
    /// a full queue, a timer that expired, which where a failure is not
    /// answered with a response is a connect's), or `unexpected`.
    pub fn of_error(error: &(dyn Error + 'static)) -> Self {
        let mut next = Some(error);
        while let Some(error) = next {
            if error.is::<std::io::Error>() {
                return Self::Io;
            }
            if error.is::<InFailFast>() {
                return Self::FailFast;
            }
            if error.is::<NoEndpoints>() {
                return Self::LoadShed;
            }
            if error.is::<tokio::time::error::Elapsed>() {
                return Self::ConnectTimeout;
            }
            next = error.source();
        }
        Self::Unexpected
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl HttpMetrics {
    /// Counts in `outbound_http_errors_total` a request the proxy
    /// answered itself outside every [`MetricsLayer`](crate::MetricsLayer),
    /// with an answer of `kind`, head `headers` and cause `cause`, under
    /// the error [`ProxyError::of_answer`] finds: a `CONNECT` tunnel's
    /// `502` or `503` (mesh-core's `ConnectTunnel::on_error` hands this
    /// what it needs). It finds the series at each call, which is made
    /// only when a request failed.
    pub fn count_outbound_answer(
        &self,
        kind: ProxyErrorKind,
        headers: &HeaderMap,
        cause: Option<UpstreamCause>,
    ) {
        let Some(error) = ProxyError::of_answer(Direction::Outbound, kind, headers, cause) else {
            return;
        };
        let labels = HttpErrorLabels {
            error,
            target_addr: None,
            srv_kind: None,
            srv_name: None,
            srv_port: None,
        };
        self.inner
            .errors
            .counter(Direction::Outbound, &labels)
            .0
            .inc();
    }

    /// Counts in `inbound_http_errors_total` a request the proxy answered
    /// itself before any inbound [`MetricsLayer`](crate::MetricsLayer)
    /// saw it, with an answer of `kind` and head `headers`, under the
    /// error [`ProxyError::of_answer`] finds (a denial, or a request no
    /// route matched, is not counted: the authorization families count
    /// those). The series names `target_addr`, the address the connection
    /// came to (with the port Servers are matched against, as
    /// [`MetricsLayer::with_target_port`](crate::MetricsLayer::with_target_port)
    /// gives it), and the Server of `authorized`, as the request's series
    /// would have: a rate limit's `429` (mesh-policy's
    /// `AuthorizeLayer::on_rate_limited` hands this what it needs). It is
    /// not counted in `request_total` or `response_total`. It finds the
    /// series at each call, which is made only when a request was refused.
    pub fn count_inbound_answer(
        &self,
        target_addr: Option<SocketAddr>,
        authorized: Option<&Authorized>,
        kind: ProxyErrorKind,
        headers: &HeaderMap,
    ) {
        let Some(error) = ProxyError::of_answer(Direction::Inbound, kind, headers, None) else {
            return;
        };
        let labels = HttpErrorLabels {
            error,
            target_addr,
            srv_kind: authorized.map(|a| a.server_kind),
            srv_name: authorized.map(|a| a.server.clone()),
            srv_port: authorized.and_then(|a| a.server_port),
        };
        self.inner
            .errors
            .counter(Direction::Inbound, &labels)
            .0
            .inc();
    }
}

/// The four families, registered once per registry with the HTTP and
/// transport families. Cloning shares the series.
#[derive(Clone, Debug)]
pub(crate) struct ErrorFamilies<L: Fold> {
    inbound: Family<L, Counter>,
    outbound: Family<L, Counter>,
}

impl<L> ErrorFamilies<L>
where
    L: Fold + Ord + Clone + EncodeLabelSet + Send + Sync + std::fmt::Debug + 'static,
    L::Kept: Send + Sync,
{
    /// Registers `inbound_<kind>_errors_total` and
    /// `outbound_<kind>_errors_total`, each with `help` and at most
    /// `limit` series, in `registry`.
    pub(crate) fn register(
        registry: &mut prometheus_client::registry::Registry,
        limit: usize,
        names: [&'static str; 2],
        help: [&'static str; 2],
    ) -> Self {
        let families = Self {
            inbound: Family::new(limit, Counter::default),
            outbound: Family::new(limit, Counter::default),
        };
        registry.register_collector(Box::new(UnlessEmpty {
            families: [
                (names[0], help[0], families.inbound.clone()),
                (names[1], help[1], families.outbound.clone()),
            ],
        }));
        families
    }

    /// The counter of the observations each family, inbound then
    /// outbound, folded into its overflow series, and the family:
    /// `*_series_overflow_total` reports them beside the other families'
    /// folds, while the family has a series.
    pub(crate) fn folds(&self) -> [(Counter, Arc<dyn HasSeries>); 2] {
        [
            (self.inbound.folds(), Arc::new(self.inbound.clone())),
            (self.outbound.folds(), Arc::new(self.outbound.clone())),
        ]
    }

    /// The counter of `labels` in `direction`'s family, and whether it is
    /// the overflow series (to be looked up again next time).
    pub(crate) fn counter(&self, direction: Direction, labels: &L) -> (Counter, bool) {
        let family = match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        };
        let series = family.get_or_create(labels);
        (series.metric, series.folded)
    }
}

/// Writes each family that has a series, and nothing of one that has
/// none, as Linkerd's proxy writes its error families.
#[derive(Debug)]
struct UnlessEmpty<L: Fold> {
    families: [(&'static str, &'static str, Family<L, Counter>); 2],
}

impl<L> Collector for UnlessEmpty<L>
where
    L: Fold + Ord + Clone + EncodeLabelSet + Send + Sync + std::fmt::Debug + 'static,
    L::Kept: Send + Sync,
{
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        for (name, help, family) in &self.families {
            if family.is_empty() {
                continue;
            }
            let metric = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(metric)?;
        }
        Ok(())
    }
}

/// What an inbound HTTP error series names besides its error: the
/// address the connection came to and the Server that covered it, each
/// only when known, as the request's target labels have them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct HttpErrorLabels {
    pub(crate) error: ProxyError,
    pub(crate) target_addr: Option<SocketAddr>,
    pub(crate) srv_kind: Option<&'static ResourceKind>,
    pub(crate) srv_name: Option<Arc<str>>,
    pub(crate) srv_port: Option<u16>,
}

impl EncodeLabelSet for HttpErrorLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "error", self.error.as_label())?;
        if let Some(addr) = self.target_addr {
            write_target_addr(enc, addr)?;
        }
        if let Some(kind) = self.srv_kind {
            label(enc, "srv_group", kind.group)?;
            label(enc, "srv_kind", kind.kind)?;
        }
        if let Some(name) = &self.srv_name {
            label(enc, "srv_name", name)?;
        }
        if let Some(port) = self.srv_port {
            ("srv_port", port).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

impl Fold for HttpErrorLabels {
    type Kept = KeptError;

    fn kept(&self) -> KeptError {
        KeptError(self.error)
    }
}

/// The labels of a connection's error series: the address it came to
/// (inbound) or was sent to (outbound), and its error. Linkerd writes the
/// error first inbound and last outbound; so does
/// [`TcpErrorLabels::encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TcpErrorLabels {
    pub(crate) direction: Direction,
    pub(crate) target_addr: SocketAddr,
    pub(crate) error: ProxyError,
}

impl EncodeLabelSet for TcpErrorLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        if self.direction == Direction::Inbound {
            label(enc, "error", self.error.as_label())?;
        }
        write_target_addr(enc, self.target_addr)?;
        if self.direction == Direction::Outbound {
            label(enc, "error", self.error.as_label())?;
        }
        Ok(())
    }
}

impl Fold for TcpErrorLabels {
    type Kept = KeptError;

    fn kept(&self) -> KeptError {
        KeptError(self.error)
    }
}

/// What an overflow series of an error family keeps: the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeptError(ProxyError);

impl EncodeLabelSet for KeptError {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "error", self.0.as_label())
    }
}

/// A target's error counters, one per error value, each resolved at the
/// target's first error of that value.
#[derive(Debug, Default)]
pub(crate) struct ErrorHandles {
    counters: [std::sync::OnceLock<Counter>; ProxyError::COUNT],
}

impl ErrorHandles {
    /// Counts `error`, finding its series with `resolve` the first time
    /// (and every time while it is the overflow series, so that each
    /// fold is counted).
    pub(crate) fn count(&self, error: ProxyError, resolve: impl FnOnce() -> (Counter, bool)) {
        let Some(slot) = self.counters.get(error.index()) else {
            return;
        };
        if let Some(counter) = slot.get() {
            counter.inc();
            return;
        }
        let (counter, folded) = resolve();
        counter.inc();
        if !folded {
            let _ = slot.set(counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use mesh_core::error::MESH_ERROR;

    use super::*;

    #[test]
    fn every_value_has_its_own_slot() {
        let all = [
            ProxyError::Io,
            ProxyError::TlsDetectTimeout,
            ProxyError::FailFast,
            ProxyError::LoadShed,
            ProxyError::ResponseTimeout,
            ProxyError::Unexpected,
            ProxyError::ConnectTimeout,
            ProxyError::RateLimited,
            ProxyError::NoRoute,
            ProxyError::InvalidRequest,
            ProxyError::Unsupported,
            ProxyError::Unavailable,
            ProxyError::IdentityUnavailable,
        ];
        assert_eq!(all.len(), ProxyError::COUNT);
        for (i, error) in all.into_iter().enumerate() {
            assert_eq!(error.index(), i, "{error:?}");
        }
    }

    #[test]
    fn a_503_says_why_by_its_reason() {
        let answer = |reason: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(MESH_ERROR, HeaderValue::from_static(reason));
            ProxyError::of_answer(
                Direction::Outbound,
                ProxyErrorKind::Unavailable,
                &headers,
                None,
            )
        };
        assert_eq!(answer("service in fail-fast"), Some(ProxyError::FailFast));
        assert_eq!(answer("service unavailable"), Some(ProxyError::LoadShed));
        assert_eq!(
            answer("no backend weighs anything"),
            Some(ProxyError::Unavailable)
        );
    }

    #[test]
    fn policy_answers_are_left_to_the_authorization_families() {
        let headers = HeaderMap::new();
        let of = |direction, kind| ProxyError::of_answer(direction, kind, &headers, None);
        assert_eq!(of(Direction::Inbound, ProxyErrorKind::Denied), None);
        assert_eq!(of(Direction::Inbound, ProxyErrorKind::NoRoute), None);
        assert_eq!(
            of(Direction::Outbound, ProxyErrorKind::NoRoute),
            Some(ProxyError::NoRoute)
        );
    }

    #[test]
    fn an_inbound_answer_is_counted_with_the_target_and_server_alone() {
        static SERVER: ResourceKind = ResourceKind {
            group: "policy.linkerd.io",
            kind: "server",
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = HttpMetrics::register(&mut registry);
        let authorized = Authorized {
            server: "web-http".into(),
            server_kind: &SERVER,
            server_port: Some(8080),
            route: "default".into(),
            route_kind: None,
            authz: "all-unauthenticated".into(),
            authz_kind: &ResourceKind::DEFAULT,
            audit: false,
        };
        let target = "10.0.0.5:8080".parse().ok();
        let headers = HeaderMap::new();
        for _ in 0..2 {
            metrics.count_inbound_answer(
                target,
                Some(&authorized),
                ProxyErrorKind::RateLimited,
                &headers,
            );
        }
        // The policy's own refusals are the authorization families'.
        metrics.count_inbound_answer(target, Some(&authorized), ProxyErrorKind::Denied, &headers);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let line = "inbound_http_errors_total{error=\"rate limited\",\
                    target_addr=\"10.0.0.5:8080\",target_ip=\"10.0.0.5\",target_port=\"8080\",\
                    srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"web-http\",\
                    srv_port=\"8080\"} 2\n";
        assert!(text.contains(line), "{text}");
        let errors = text
            .lines()
            .filter(|l| l.starts_with("inbound_http_errors_total{"))
            .count();
        assert_eq!(errors, 1, "{text}");
        assert!(!text.contains("request_total{"), "{text}");
        assert!(!text.contains("response_total{"), "{text}");
    }

    #[test]
    fn an_error_is_named_by_the_first_cause_known() {
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl Error for Wrapped {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let reset = Wrapped(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(ProxyError::of_error(&reset), ProxyError::Io);
        assert_eq!(ProxyError::of_error(&InFailFast), ProxyError::FailFast);
        let other: Box<dyn Error + Send + Sync> = "something else".into();
        assert_eq!(ProxyError::of_error(&*other), ProxyError::Unexpected);
    }
}
