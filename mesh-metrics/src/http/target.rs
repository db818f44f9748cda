//! Finding a request's label handles: once per target, not per request.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use http::StatusCode;
use mesh_core::{classify::Classify, labels::DstService, route::RouteId};
use prometheus_client::metrics::counter::Counter;

use super::{HttpMetrics, memo::Sources};
use crate::{
    errors::{ErrorHandles, ProxyError},
    family::cache::{HandleCache, Resolved, hash_of},
    histogram::LatencyHistogram,
    labels::{
        Direction, LatencyLabels, ResponseKey, ResponseLabels, TargetLabels, TargetView, TlsLabels,
        TlsView,
    },
};

/// Where an outbound request's TLS labels come from: the server identity
/// the client expects, which configuration names (per service, or one for
/// all).
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerTls {
    pub(crate) default: Option<TlsLabels>,
    pub(crate) by_service: HashMap<Arc<str>, TlsLabels>,
}

/// What a [`MetricsLayer`](super::MetricsLayer) shares with its services.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: HttpMetrics,
    pub(crate) direction: Direction,
    pub(crate) server_tls: ServerTls,
    pub(crate) classify: Classify,
    targets: HandleCache<TargetKey, Arc<TargetHandles>>,
}

/// What finds a target's handles in the layer-wide cache: its labels,
/// and the rules of its route when the route has its own
/// ([`RouteId::classify`]). Targets of one route name under two sets of
/// rules (a ServiceProfile reloaded with other `responseClasses`) share
/// their series but not their handles, each of which classifies by its
/// own rules.
type TargetKey = (Arc<TargetLabels>, Option<Classify>);

impl Shared {
    pub(crate) fn new(
        metrics: HttpMetrics,
        direction: Direction,
        server_tls: ServerTls,
        classify: Classify,
    ) -> Self {
        Self {
            metrics,
            direction,
            server_tls,
            classify,
            targets: HandleCache::default(),
        }
    }

    /// The handles of the target `sources` name. A lookup in a lock-free
    /// cache, except for the first request of a target.
    pub(crate) fn target(&self, sources: Sources<'_>) -> Arc<TargetHandles> {
        let view = self.view(sources);
        let classify = sources.route.and_then(RouteId::classify);
        self.targets.get_or_resolve(
            view.key_hash(),
            |(labels, rules)| rules.as_ref() == classify && view.matches(labels),
            || self.resolve(&view, classify),
        )
    }

    fn view<'a>(&'a self, sources: Sources<'a>) -> TargetView<'a> {
        let authorized = sources.authorized;
        let dst_service = sources.dst_service.map(DstService::as_str);
        let tls = match self.direction {
            Direction::Inbound => sources.tls().map_or(TlsView::Absent, TlsView::of),
            Direction::Outbound => dst_service
                .and_then(|svc| self.server_tls.by_service.get(svc))
                .or(self.server_tls.default.as_ref())
                .map_or(TlsView::Absent, TlsLabels::view),
        };
        TargetView {
            direction: self.direction,
            dst_service,
            target_addr: sources.target_addr(),
            srv_kind: authorized.map(|a| a.server_kind),
            srv_name: authorized.map(|a| &*a.server),
            srv_port: authorized.and_then(|a| a.server_port),
            route_kind: authorized.and_then(|a| a.route_kind),
            route_name: sources
                .route
                .map(RouteId::as_str)
                .or(authorized.map(|a| &*a.route)),
            authz_kind: authorized.map(|a| a.authz_kind),
            authz_name: authorized.map(|a| &*a.authz),
            tls,
        }
    }

    /// The handles of the target `view` names, classifying its responses
    /// by its route's rules, `route_classify`, when it has its own, else
    /// by the layer's.
    fn resolve(
        &self,
        view: &TargetView<'_>,
        route_classify: Option<&Classify>,
    ) -> Resolved<TargetKey, Arc<TargetHandles>> {
        let labels = Arc::new(TargetLabels::from_view(view));
        let series = self.metrics.inner.requests.get_or_create(&labels);
        let handles = Arc::new(TargetHandles {
            labels: labels.clone(),
            requests: series.metric,
            classify: route_classify.unwrap_or(&self.classify).clone(),
            metrics: self.metrics.clone(),
            responses: HandleCache::default(),
            recent: Default::default(),
            statuses: HandleCache::default(),
            errors: OnceLock::new(),
            folded: series.folded,
        });
        if series.folded {
            Resolved::Once(handles)
        } else {
            Resolved::Cache((labels, route_classify.cloned()), handles)
        }
    }
}

/// The resolved series of one target: its request counter, and caches of
/// its response counters and latency histograms, filled as statuses appear.
#[derive(Debug)]
pub(crate) struct TargetHandles {
    labels: Arc<TargetLabels>,
    pub(crate) requests: Counter,
    pub(crate) classify: Classify,
    metrics: HttpMetrics,
    responses: HandleCache<ResponseKey, Counter>,
    /// The first statuses the target answered with, found by a scan of a
    /// few words: most targets answer with one to three statuses, and a
    /// hash lookup (with an `Arc` to count) per response cost more than
    /// the rest of the layer together. Others go to `statuses`.
    recent: [OnceLock<StatusHandles>; RECENT_STATUSES],
    statuses: HandleCache<u16, Arc<StatusHandles>>,
    /// Its `*_http_errors_total` counters, resolved at its first error of
    /// each value, and made at its first error: kept inline, they made
    /// every target's handles larger, and every request 18 instructions
    /// dearer (callgrind, benches' `metrics`, `resolved`).
    errors: OnceLock<Box<ErrorHandles>>,
    /// Whether the request counter is the overflow series: such handles
    /// are looked up again for every request, so that each is counted as
    /// a fold.
    folded: bool,
}

