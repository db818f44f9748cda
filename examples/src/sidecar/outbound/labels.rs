//! The labels of Linkerd's outbound route families: which parent (the
//! service a request was addressed to), which route of it, and which
//! backend, each named as Kubernetes names an object.
//!
//! Linkerd's dashboards and `linkerd viz stat-outbound` group these
//! families by the references linkerd2-proxy writes, so the sidecar
//! writes the same ones, in the same order
//! (`linkerd/app/outbound/src/metrics.rs` and
//! `linkerd/app/outbound/src/http/logical/policy/route/metrics/labels.rs`
//! of linkerd2-proxy): a parent's and a backend's `group`, `kind`,
//! `namespace`, `name`, `port` and `section_name`, a route's `group`,
//! `kind`, `namespace` and `name`, each prefixed with its scope. Their
//! values are those Linkerd's policy controller sends for the same
//! resources (`policy-controller/grpc/src/outbound.rs` of linkerd2): a
//! Service is `group="core"`, `kind="Service"`.
//!
//! A service of `outbound.services` is named by its DNS name; its
//! namespace is the name's second label, else the workload's, where the
//! sidecar looks short names up (`policy.workload.namespace`). The
//! sidecar has no service ports: a service takes requests for any port
//! of its name, so `port` is empty, as Linkerd writes it for a reference
//! without one. `name` is the service's name as configured, as the
//! sidecar has always labelled it, so that queries on `parent_name` and
//! `backend_name` keep working.
//!
//! Every reference is built once, when the routes are planned or built,
//! and shared by the handles resolved from it.

use std::{fmt, sync::Arc};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

/// A service, as a parent or a backend of a route; or an
/// `EgressNetwork`, the parent and backend of a request that leaves the
/// mesh ([`egress`](super::egress)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServiceRef {
    kind: RefKind,
    namespace: Arc<str>,
    name: Arc<str>,
    /// Empty for a service, which takes requests for any port of its
    /// name; the destination port for an `EgressNetwork`, as Linkerd
    /// labels its egress traffic, and for the parent of a service's
    /// connection routes ([`with_port`](Self::with_port)).
    port: Arc<str>,
}

/// What a [`ServiceRef`] names: its `group` and `kind` labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RefKind {
    Service,
    EgressNetwork,
}

impl RefKind {
    const fn group_and_kind(self) -> (&'static str, &'static str) {
        match self {
            Self::Service => ("core", "Service"),
            Self::EgressNetwork => ("policy.linkerd.io", "EgressNetwork"),
        }
    }
}

impl ServiceRef {
    /// The service `name` (a DNS name, `emoji` or `emoji.emojivoto...`),
    /// in the namespace its second label names, else in `namespace`.
    pub(crate) fn new(name: &str, namespace: &str) -> Self {
        let in_namespace = name.split('.').nth(1).unwrap_or(namespace);
        Self {
            kind: RefKind::Service,
            namespace: Arc::from(in_namespace),
            name: Arc::from(name),
            port: Arc::from(""),
        }
    }

    /// The `EgressNetwork` `namespace/name`, for traffic to `port`, as
    /// Linkerd labels the parent of egress traffic:
    /// `group="policy.linkerd.io"`, `kind="EgressNetwork"`.
    pub(crate) fn egress_network(namespace: &str, name: &str, port: u16) -> Self {
        Self {
            kind: RefKind::EgressNetwork,
            namespace: Arc::from(namespace),
            name: Arc::from(name),
            port: Arc::from(port.to_string()),
        }
    }

    /// The same service as the parent of a connection to its `port`: a
    /// `TLSRoute` or `TCPRoute` is attached to a port of its Service, and
    /// Linkerd labels its connections' parent with that port
    /// (`parent_port`), where a service's HTTP routes have none here.
    pub(crate) fn with_port(mut self, port: u16) -> Self {
        self.port = Arc::from(port.to_string());
        self
    }

    /// The service's name, as it is labelled.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The service's namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    fn encode(&self, scope: Scope, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let [group, kind, namespace, name, port, section] = scope.service_keys();
        let (group_value, kind_value) = self.kind.group_and_kind();
        [
            (group, group_value),
            (kind, kind_value),
            (namespace, &*self.namespace),
            (name, &*self.name),
            (port, &*self.port),
            (section, ""),
        ]
        .encode(encoder)
    }
}

/// A route of a service: an `HTTPRoute` or `GRPCRoute` (rule), a
/// ServiceProfile route, or the route of the requests none of those
/// matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RouteRef(Arc<RouteMeta>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct RouteMeta {
    group: Arc<str>,
    kind: Arc<str>,
    namespace: Arc<str>,
    name: Arc<str>,
}

impl RouteRef {
    /// A route that is a resource: its API group, kind, namespace and the
    /// name the route is labelled with.
    pub(crate) fn resource(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        Self(Arc::new(RouteMeta {
            group: Arc::from(group),
            kind: Arc::from(kind),
            namespace: Arc::from(namespace),
            name: Arc::from(name),
        }))
    }

    /// A route that is no resource, as Linkerd labels one: no group nor
    /// namespace, kind `default`.
    pub(crate) fn default_named(name: &str) -> Self {
        Self::resource("", "default", "", name)
    }
}

impl EncodeLabelSet for RouteRef {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let meta = &*self.0;
        [
            ("route_group", &*meta.group),
            ("route_kind", &*meta.kind),
            ("route_namespace", &*meta.namespace),
            ("route_name", &*meta.name),
        ]
        .encode(encoder)
    }
}

#[derive(Clone, Copy, Debug)]
enum Scope {
    Parent,
    Backend,
}

