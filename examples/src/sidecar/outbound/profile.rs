//! Linkerd's ServiceProfile route families, which `linkerd viz routes`
//! reads, under the names and labels linkerd2-proxy writes them
//! (`ProfileRouteLabels` and its `route`-prefixed reports in
//! `linkerd/app/core/src/metrics.rs`, over `linkerd/http/metrics`):
//!
//! - `route_request_total`, `route_response_total` and
//!   `route_response_latency_ms`: once per logical request, over the
//!   route's retries, as the application sees it;
//! - `route_actual_request_total` and `route_actual_response_total`: once
//!   per attempt, under the retries, so that a route that retries shows
//!   more actual requests than logical ones. Linkerd keeps no latency
//!   histogram of the attempts, and neither does the sidecar;
//! - `route_retryable_total`: the retryable failures of the route, and,
//!   with `skipped="no_budget"`, those of them not retried because the
//!   retry budget was empty.
//!
//! Only requests on a ServiceProfile route are counted, and those a
//! service with ServiceProfile routes takes on its default route (the
//! requests none of the routes matches), as Linkerd's profile stack counts
//! both: the default route has no `rt_route`, which `linkerd viz routes`
//! shows as `[DEFAULT]`. Requests on `HTTPRoute` and `GRPCRoute` rules, and
//! on the route of a service with no ServiceProfile routes, are counted in
//! none of these, as Linkerd counts its policy routes in its
//! `outbound_*_route_*` families only.
//!
//! Every series is labelled `direction="outbound"`, `dst` and the route's
//! `rt_route`. Linkerd's `dst` is the profile's logical authority, its
//! fully qualified name and the port the request was addressed to; the
//! sidecar's services take requests for any port of their name, so its
//! `dst` is the service's name as `outbound.services` writes it, without
//! a port: the port would come from each request's `Host`, a label the
//! client would choose, with a series per port it sends, and one more
//! lookup per request. `linkerd viz routes` matches `dst` against the ServiceProfile's
//! name with an optional port (`dst=~"(<name>)(:\d+)?"`, in linkerd2's
//! `viz/metrics-api/top_routes.go`), so a service named there by its fully
//! qualified name (`emoji.emojivoto.svc.cluster.local`) is found by it.
//!
//! The response families add `status_code` (the response's HTTP status,
//! absent when there was none), `classification` (`success` or
//! `failure`, as the golden metrics' `response_total` classifies,
//! mesh-core's classifier: a gRPC call's status in its trailers counts;
//! a route with `responseClasses` is classified by them in both, as
//! Linkerd classifies a profile route's responses by its classes),
//! `grpc_status` (the number of a gRPC response's code, else empty) and
//! `error`. Linkerd's route layers see an error where the sidecar sees the
//! mesh's own answer (a timeout, an unreachable upstream), so such an
//! answer is counted as Linkerd counts the error: no `status_code`,
//! `classification="failure"` and Linkerd's value of `error`: `timeout`,
//! `h2(<reason>)` for an HTTP/2 stream refused, cancelled or calmed, or
//! else `unclassified`. The latency histogram is labelled with
//! `status_code` alone, in Linkerd's millisecond buckets, and records the
//! time from the request to its response head; a request that ended
//! without a response records none, as in Linkerd.
//!
//! The handles of a route are resolved when the route is built, and those
//! of each ending the first time it is seen ([`Kept`]): a request takes
//! atomic increments and no lock. A request on any other route finds no
//! handles and does nothing more.

use std::{fmt, sync::Arc, time::Duration};

use http::{Extensions, HeaderMap, Response};
use mesh_core::{
    BoxError,
    classify::{Classification, Classify, ErrorKind, FailureReason, ResponseClass},
    error::{GRPC_STATUS, ProxyErrorKind, UpstreamCause},
};
use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::duration::{DurationHistogram, LATENCY_MS_BUCKETS, WithBuckets};
use super::ends::Kept;

