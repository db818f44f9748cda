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
//! Each owned label set has a borrowed twin (`*View`) built from a request's
//! extensions without cloning anything; the handle caches hash and compare
//! views, so only a new label set pays for owned strings.

mod fold;

use std::{fmt::Write as _, sync::Arc};

use mesh_core::conn::{NoTlsReason, Tls};

use crate::family::cache::{WordHash, same_opt_str, same_str};
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
    pub(crate) srv_name: Option<&'a str>,
    pub(crate) route_name: Option<&'a str>,
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
        hash.opt_str(self.srv_name);
        hash.opt_str(self.route_name);
        hash.opt_str(self.authz_name);
        self.tls.hash_into(&mut hash);
        hash.finish()
    }

    /// Whether `owned` holds this label set: values are compared by
    /// address first, then by bytes.
    #[inline]
    pub(crate) fn matches(&self, owned: &TargetLabels) -> bool {
        self.direction == owned.direction
            && same_opt_str(self.route_name, owned.route_name.as_deref())
            && same_opt_str(self.srv_name, owned.srv_name.as_deref())
            && same_opt_str(self.authz_name, owned.authz_name.as_deref())
            && same_opt_str(self.dst_service, owned.dst_service.as_deref())
            && self.tls.matches(&owned.tls)
    }
}

/// The labels every HTTP series of one target shares, owned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TargetLabels {
    direction: Direction,
    dst_service: Option<Arc<str>>,
    srv_name: Option<Arc<str>>,
    route_name: Option<Arc<str>>,
    authz_name: Option<Arc<str>>,
    tls: TlsLabels,
}

impl TargetLabels {
    pub(crate) fn from_view(v: &TargetView<'_>) -> Self {
        Self {
            direction: v.direction,
            dst_service: v.dst_service.map(Arc::from),
            srv_name: v.srv_name.map(Arc::from),
            route_name: v.route_name.map(Arc::from),
            authz_name: v.authz_name.map(Arc::from),
            tls: v.tls.to_owned(),
        }
    }

    #[cfg(test)]
    pub(crate) fn view(&self) -> TargetView<'_> {
        TargetView {
            direction: self.direction,
            dst_service: self.dst_service.as_deref(),
            srv_name: self.srv_name.as_deref(),
            route_name: self.route_name.as_deref(),
            authz_name: self.authz_name.as_deref(),
            tls: self.tls.view(),
        }
    }
}

impl EncodeLabelSet for TargetLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> std::fmt::Result {
        label(enc, "direction", self.direction.as_label())?;
        for (name, value) in [
            ("dst_service", &self.dst_service),
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
            srv_name: Some("a\"b\\c\nd"),
            route_name: None,
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
            srv_name: None,
            route_name: Some("get"),
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