/// How many statuses a target keeps in [`TargetHandles::recent`].
const RECENT_STATUSES: usize = 4;

/// Where a response's [`StatusHandles`] are: in its target's `recent`
/// slots, or shared from its `statuses` cache.
#[derive(Debug)]
pub(crate) enum StatusRef {
    Recent(u8),
    Shared(Arc<StatusHandles>),
}

/// The series of one status of a target: its latency histogram, and the
/// response counter of a plain response with that status (no gRPC status,
/// no mesh error, ended normally), which is most of them. One lookup per
/// request then finds both. The counter is created by the first plain
/// response, so that a status seen only on gRPC or mesh-error responses
/// leaves no empty series.
#[derive(Debug)]
pub(crate) struct StatusHandles {
    code: u16,
    pub(crate) latency: LatencyHistogram,
    pub(crate) plain_key: ResponseKey,
    plain: OnceLock<Counter>,
}

impl StatusHandles {
    /// Counts a plain response of this status for `target`.
    pub(crate) fn count_plain(&self, target: &TargetHandles) {
        if let Some(counter) = self.plain.get() {
            counter.inc();
            return;
        }
        let series = target
            .metrics
            .inner
            .responses
            .get_or_create(&ResponseLabels {
                target: target.labels.clone(),
                key: self.plain_key,
            });
        series.metric.inc();
        if !series.folded {
            // A fold is looked up (and counted) again next time.
            let _ = self.plain.set(series.metric);
        }
    }
}

impl TargetHandles {
    /// Whether these are the overflow's handles, which must not be kept.
    pub(crate) fn folded(&self) -> bool {
        self.folded
    }

    /// The `response_total` counter of `key`.
    pub(crate) fn response(&self, key: ResponseKey) -> Counter {
        self.responses.get_or_resolve(
            hash_of(&key),
            |k| *k == key,
            || {
                let labels = ResponseLabels {
                    target: self.labels.clone(),
                    key,
                };
                let series = self.metrics.inner.responses.get_or_create(&labels);
                if series.folded {
                    Resolved::Once(series.metric)
                } else {
                    Resolved::Cache(key, series.metric)
                }
            },
        )
    }

    /// The latency histogram and plain response counter of `status`.
    pub(crate) fn status(&self, status: StatusCode) -> StatusRef {
        let code = status.as_u16();
        for (i, slot) in self.recent.iter().enumerate() {
            let handles = match slot.get() {
                Some(handles) => handles,
                None => match self.new_status(status) {
                    // A fold is looked up (and counted) again next time.
                    (handles, true) => return StatusRef::Shared(Arc::new(handles)),
                    // Another request may have taken the slot meanwhile,
                    // for the same status or another.
                    (handles, false) => slot.get_or_init(|| handles),
                },
            };
            if handles.code == code {
                // Fewer than 256 slots, so the index fits.
                return StatusRef::Recent(i as u8);
            }
        }
        StatusRef::Shared(self.statuses.get_or_resolve(
            u64::from(code),
            |k| *k == code,
            || match self.new_status(status) {
                (handles, true) => Resolved::Once(Arc::new(handles)),
                (handles, false) => Resolved::Cache(code, Arc::new(handles)),
            },
        ))
    }

    /// The handles of `status` (whose latency series it creates), and
    /// whether that series is the overflow.
    fn new_status(&self, status: StatusCode) -> (StatusHandles, bool) {
        let code = status.as_u16();
        let latency = self.metrics.inner.latency.get_or_create(&LatencyLabels {
            target: self.labels.clone(),
            status: code,
        });
        let plain_key = ResponseKey {
            status: Some(code),
            grpc_status: None,
            success: self.classify.classify_status(status).is_success(),
            error: None,
        };
        let handles = StatusHandles {
            code,
            latency: latency.metric,
            plain_key,
            plain: OnceLock::new(),
        };
        (handles, latency.folded)
    }

    /// Which direction the target is in.
    pub(crate) fn direction(&self) -> crate::labels::Direction {
        self.labels.direction()
    }

    /// Counts a request of this target that the proxy failed with
    /// `error`, in its direction's error family.
    #[cold]
    #[inline(never)]
    pub(crate) fn count_error(&self, error: ProxyError) {
        let errors = self.errors.get_or_init(Box::default);
        errors.count(error, || {
            let labels = self.labels.error_labels(error);
            self.metrics
                .inner
                .errors
                .counter(self.labels.direction(), &labels)
        });
    }

    /// The handles `status` refers to.
    pub(crate) fn status_handles<'a>(&'a self, status: &'a StatusRef) -> Option<&'a StatusHandles> {
        match status {
            StatusRef::Recent(i) => self.recent.get(usize::from(*i)).and_then(OnceLock::get),
            StatusRef::Shared(handles) => Some(handles),
        }
    }
}