/// The labels every series of a profile route carries: `direction`,
/// `dst`, and `rt_route` unless the route is the default one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProfileLabels {
    dst: Arc<str>,
    route: Option<Arc<str>>,
}

impl ProfileLabels {
    /// The ServiceProfile route `route` of the service `dst`, or its
    /// default route for `None`.
    pub(crate) fn new(dst: &str, route: Option<&str>) -> Self {
        Self {
            dst: Arc::from(dst),
            route: route.map(Arc::from),
        }
    }
}

impl EncodeLabelSet for ProfileLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        [("direction", "outbound"), ("dst", &*self.dst)].encode(encoder)?;
        match &self.route {
            Some(route) => [("rt_route", &**route)].encode(encoder),
            None => Ok(()),
        }
    }
}

/// How a request on a profile route ended, as Linkerd's `Class` labels
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Class {
    Http { success: bool },
    Grpc { success: bool, code: Option<u16> },
    Error(&'static str),
}

/// The labels of `route_response_total` and `route_actual_response_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResponseLabels {
    route: ProfileLabels,
    status: Option<u16>,
    class: Class,
}

impl EncodeLabelSet for ResponseLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.route.encode(encoder)?;
        if let Some(status) = self.status {
            ("status_code", status).encode(encoder.encode_label())?;
        }
        let (success, code, error) = match self.class {
            Class::Http { success } => (success, None, ""),
            Class::Grpc { success, code } => (success, code, ""),
            Class::Error(error) => (false, None, error),
        };
        let classification = if success { "success" } else { "failure" };
        ("classification", classification).encode(encoder.encode_label())?;
        ("grpc_status", code).encode(encoder.encode_label())?;
        ("error", error).encode(encoder.encode_label())
    }
}

/// The labels of `route_response_latency_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LatencyLabels {
    route: ProfileLabels,
    status: Option<u16>,
}

impl EncodeLabelSet for LatencyLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.route.encode(encoder)?;
        match self.status {
            Some(status) => ("status_code", status).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

/// The labels of `route_retryable_total`: the route's, and
/// `skipped="no_budget"` on the series of the retries the budget refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RetryableLabels {
    route: ProfileLabels,
    no_budget: bool,
}

impl EncodeLabelSet for RetryableLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.route.encode(encoder)?;
        if self.no_budget {
            [("skipped", "no_budget")].encode(encoder)?;
        }
        Ok(())
    }
}

type Latencies = Family<LatencyLabels, DurationHistogram, WithBuckets>;

/// The request and response families of one level, logical or actual.
#[derive(Clone, Debug)]
struct LevelFamilies {
    requests: Family<ProfileLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
}

/// The profile route families, registered once and shared by every
/// route.
#[derive(Clone, Debug)]
pub(crate) struct ProfileMetrics {
    logical: LevelFamilies,
    actual: LevelFamilies,
    latencies: Latencies,
    retryable: Family<RetryableLabels, Counter>,
    classify: Classify,
}

