//! The label sets, with Linkerd's names, and how they are written.
//!
//! Every value comes from a closed set: a direction, a TLS status, names from
//! configuration (server, route, authorization, service), identities the
//! trust bundle vouched for, status codes. One comes from the peer: the
//! `sni` of a connection passed through (`tls="opaque"`), the server name
//! its ClientHello asked for, as Linkerd labels it. A peer can name any
//! server, so those series are bounded by each family's series limit
//! alone, past which they fold into the overflow series (which keeps
//! `tls="opaque"`, not the name). Labels whose source is absent
//! (no authorization layer ran, no route was named) are left out rather
//! than written empty, as Linkerd does.
//!
//! Inbound HTTP series carry Linkerd's labels of the policy that admitted
//! a request: the group, kind and name of the Server (and the port it
//! covers), of the route and of the authorization, so that resources of
//! one name and different kinds (a Server and the default server, an
//! `AuthorizationPolicy` and a `ServerAuthorization`) count apart. They
//! also carry the address the connection came to (`target_addr`,
//! `target_ip`, `target_port`), bounded by the addresses and ports the
//! server listens on. Both are written in linkerd2-proxy's order
//! (`InboundEndpointLabels` in its `app/core/src/metrics.rs`), so that
//! text compared or parsed by position reads the same.
//!
//! Each owned label set has a borrowed twin (`*View`) built from a request's
//! extensions without cloning anything; the handle caches hash and compare
//! views, so only a new label set pays for owned strings.

mod fold;

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use mesh_core::{
    conn::{NoTlsReason, Tls},
    labels::ResourceKind,
};

use crate::{
    errors::{HttpErrorLabels, ProxyError},
    family::cache::{WordHash, same_opt_str, same_str},
};
use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

/// Which side of the proxy a request or connection is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Arriving at this workload: its server side.
    Inbound,
    /// Leaving this workload for another: its client side.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }

    /// The name of the label that carries the peer's identity: inbound
    /// requests come from a client, outbound requests go to a server.
    fn peer_id_label(self) -> &'static str {
        match self {
            Self::Inbound => "client_id",
            Self::Outbound => "server_id",
        }
    }
}

/// The TLS labels of a request or connection, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TlsView<'a> {
    /// Nothing is known: no labels.
    Absent,
    /// `tls="disabled"`.
    Disabled,
    /// `tls="no_identity",no_tls_reason="..."`.
    NoIdentity(&'static str),
    /// `tls="true"` and the peer's identity, empty when it showed none.
    Tls(Option<&'a str>),
    /// `tls="opaque",sni="..."`: TLS passed through, and the server name
    /// it asked for.
    Opaque(&'a str),
}

impl<'a> TlsView<'a> {
    /// Adds these labels to `hash`.
    #[inline]
    fn hash_into(self, hash: &mut WordHash) {
        match self {
            Self::Absent => hash.word(0),
            Self::Disabled => hash.word(1),
            Self::NoIdentity(reason) => {
                hash.word(2);
                hash.str(reason);
            }
            Self::Tls(id) => {
                hash.word(3);
                hash.opt_str(id);
            }
            Self::Opaque(sni) => {
                hash.word(4);
                hash.str(sni);
            }
        }
    }

    /// Whether these are the labels `owned` holds.
    #[inline]
    fn matches(self, owned: &TlsLabels) -> bool {
        match (self, owned) {
            (Self::Absent, TlsLabels::Absent) | (Self::Disabled, TlsLabels::Disabled) => true,
            (Self::NoIdentity(a), TlsLabels::NoIdentity(b)) => same_str(a, b),
            (Self::Tls(a), TlsLabels::Tls(b)) => same_opt_str(a, b.as_deref()),
            (Self::Opaque(a), TlsLabels::Opaque(b)) => same_str(a, b),
            _ => false,
        }
    }

    /// The labels of a connection's TLS status.
    pub(crate) fn of(tls: &'a Tls) -> Self {
        match tls {
            Tls::Plaintext(NoTlsReason::Disabled) => Self::Disabled,
            Tls::Plaintext(reason) => Self::NoIdentity(reason.as_label()),
            Tls::NoClientCert => Self::Tls(None),
            Tls::Mutual { peer } => Self::Tls(Some(peer.as_str())),
            Tls::Passthrough { sni } => Self::Opaque(sni.as_str()),
        }
    }

    fn to_owned(self) -> TlsLabels {
        match self {
            Self::Absent => TlsLabels::Absent,
            Self::Disabled => TlsLabels::Disabled,
            Self::NoIdentity(r) => TlsLabels::NoIdentity(r),
            Self::Tls(id) => TlsLabels::Tls(id.map(Arc::from)),
            Self::Opaque(sni) => TlsLabels::Opaque(Arc::from(sni)),
        }
    }
}

/// The TLS labels, owned. See [`TlsView`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TlsLabels {
    Absent,
    Disabled,
    NoIdentity(&'static str),
    Tls(Option<Arc<str>>),
    Opaque(Arc<str>),
}

impl TlsLabels {
    pub(crate) fn view(&self) -> TlsView<'_> {
        match self {
            Self::Absent => TlsView::Absent,
            Self::Disabled => TlsView::Disabled,
            Self::NoIdentity(r) => TlsView::NoIdentity(r),
            Self::Tls(id) => TlsView::Tls(id.as_deref()),
            Self::Opaque(sni) => TlsView::Opaque(sni),
        }
    }

    pub(crate) fn of(tls: &Tls) -> Self {
        TlsView::of(tls).to_owned()
    }

    /// The value of the `tls` label, if there is one.
    pub(crate) fn status(&self) -> Option<&'static str> {
        match self {
            Self::Absent => None,
            Self::Disabled => Some("disabled"),
            Self::NoIdentity(_) => Some("no_identity"),
            Self::Tls(_) => Some("true"),
            Self::Opaque(_) => Some("opaque"),
        }
    }

    fn encode(&self, direction: Direction, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        match self {
            Self::Absent => Ok(()),
            Self::Disabled => label(enc, "tls", "disabled"),
            Self::NoIdentity(reason) => {
                label(enc, "tls", "no_identity")?;
                label(enc, "no_tls_reason", reason)
            }
            Self::Tls(id) => {
                label(enc, "tls", "true")?;
                label(enc, direction.peer_id_label(), id.as_deref().unwrap_or(""))
            }
            // As Linkerd's `TlsAccept` writes `ServerTls::Passthru`, in
            // either direction (only an inbound connection is one).
            Self::Opaque(sni) => {
                label(enc, "tls", "opaque")?;
                label(enc, "sni", sni)
            }
        }
    }
}

