use std::sync::Arc;

use prometheus_client::{metrics::counter::Counter, registry::Registry};

use crate::{
    config::MetricsConfig,
    errors::{ErrorFamilies, HttpErrorLabels},
    family::{Family, FoldCounters},
    histogram::LatencyHistogram,
    labels::{LatencyLabels, ResponseLabels, TargetLabels},
};

/// The HTTP families, registered once per registry and shared by every
/// [`MetricsLayer`](super::MetricsLayer), inbound and outbound: the
/// `direction` label tells them apart, as in Linkerd.
///
/// | family | type | labels |
/// |---|---|---|
/// | `request_total` | counter | target |
/// | `response_total` | counter | target, `status_code`, `grpc_status`, `classification`, `error` |
/// | `response_latency_ms` | histogram | target, `status_code` |
/// | `http_series_overflow_total` | counter | `family` |
/// | `inbound_http_errors_total`, `outbound_http_errors_total` | counter | `error`, and inbound the target and Server |
///
/// The error families count the requests the proxy answered itself, or
/// that failed without a response: see [`errors`](crate::errors).
///
/// The target labels, each present only when its source is, are:
///
/// - inbound, in linkerd2-proxy's order: `direction`, `target_addr`,
///   `target_ip`, `target_port` (the address the connection came to; see
///   [`MetricsLayer::with_target_port`](super::MetricsLayer::with_target_port)),
///   `tls` and `client_id` / `no_tls_reason`, then the policy that
///   admitted the request: `srv_group`, `srv_kind`, `srv_name`,
///   `srv_port`, `route_group`, `route_kind`, `route_name`,
///   `authz_group`, `authz_kind`, `authz_name`;
/// - outbound: `direction`, `dst_service`, `route_name`, `tls` and
///   `server_id` / `no_tls_reason`.
///
/// Cloning is an `Arc` increment.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    pub(crate) inner: Arc<Families>,
}

#[derive(Debug)]
pub(crate) struct Families {
    pub(crate) requests: Family<TargetLabels, Counter>,
    pub(crate) responses: Family<ResponseLabels, Counter>,
    pub(crate) latency: Family<LatencyLabels, LatencyHistogram>,
    pub(crate) errors: ErrorFamilies<HttpErrorLabels>,
}

impl HttpMetrics {
    /// Registers the HTTP families in `registry` with the default
    /// [`MetricsConfig`]. Register once per registry: a second registration
    /// would write each family twice.
    pub fn register(registry: &mut Registry) -> Self {
        Self::register_with(registry, MetricsConfig::default())
    }

    /// Registers the HTTP families in `registry`, bounded as `config` says.
    pub fn register_with(registry: &mut Registry, config: MetricsConfig) -> Self {
        let limit = config.series_limit().get();
        let requests = Family::new(limit, Counter::default);
        let responses = Family::new(limit, Counter::default);
        let latency = Family::new(limit, LatencyHistogram::default);
        registry.register("request", "Total count of HTTP requests", requests.clone());
        registry.register(
            "response",
            "Total count of HTTP responses",
            responses.clone(),
        );
        registry.register(
            "response_latency_ms",
            "Elapsed times between a request's headers being received and its response's first data frame (or its end, when it has none), in milliseconds",
            latency.clone(),
        );
        let errors = ErrorFamilies::register(
            registry,
            limit,
            ["inbound_http_errors", "outbound_http_errors"],
            [
                "Inbound HTTP requests the proxy answered itself, or failed without a response, for an error of its own",
                "Outbound HTTP requests the proxy answered itself, or failed without a response, for an error of its own",
            ],
        );
        let [(inbound_folds, inbound), (outbound_folds, outbound)] = errors.folds();
        registry.register(
            "http_series_overflow",
            "Observations recorded in an overflow series because their family reached its series limit",
            FoldCounters::new(
                vec![
                    ("request_total", requests.folds()),
                    ("response_total", responses.folds()),
                    ("response_latency_ms", latency.folds()),
                ],
                vec![
                    ("inbound_http_errors_total", inbound_folds, inbound),
                    ("outbound_http_errors_total", outbound_folds, outbound),
                ],
            ),
        );
        Self {
            inner: Arc::new(Families {
                requests,
                responses,
                latency,
                errors,
            }),
        }
    }
}