impl ProfileMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let level = || LevelFamilies {
            requests: Family::default(),
            responses: Family::default(),
        };
        let metrics = Self {
            logical: level(),
            actual: level(),
            latencies: Family::new_with_constructor(WithBuckets(&LATENCY_MS_BUCKETS)),
            retryable: Family::default(),
            // The golden metrics' rules, so that a route's failures are
            // the ones `response_total` counts.
            classify: Classify::default(),
        };
        for (prefix, level, what) in [
            ("route", &metrics.logical, "over its retries"),
            (
                "route_actual",
                &metrics.actual,
                "each attempt, retries included",
            ),
        ] {
            registry.register(
                format!("{prefix}_request"),
                format!("Requests on a ServiceProfile route, {what}"),
                level.requests.clone(),
            );
            registry.register(
                format!("{prefix}_response"),
                format!(
                    "Responses on a ServiceProfile route, {what}, by status and classification"
                ),
                level.responses.clone(),
            );
        }
        registry.register(
            "route_response_latency_ms",
            "The time from requests on a ServiceProfile route to their response heads, over \
             its retries, in milliseconds",
            metrics.latencies.clone(),
        );
        registry.register(
            "route_retryable",
            "Retryable failures on a ServiceProfile route; with skipped=\"no_budget\", those \
             not retried because the retry budget was empty",
            metrics.retryable.clone(),
        );
        metrics
    }

    /// The handles of the logical requests on the route of `labels`,
    /// whose responses `classes` classify when the route has its own
    /// (its `responseClasses`), else the golden metrics' rules.
    pub(crate) fn logical(
        &self,
        labels: &ProfileLabels,
        classes: Option<&Classify>,
    ) -> Arc<ProfileLevel> {
        Arc::new(ProfileLevel::new(
            &self.logical,
            Some(&self.latencies),
            labels,
            classes.unwrap_or(&self.classify),
        ))
    }

    /// The handles of the attempts on the route of `labels`, shared by
    /// all of its backends, classified as [`logical`](Self::logical).
    pub(crate) fn actual(
        &self,
        labels: &ProfileLabels,
        classes: Option<&Classify>,
    ) -> Arc<ProfileLevel> {
        Arc::new(ProfileLevel::new(
            &self.actual,
            None,
            labels,
            classes.unwrap_or(&self.classify),
        ))
    }

    /// The retryable counters of the route of `labels`: every retryable
    /// failure, and those the budget refused.
    pub(crate) fn retryable(&self, labels: &ProfileLabels) -> Retryable {
        let counter = |no_budget| {
            self.retryable
                .get_or_create(&RetryableLabels {
                    route: labels.clone(),
                    no_budget,
                })
                .clone()
        };
        Retryable {
            retryable: counter(false),
            no_budget: counter(true),
        }
    }
}

/// One profile route's `route_retryable_total` series.
#[derive(Debug)]
pub(crate) struct Retryable {
    retryable: Counter,
    no_budget: Counter,
}

impl Retryable {
    /// Counts a retryable failure; `budget` says whether the budget let
    /// it be retried.
    pub(crate) fn count(&self, budget: bool) {
        self.retryable.inc();
        if !budget {
            self.no_budget.inc();
        }
    }
}

/// One profile route's handles at one level. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ProfileLevel {
    labels: ProfileLabels,
    requests: Counter,
    responses: Family<ResponseLabels, Counter>,
    kept: Kept<(Option<u16>, Class)>,
    latency: Option<(Latencies, Kept<Option<u16>, DurationHistogram>)>,
    classify: Classify,
}

/// A response whose class waits for its trailers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AwaitingTrailers(u16);

impl ProfileLevel {
    fn new(
        families: &LevelFamilies,
        latencies: Option<&Latencies>,
        labels: &ProfileLabels,
        classify: &Classify,
    ) -> Self {
        Self {
            labels: labels.clone(),
            requests: families.requests.get_or_create(labels).clone(),
            responses: families.responses.clone(),
            kept: Kept::default(),
            latency: latencies.map(|family| (family.clone(), Kept::default())),
            classify: classify.clone(),
        }
    }

    /// Counts a request.
    pub(crate) fn request(&self) {
        self.requests.inc();
    }

    /// Counts a response by its head, and records its latency; a gRPC
    /// response whose status comes in its trailers is counted by
    /// [`trailers`](Self::trailers), and says so.
    pub(crate) fn response<B>(
        &self,
        grpc_call: bool,
        res: &Response<B>,
        elapsed: Duration,
    ) -> Option<AwaitingTrailers> {
        if let Some(error) = answer_error(res.extensions()) {
            self.count(None, Class::Error(error));
            return None;
        }
        let status = res.status().as_u16();
        self.observe(status, elapsed);
        match self.classify.classify_response_to(grpc_call, res) {
            Classification::Final(class) => {
                let code = grpc_code(res.headers());
                self.count(Some(status), class_of(class, code));
                None
            }
            Classification::Pending => Some(AwaitingTrailers(status)),
        }
    }