/// The labels every HTTP series of one target shares, borrowed from a
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TargetView<'a> {
    pub(crate) direction: Direction,
    pub(crate) dst_service: Option<&'a str>,
    /// Inbound: the address the connection came to, with the port a
    /// Server's `port` is matched against.
    pub(crate) target_addr: Option<SocketAddr>,
    pub(crate) srv_kind: Option<&'static ResourceKind>,
    pub(crate) srv_name: Option<&'a str>,
    pub(crate) srv_port: Option<u16>,
    pub(crate) route_kind: Option<&'static ResourceKind>,
    pub(crate) route_name: Option<&'a str>,
    pub(crate) authz_kind: Option<&'static ResourceKind>,
    pub(crate) authz_name: Option<&'a str>,
    pub(crate) tls: TlsView<'a>,
}

impl TargetView<'_> {
    /// The hash the handle cache files this label set under: every value,
    /// hashed word by word ([`WordHash`]).
    #[inline]
    pub(crate) fn key_hash(&self) -> u64 {
        let mut hash = WordHash::new(self.direction as u64);
        hash.opt_str(self.dst_service);
        hash_addr(&mut hash, self.target_addr);
        hash_kind(&mut hash, self.srv_kind);
        hash.opt_str(self.srv_name);
        hash.word(self.srv_port.map_or(u64::MAX, u64::from));
        hash_kind(&mut hash, self.route_kind);
        hash.opt_str(self.route_name);
        hash_kind(&mut hash, self.authz_kind);
        hash.opt_str(self.authz_name);
        self.tls.hash_into(&mut hash);
        hash.finish()
    }

    /// Whether `owned` holds this label set: values are compared by
    /// address first, then by bytes.
    #[inline]
    pub(crate) fn matches(&self, owned: &TargetLabels) -> bool {
        self.direction == owned.direction
            && self.target_addr == owned.target_addr
            && self.srv_port == owned.srv_port
            && same_opt_str(self.route_name, owned.route_name.as_deref())
            && same_opt_str(self.srv_name, owned.srv_name.as_deref())
            && same_opt_str(self.authz_name, owned.authz_name.as_deref())
            && same_opt_str(self.dst_service, owned.dst_service.as_deref())
            && same_opt_kind(self.srv_kind, owned.srv_kind)
            && same_opt_kind(self.route_kind, owned.route_kind)
            && same_opt_kind(self.authz_kind, owned.authz_kind)
            && self.tls.matches(&owned.tls)
    }
}