impl Scope {
    const fn service_keys(self) -> [&'static str; 6] {
        match self {
            Self::Parent => [
                "parent_group",
                "parent_kind",
                "parent_namespace",
                "parent_name",
                "parent_port",
                "parent_section_name",
            ],
            Self::Backend => [
                "backend_group",
                "backend_kind",
                "backend_namespace",
                "backend_name",
                "backend_port",
                "backend_section_name",
            ],
        }
    }
}

/// The labels of a route's own families, over its retries: its parent,
/// the route, and `hostname`, which Linkerd writes empty unless its proxy
/// is told to export hostnames (off by default), as the sidecar does for
/// a service's routes: a request's host is no bounded label. Egress is
/// the exception, as in Linkerd, which fills `hostname` for the default
/// egress routes: the sidecar writes the request's host there when it is
/// a DNS name (an IP literal is left empty, as Linkerd leaves it), a
/// bounded number of them per route ([`egress`](super::egress)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RouteLabels {
    parent: ServiceRef,
    route: RouteRef,
    hostname: Arc<str>,
}

impl RouteLabels {
    pub(crate) fn new(parent: ServiceRef, route: RouteRef) -> Self {
        Self {
            parent,
            route,
            hostname: Arc::from(""),
        }
    }

    /// The same labels, with `hostname` the host egress traffic was sent
    /// to.
    pub(crate) fn with_hostname(mut self, hostname: &str) -> Self {
        self.hostname = Arc::from(hostname);
        self
    }

    /// The labels of what this route sends `backend`.
    pub(crate) fn backend(&self, backend: ServiceRef) -> BackendLabels {
        BackendLabels {
            parent: self.parent.clone(),
            route: self.route.clone(),
            backend,
        }
    }
}

impl EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.parent.encode(Scope::Parent, encoder)?;
        self.route.encode(encoder)?;
        [("hostname", &*self.hostname)].encode(encoder)
    }
}

/// The labels of a `TCPRoute`'s connection families
/// (`outbound_tcp_route_open_total`, `outbound_tcp_route_close_total`):
/// its parent, the route, and the address connected to, as
/// linkerd2-proxy writes them (`linkerd/app/outbound/src/opaq/logical/route.rs`:
/// `target_ip`, `target_port`). The address is egress's, so `target_ip`
/// is bounded as a TLS route's `hostname` is ([`egress`](super::egress)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TargetLabels {
    parent: ServiceRef,
    route: RouteRef,
    target_ip: Arc<str>,
    target_port: u16,
}

impl TargetLabels {
    pub(crate) fn new(
        parent: ServiceRef,
        route: RouteRef,
        target_ip: &str,
        target_port: u16,
    ) -> Self {
        Self {
            parent,
            route,
            target_ip: Arc::from(target_ip),
            target_port,
        }
    }
}

impl EncodeLabelSet for TargetLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.parent.encode(Scope::Parent, encoder)?;
        self.route.encode(encoder)?;
        ("target_ip", &*self.target_ip).encode(encoder.encode_label())?;
        ("target_port", self.target_port).encode(encoder.encode_label())
    }
}

/// The labels of what a route sends one of its backends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BackendLabels {
    parent: ServiceRef,
    route: RouteRef,
    backend: ServiceRef,
}

impl EncodeLabelSet for BackendLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.parent.encode(Scope::Parent, encoder)?;
        self.route.encode(encoder)?;
        self.backend.encode(Scope::Backend, encoder)
    }
}

/// `labels` and how an HTTP response ended: its status, empty when there
/// was none, and `error`, empty for a response that came from the
/// backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StatusLabels<L> {
    pub(crate) labels: L,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<&'static str>,
}

impl<L: EncodeLabelSet> EncodeLabelSet for StatusLabels<L> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.labels.encode(encoder)?;
        ("http_status", self.http_status).encode(encoder.encode_label())?;
        ("error", self.error).encode(encoder.encode_label())
    }
}

/// `labels` and how a gRPC call ended: its code's name (`UNKNOWN` when
/// there was none) and `error`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct GrpcStatusLabels<L> {
    pub(crate) labels: L,
    pub(crate) grpc_status: &'static str,
    pub(crate) error: Option<&'static str>,
}

impl<L: EncodeLabelSet> EncodeLabelSet for GrpcStatusLabels<L> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> fmt::Result {
        self.labels.encode(encoder)?;
        ("grpc_status", self.grpc_status).encode(encoder.encode_label())?;
        ("error", self.error).encode(encoder.encode_label())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prometheus_client::{
        encoding::text::encode,
        metrics::{counter::Counter, family::Family},
        registry::Registry,
    };

    use super::*;

    #[test]
    fn references_are_written_in_linkerds_order() {
        let mut registry = Registry::default();
        let family = Family::<StatusLabels<BackendLabels>, Counter>::default();
        registry.register("statuses", "Statuses", family.clone());
        let route = RouteLabels::new(
            ServiceRef::new("web", "emojivoto"),
            RouteRef::resource("gateway.networking.k8s.io", "HTTPRoute", "emojivoto", "api"),
        );
        let labels = route.backend(ServiceRef::new("web-canary.canary", "emojivoto"));
        family
            .get_or_create(&StatusLabels {
                labels,
                http_status: Some(200),
                error: None,
            })
            .inc();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let expected = "statuses_total{\
            parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",\
            parent_name=\"web\",parent_port=\"\",parent_section_name=\"\",\
            route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",\
            route_namespace=\"emojivoto\",route_name=\"api\",\
            backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"canary\",\
            backend_name=\"web-canary.canary\",backend_port=\"\",backend_section_name=\"\",\
            http_status=\"200\",error=\"\"} 1\n";
        assert!(text.contains(expected), "{text}");
    }
}