    /// Counts a response that was [`AwaitingTrailers`] by its trailers,
    /// `None` when its body ended without any.
    pub(crate) fn trailers(&self, awaiting: AwaitingTrailers, trailers: Option<&HeaderMap>) {
        let class = self.classify.classify_trailers(trailers);
        let code = trailers.and_then(grpc_code);
        self.count(Some(awaiting.0), class_of(class, code));
    }

    /// Counts a request that ended in `error`, without a response.
    pub(crate) fn error(&self, error: &BoxError) {
        self.count(None, Class::Error(error_value(&**error)));
    }

    fn count(&self, status: Option<u16>, class: Class) {
        self.kept.with(
            (status, class),
            |(status, class)| {
                let labels = ResponseLabels {
                    route: self.labels.clone(),
                    status,
                    class,
                };
                self.responses.get_or_create(&labels).clone()
            },
            Counter::inc,
        );
    }

    fn observe(&self, status: u16, elapsed: Duration) {
        let Some((family, kept)) = &self.latency else {
            return;
        };
        kept.with(
            Some(status),
            |status| {
                let labels = LatencyLabels {
                    route: self.labels.clone(),
                    status,
                };
                family.get_or_create(&labels).clone()
            },
            |histogram| histogram.observe(elapsed),
        );
    }
}

/// The number of the gRPC code in `headers`, if any.
fn grpc_code(headers: &HeaderMap) -> Option<u16> {
    let value = headers.get(GRPC_STATUS)?;
    Some(
        mesh_core::classify::GrpcCode::from_header(value)
            .unwrap_or(mesh_core::classify::GrpcCode::UNKNOWN)
            .as_u16(),
    )
}

/// Linkerd's class of a response the classifier called `class`, `code`
/// being its gRPC code if it has one: a gRPC class when it has a code or
/// the classifier read it as gRPC, else an HTTP one.
fn class_of(class: ResponseClass, code: Option<u16>) -> Class {
    let success = class.is_success();
    let grpc = code.is_some()
        || matches!(
            class.failure_reason(),
            Some(FailureReason::GrpcStatus(_) | FailureReason::GrpcStatusMissing)
        );
    if grpc {
        Class::Grpc { success, code }
    } else {
        Class::Http { success }
    }
}

/// Linkerd's `error` for the mesh's own answer, which its route layers see
/// as an error; `None` for a response that came from the upstream.
fn answer_error(extensions: &Extensions) -> Option<&'static str> {
    let kind = extensions.get::<ProxyErrorKind>().copied()?;
    Some(match kind {
        ProxyErrorKind::Timeout => TIMEOUT,
        ProxyErrorKind::UpstreamUnreachable => extensions
            .get::<UpstreamCause>()
            .copied()
            .map_or(UNCLASSIFIED, cause_value),
        _ => UNCLASSIFIED,
    })
}