/// Adds an address to `hash`: its IP's bits and its port.
#[inline]
fn hash_addr(hash: &mut WordHash, addr: Option<SocketAddr>) {
    match addr {
        None => hash.word(u64::MAX),
        Some(addr) => {
            match addr.ip() {
                IpAddr::V4(ip) => hash.word(u64::from(ip.to_bits())),
                IpAddr::V6(ip) => {
                    let bits = ip.to_bits();
                    hash.word(bits as u64);
                    hash.word((bits >> 64) as u64);
                }
            }
            hash.word(u64::from(addr.port()));
        }
    }
}

/// Adds a resource's kind to `hash`. Its group is left out: it follows
/// from the kind but for routes, and [`TargetView::matches`] compares it.
#[inline]
fn hash_kind(hash: &mut WordHash, kind: Option<&'static ResourceKind>) {
    hash.opt_str(kind.map(|k| k.kind));
}

/// Whether two resources' kinds are the same: the same constant, nearly
/// always, which one comparison of addresses tells; their strings
/// otherwise.
#[inline]
pub(crate) fn same_kind(a: &ResourceKind, b: &ResourceKind) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// [`same_kind`] for kinds that may be unknown.
#[inline]
pub(crate) fn same_opt_kind(a: Option<&ResourceKind>, b: Option<&ResourceKind>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_kind(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The labels every HTTP series of one target shares, owned.
///
/// Ordered (as a family's series are kept, and written) by the names
/// first, as they were before the target and the kinds were labels, so
/// that creating a series compares the kinds' strings only between label
/// sets whose names are all alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TargetLabels {
    direction: Direction,
    dst_service: Option<Arc<str>>,
    target_addr: Option<SocketAddr>,
    srv_kind: Option<&'static ResourceKind>,
    srv_name: Option<Arc<str>>,
    srv_port: Option<u16>,
    route_kind: Option<&'static ResourceKind>,
    route_name: Option<Arc<str>>,
    authz_kind: Option<&'static ResourceKind>,
    authz_name: Option<Arc<str>>,
    tls: TlsLabels,
}

impl Ord for TargetLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.direction
            .cmp(&other.direction)
            .then_with(|| self.dst_service.cmp(&other.dst_service))
            .then_with(|| self.srv_name.cmp(&other.srv_name))
            .then_with(|| self.route_name.cmp(&other.route_name))
            .then_with(|| self.authz_name.cmp(&other.authz_name))
            .then_with(|| self.tls.cmp(&other.tls))
            .then_with(|| self.target_addr.cmp(&other.target_addr))
            .then_with(|| self.srv_kind.cmp(&other.srv_kind))
            .then_with(|| self.srv_port.cmp(&other.srv_port))
            .then_with(|| self.route_kind.cmp(&other.route_kind))
            .then_with(|| self.authz_kind.cmp(&other.authz_kind))
    }
}

impl PartialOrd for TargetLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TargetLabels {
    pub(crate) fn from_view(v: &TargetView<'_>) -> Self {
        Self {
            direction: v.direction,
            dst_service: v.dst_service.map(Arc::from),
            target_addr: v.target_addr,
            srv_kind: v.srv_kind,
            srv_name: v.srv_name.map(Arc::from),
            srv_port: v.srv_port,
            route_kind: v.route_kind,
            route_name: v.route_name.map(Arc::from),
            authz_kind: v.authz_kind,
            authz_name: v.authz_name.map(Arc::from),
            tls: v.tls.to_owned(),
        }
    }

    #[cfg(test)]
    pub(crate) fn view(&self) -> TargetView<'_> {
        TargetView {
            direction: self.direction,
            dst_service: self.dst_service.as_deref(),
            target_addr: self.target_addr,
            srv_kind: self.srv_kind,
            srv_name: self.srv_name.as_deref(),
            srv_port: self.srv_port,
            route_kind: self.route_kind,
            route_name: self.route_name.as_deref(),
            authz_kind: self.authz_kind,
            authz_name: self.authz_name.as_deref(),
            tls: self.tls.view(),
        }
    }

    /// Inbound, in linkerd2-proxy's order: the address the connection
    /// came to, the TLS labels, then the Server, the route and the
    /// authorization, each as group, kind and name (and the Server's
    /// port after its name).
    fn encode_inbound(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        if let Some(addr) = self.target_addr {
            write_target_addr(enc, addr)?;
        }
        self.tls.encode(self.direction, enc)?;
        resource(enc, SRV, self.srv_kind, self.srv_name.as_deref())?;
        if let Some(port) = self.srv_port {
            ("srv_port", port).encode(enc.encode_label())?;
        }
        resource(enc, ROUTE, self.route_kind, self.route_name.as_deref())?;
        resource(enc, AUTHZ, self.authz_kind, self.authz_name.as_deref())
    }
}