/// Linkerd's `error` for a failure: `timeout`, an HTTP/2 reason, or
/// `unclassified`.
fn error_value(error: &(dyn std::error::Error + 'static)) -> &'static str {
    match ErrorKind::of(error) {
        ErrorKind::Timeout => TIMEOUT,
        _ => UpstreamCause::of(error).map_or(UNCLASSIFIED, cause_value),
    }
}

/// Linkerd writes an HTTP/2 error's reason as `h2(<REASON>)`, and any
/// other error as `unclassified` (its `h2_error`, in
/// `linkerd/app/core/src/classify.rs`). The sidecar knows the reasons of
/// three resets; a `GOAWAY` or another reset is `unclassified`.
fn cause_value(cause: UpstreamCause) -> &'static str {
    match cause {
        UpstreamCause::Refused => "h2(REFUSED_STREAM)",
        UpstreamCause::EnhanceYourCalm => "h2(ENHANCE_YOUR_CALM)",
        UpstreamCause::Canceled => "h2(CANCEL)",
        _ => UNCLASSIFIED,
    }
}

const TIMEOUT: &str = "timeout";
const UNCLASSIFIED: &str = "unclassified";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn exposition(registry: &Registry) -> Vec<String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn endings_are_labelled_as_linkerd_labels_them() {
        let mut registry = Registry::default();
        let metrics = ProfileMetrics::register(&mut registry);
        let level = metrics.logical(&ProfileLabels::new("web", Some("GET /")), None);
        let response =
            |status: u16, headers: &[(&'static str, &str)], kind: Option<ProxyErrorKind>| {
                let mut res = Response::new(());
                *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    res.headers_mut()
                        .insert(*name, http::HeaderValue::from_str(value).unwrap());
                }
                if let Some(kind) = kind {
                    res.extensions_mut().insert(kind);
                }
                res
            };
        let ms = Duration::from_millis(3);
        assert!(
            level
                .response(false, &response(200, &[], None), ms)
                .is_none()
        );
        assert!(
            level
                .response(false, &response(503, &[], None), ms)
                .is_none()
        );
        let timeout = response(504, &[], Some(ProxyErrorKind::Timeout));
        assert!(level.response(false, &timeout, ms).is_none());
        let grpc = [("content-type", "application/grpc")];
        let awaiting = level
            .response(true, &response(200, &grpc, None), ms)
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
        level.trailers(awaiting, Some(&trailers));
        let only = [("content-type", "application/grpc"), ("grpc-status", "5")];
        assert!(
            level
                .response(true, &response(200, &only, None), ms)
                .is_none()
        );
        let lines = exposition(&registry);
        let labels = "direction=\"outbound\",dst=\"web\",rt_route=\"GET /\"";
        for expected in [
            format!(
                "route_response_total{{{labels},status_code=\"200\",classification=\"success\",grpc_status=\"\",error=\"\"}} 1"
            ),
            format!(
                "route_response_total{{{labels},status_code=\"503\",classification=\"failure\",grpc_status=\"\",error=\"\"}} 1"
            ),
            format!(
                "route_response_total{{{labels},classification=\"failure\",grpc_status=\"\",error=\"timeout\"}} 1"
            ),
            format!(
                "route_response_total{{{labels},status_code=\"200\",classification=\"failure\",grpc_status=\"14\",error=\"\"}} 1"
            ),
            format!(
                "route_response_total{{{labels},status_code=\"200\",classification=\"success\",grpc_status=\"5\",error=\"\"}} 1"
            ),
            format!("route_response_latency_ms_count{{{labels},status_code=\"200\"}} 3"),
            format!(
                "route_response_latency_ms_bucket{{le=\"3.0\",{labels},status_code=\"200\"}} 3"
            ),
            format!(
                "route_response_latency_ms_bucket{{le=\"2.0\",{labels},status_code=\"200\"}} 0"
            ),
        ] {
            assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
        }
        // The mesh's answer is an error to Linkerd: no latency.
        assert!(
            !lines.iter().any(|l| l.contains("status_code=\"504\"")),
            "{lines:#?}"
        );
    }

    #[test]
    fn the_default_route_has_no_rt_route_and_retryable_counts_the_refused() {
        let mut registry = Registry::default();
        let metrics = ProfileMetrics::register(&mut registry);
        let labels = ProfileLabels::new("web", None);
        metrics.actual(&labels, None).request();
        let retryable = metrics.retryable(&labels);
        retryable.count(true);
        retryable.count(false);
        let lines = exposition(&registry);
        for expected in [
            "route_actual_request_total{direction=\"outbound\",dst=\"web\"} 1",
            "route_retryable_total{direction=\"outbound\",dst=\"web\"} 2",
            "route_retryable_total{direction=\"outbound\",dst=\"web\",skipped=\"no_budget\"} 1",
        ] {
            assert!(
                lines.contains(&expected.to_owned()),
                "{expected} not in {lines:#?}"
            );
        }
    }
}