impl TargetLabels {
    /// The labels of this target's errors of `error`: the address and the
    /// Server, as `inbound_http_errors_total` names them; the error alone
    /// outbound, as `outbound_http_errors_total` has no other label.
    pub(crate) fn error_labels(&self, error: ProxyError) -> HttpErrorLabels {
        match self.direction {
            Direction::Inbound => HttpErrorLabels {
                error,
                target_addr: self.target_addr,
                srv_kind: self.srv_kind,
                srv_name: self.srv_name.clone(),
                srv_port: self.srv_port,
            },
            Direction::Outbound => HttpErrorLabels {
                error,
                target_addr: None,
                srv_kind: None,
                srv_name: None,
                srv_port: None,
            },
        }
    }

    /// Which direction the target is in.
    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }
}

/// Writes `target_addr`, `target_ip` and `target_port` of `addr`, as
/// linkerd2-proxy's `TargetAddr` labels are written.
pub(crate) fn write_target_addr(
    enc: &mut LabelSetEncoder<'_>,
    addr: SocketAddr,
) -> std::fmt::Result {
    ("target_addr", Displayed(addr)).encode(enc.encode_label())?;
    ("target_ip", Displayed(addr.ip())).encode(enc.encode_label())?;
    ("target_port", addr.port()).encode(enc.encode_label())
}

impl EncodeLabelSet for TargetLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "direction", self.direction.as_label())?;
        if let Some(service) = &self.dst_service {
            label(enc, "dst_service", service)?;
        }
        if self.direction == Direction::Inbound {
            return self.encode_inbound(enc);
        }
        for (name, value) in [
            ("srv_name", &self.srv_name),
            ("route_name", &self.route_name),
            ("authz_name", &self.authz_name),
        ] {
            if let Some(value) = value {
                label(enc, name, value)?;
            }
        }
        self.tls.encode(self.direction, enc)
    }
}

/// The labels of a policy resource: its group, kind and name.
type ResourceLabels = [&'static str; 3];
const SRV: ResourceLabels = ["srv_group", "srv_kind", "srv_name"];
const ROUTE: ResourceLabels = ["route_group", "route_kind", "route_name"];
const AUTHZ: ResourceLabels = ["authz_group", "authz_kind", "authz_name"];

/// Writes a resource's group and kind, when known, then its name, when
/// known.
fn resource(
    enc: &mut LabelSetEncoder<'_>,
    [group_label, kind_label, name_label]: ResourceLabels,
    kind: Option<&'static ResourceKind>,
    name: Option<&str>,
) -> std::fmt::Result {
    if let Some(kind) = kind {
        label(enc, group_label, kind.group)?;
        label(enc, kind_label, kind.kind)?;
    }
    match name {
        Some(name) => label(enc, name_label, name),
        None => Ok(()),
    }
}

/// A label value written as its `Display` text: an address, which needs
/// no escaping.
struct Displayed<T>(T);

impl<T: std::fmt::Display> EncodeLabelValue for Displayed<T> {
    fn encode(&self, enc: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        write!(enc, "{}", self.0)
    }
}

/// What a response adds to its target's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ResponseKey {
    pub(crate) status: Option<u16>,
    pub(crate) grpc_status: Option<u16>,
    pub(crate) success: bool,
    pub(crate) error: Option<&'static str>,
}

/// The labels of a `response_total` series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ResponseLabels {
    pub(crate) target: Arc<TargetLabels>,
    pub(crate) key: ResponseKey,
}

impl EncodeLabelSet for ResponseLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        self.target.encode(enc)?;
        if let Some(status) = self.key.status {
            ("status_code", status).encode(enc.encode_label())?;
        }
        if let Some(code) = self.key.grpc_status {
            ("grpc_status", code).encode(enc.encode_label())?;
        }
        label(enc, "classification", classification(self.key.success))?;
        if let Some(error) = self.key.error {
            label(enc, "error", error)?;
        }
        Ok(())
    }
}

/// The labels of a `response_latency_ms` series: the target and the status.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LatencyLabels {
    pub(crate) target: Arc<TargetLabels>,
    pub(crate) status: u16,
}

impl EncodeLabelSet for LatencyLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        self.target.encode(enc)?;
        ("status_code", self.status).encode(enc.encode_label())
    }
}

/// Which end of a connection the peer is, as Linkerd's `peer` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Peer {
    /// The peer connected to us (`peer="src"`).
    Src,
    /// We connected to the peer (`peer="dst"`).
    Dst,
}

impl Peer {
    /// `src` or `dst`.
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            Self::Src => "src",
            Self::Dst => "dst",
        }
    }
}

/// The labels of a connection's series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TcpLabels {
    pub(crate) direction: Direction,
    pub(crate) peer: Peer,
    pub(crate) tls: TlsLabels,
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "direction", self.direction.as_label())?;
        label(enc, "peer", self.peer.as_label())?;
        self.tls.encode(self.direction, enc)
    }
}

/// The labels of a `tcp_close_total` series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CloseLabels {
    pub(crate) conn: Arc<TcpLabels>,
    /// The error that closed the connection; empty for a clean close.
    pub(crate) errno: &'static str,
}

impl EncodeLabelSet for CloseLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        self.conn.encode(enc)?;
        label(enc, "errno", self.errno)
    }
}

/// The `classification` label of a response.
pub(crate) fn classification(success: bool) -> &'static str {
    if success { "success" } else { "failure" }
}

/// Writes one label, escaping its value as OpenMetrics requires.
pub(crate) fn label(enc: &mut LabelSetEncoder<'_>, name: &str, value: &str) -> std::fmt::Result {
    (name, Escaped(value)).encode(enc.encode_label())
}

/// A label value with `\`, `"` and newlines escaped. prometheus-client
/// writes values as they are, and configured names may hold any of these.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, enc: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        let s = self.0;
        if !s.contains(['\\', '"', '\n']) {
            return enc.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\\' => enc.write_str("\\\\")?,
                '"' => enc.write_str("\\\"")?,
                '\n' => enc.write_str("\\n")?,
                c => enc.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::{
        encoding::text::encode, metrics::counter::Counter, registry::Registry,
    };

    use super::*;
    use crate::family::Family;

    #[test]
    fn configured_names_are_escaped() {
        let view = TargetView {
            direction: Direction::Inbound,
            dst_service: None,
            target_addr: None,
            srv_kind: None,
            srv_name: Some("a\"b\\c\nd"),
            srv_port: None,
            route_kind: None,
            route_name: None,
            authz_kind: None,
            authz_name: None,
            tls: TlsView::Absent,
        };
        let family = Family::<TargetLabels, Counter>::new(10, Counter::default);
        family
            .get_or_create(&TargetLabels::from_view(&view))
            .metric
            .inc();
        let mut registry = Registry::default();
        registry.register("x", "X", family);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"x_total{direction="inbound",srv_name="a\"b\\c\nd"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_passed_through_connection_is_opaque_with_its_server_name() {
        let tls = Tls::Passthrough {
            sni: mesh_core::conn::Sni::parse("App.Example").unwrap(),
        };
        let labels = TcpLabels {
            direction: Direction::Inbound,
            peer: Peer::Src,
            tls: TlsLabels::of(&tls),
        };
        assert_eq!(labels.tls.view(), TlsView::of(&tls));
        assert!(TlsView::of(&tls).matches(&labels.tls));
        assert!(!TlsView::Tls(None).matches(&labels.tls));
        let family = Family::<TcpLabels, Counter>::new(10, Counter::default);
        family.get_or_create(&labels).metric.inc();
        let mut registry = Registry::default();
        registry.register("tcp_open", "X", family);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"tcp_open_total{direction="inbound",peer="src",tls="opaque",sni="app.example"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_view_and_its_owned_labels_agree() {
        let view = TargetView {
            direction: Direction::Outbound,
            dst_service: Some("emoji"),
            target_addr: None,
            srv_kind: None,
            srv_name: None,
            srv_port: None,
            route_kind: None,
            route_name: Some("get"),
            authz_kind: None,
            authz_name: None,
            tls: TlsView::Tls(Some("spiffe://td/ns/x/sa/y")),
        };
        let owned = TargetLabels::from_view(&view);
        assert_eq!(owned.view(), view);
        assert!(view.matches(&owned));
        assert_eq!(owned.view().key_hash(), view.key_hash());
        assert_eq!(
            crate::family::cache::hash_of(&owned.view()),
            crate::family::cache::hash_of(&view)
        );
    }
}
