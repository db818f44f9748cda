//! The identity and handshake metrics.
//!
//! One [`TlsMetrics`] belongs to a [`CredentialStore`](crate::CredentialStore),
//! and every acceptor and connector built on that store counts into it. It
//! registers into a registry the caller owns; there is no global registry.
//! Every label value comes from a closed enum, except the identity of
//! `identity_cert_info`: that is the workload's own, one series at a time.

use std::{
    fmt::Write,
    sync::{Arc, atomic::AtomicU64},
    time::SystemTime,
};

use arc_swap::ArcSwapOption;
use mesh_core::Identity;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder},
    metrics::{MetricType, counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::creds::RejectReason;

/// The mesh's TLS metrics: the identity in service, certificate expiry,
/// rotations, rejected credential updates and whether the last one loaded,
/// handshake failures and retired connections.
#[derive(Clone, Debug, Default)]
pub struct TlsMetrics {
    identity: IdentityInfo,
    expiration: Gauge,
    rotations: Counter,
    rejected: Family<RejectLabels, Counter>,
    last_update: Gauge,
    control: ControlIdentity,
    handshake_failures: Family<HandshakeLabels, Counter>,
    retired: Family<RetireLabels, Counter>,
    passthrough: Counter,
}

impl TlsMetrics {
    /// Registers the metrics:
    ///
    /// - `identity_cert_info{identity}` (gauge): 1, labelled with the
    ///   identity (SPIFFE ID or DNS-style name) the certificate in service
    ///   names, so that tools reading a scrape (`sidecar edges`) learn whose
    ///   it is. There is exactly one series once credentials are loaded and
    ///   none before; a rotation to a certificate of another identity
    ///   replaces the series rather than leaving the old one at 0, so the
    ///   exposition never names an identity the workload no longer holds;
    /// - `identity_cert_expiration_timestamp_seconds` (gauge): when the
    ///   certificate in service expires, in seconds since the Unix epoch:
    ///   the workload certificate's `notAfter`, or an intermediate's when
    ///   that comes first (Linkerd reports the workload certificate's; an
    ///   alert on this gauge should fire when the identity will end, and
    ///   connections are retired at the earlier time);
    /// - `identity_cert_rotations_total`: credentials replaced by newer ones;
    /// - `identity_cert_rejected_updates_total{reason}`: credential updates
    ///   refused, the old credentials staying in service;
    /// - `identity_cert_last_update_successful` (gauge): whether the
    ///   credentials' source is good now. The counter above cannot say so:
    ///   an alert on its `increase` fires after a refusal and clears while
    ///   the refused files are still there. This is 0 from every refusal
    ///   counted there until the next update loads, and 1 from then, as
    ///   Prometheus's `prometheus_config_last_reload_successful` tells of
    ///   its configuration; 0 too before the first credentials load. An
    ///   update that only repeats the credentials in service (files put
    ///   back as they were) loads as well as a new one. Files the store
    ///   reads half-written and waits out are no refusal and leave it as
    ///   it is ([`CredentialStore::watch_files`](crate::CredentialStore::watch_files)).
    ///   For a [CA source], a refused
    ///   directory keeps it at 0 until the directory loads again, though
    ///   the CA loaded before goes on renewing the certificate meanwhile;
    /// - `control_identity_cert_expiration_timestamp_seconds`,
    ///   `control_identity_cert_refresh_timestamp_seconds` (gauges) and
    ///   `control_identity_cert_refreshes_total{result}`: the families
    ///   linkerd2-proxy has written since April 2024 (its
    ///   `linkerd/identity/src/metrics.rs`, registered under
    ///   `control_identity_cert`), with its meaning, so that dashboards and
    ///   alerts written for current Linkerd read them; those written for
    ///   older proxies read `identity_cert_expiration_timestamp_seconds`
    ///   above, which stays. The expiration is the workload certificate's
    ///   `notAfter` alone, as Linkerd's is (the gauge above takes an
    ///   intermediate's when that comes first); the refresh timestamp is
    ///   when, by the store's clock, that certificate was put in service.
    ///   Both are in seconds since the Unix epoch, as floating-point
    ///   gauges as Linkerd's are, and 0 until credentials load.
    ///   `result="ok"` counts every certificate put in service, the first
    ///   included (an update that only repeats the credentials in service
    ///   puts none in service and counts nothing, nor does one that
    ///   changes only the trust bundle or the intermediates beside the
    ///   workload certificate in service: that certificate was not
    ///   renewed, and the refresh timestamp stays its own, so that an
    ///   alert on the time since it finds a renewal that is stuck);
    ///   `result="error"` counts
    ///   every refused update, as `identity_cert_rejected_updates_total`
    ///   does, and a refusal leaves both timestamps as they were. Both
    ///   series are written from the start, at 0, as Linkerd writes them,
    ///   so that an alert on the increase of `result="error"` sees the
    ///   first refusal;
    /// - `tls_handshake_failures_total{direction, reason}`: connections that
    ///   failed TLS detection or the handshake;
    /// - `tls_passthrough_connections_total`: inbound TLS connections passed
    ///   through to the application untouched, because their ClientHello
    ///   named another server (see [server
    ///   names](crate::accept#server-names)); no failure, and not counted
    ///   as one (one refused on a strict port is, as
    ///   `passthrough_refused`);
    /// - `tls_connections_retired_total{direction, reason}`: connections
    ///   retired because the credentials rotated to ones that no longer
    ///   vouch for them (`rotation`) or a certificate neared expiry
    ///   (`expiry`): pooled client connections (`outbound`) and drained server
    ///   connections (`inbound`).
    ///
    #[cfg_attr(feature = "ca", doc = "[CA source]: crate::CredentialSource::Ca")]
    #[cfg_attr(not(feature = "ca"), doc = "[CA source]: crate#features")]
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "identity_cert_info",
            "The identity the certificate in service names",
            self.identity.clone(),
        );
        registry.register_with_unit(
            "identity_cert_expiration_timestamp",
            "When the identity certificate in service expires",
            Unit::Seconds,
            self.expiration.clone(),
        );
        registry.register(
            "identity_cert_rotations",
            "Identity credentials replaced by newer ones",
            self.rotations.clone(),
        );
        registry.register(
            "identity_cert_rejected_updates",
            "Identity credential updates refused; the previous credentials stay in service",
            self.rejected.clone(),
        );
        registry.register(
            "identity_cert_last_update_successful",
            "Whether the last identity credential update loaded (1), or was refused (0)",
            self.last_update.clone(),
        );
        self.control.register(registry);
        registry.register(
            "tls_handshake_failures",
            "Connections that failed TLS detection or the TLS handshake",
            self.handshake_failures.clone(),
        );
        registry.register(
            "tls_passthrough_connections",
            "Inbound TLS connections passed through untouched: their ClientHello named another server",
            self.passthrough.clone(),
        );
        registry.register(
            "tls_connections_retired",
            "Connections retired before their credentials expire",
            self.retired.clone(),
        );
    }

    /// Records credentials put in service at `at` (by the store's clock):
    /// `loaded` says what they are, `rotation` that they replaced others.
    pub(crate) fn loaded(&self, loaded: &Loaded<'_>, rotation: bool, at: SystemTime) {
        self.identity.set(loaded.identity);
        let secs = loaded
            .ends
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.expiration.set(secs);
        if rotation {
            self.rotations.inc();
        }
        if loaded.renewed {
            self.control.refreshed(loaded.cert_not_after, at);
        }
    }

    /// Counts a refused update, which makes the last update unsuccessful.
    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
        self.refused();
    }

    /// Counts a refused update that has no reason of
    /// `identity_cert_rejected_updates_total` (a CA directory refused for
    /// what no directory causes): Linkerd's `result="error"`, and the last
    /// update unsuccessful.
    pub(crate) fn refused(&self) {
        self.control.error.inc();
        self.last_update(false);
    }

    /// Sets `identity_cert_last_update_successful`.
    pub(crate) fn last_update(&self, successful: bool) {
        self.last_update.set(i64::from(successful));
    }

    pub(crate) fn handshake_failed(&self, direction: Direction, reason: HandshakeFailure) {
        self.handshake_failures
            .get_or_create(&HandshakeLabels { direction, reason })
            .inc();
    }

    pub(crate) fn passed_through(&self) {
        self.passthrough.inc();
    }

    pub(crate) fn retired(&self, direction: Direction, reason: RetireReason) {
        self.retired
            .get_or_create(&RetireLabels { direction, reason })
            .inc();
    }
}

/// What [`TlsMetrics::loaded`] records of the credentials put in service.
pub(crate) struct Loaded<'a> {
    /// The identity their certificate names.
    pub(crate) identity: &'a Identity,
    /// When the identity ends: the workload certificate's `notAfter`, or
    /// an intermediate's when that comes first.
    pub(crate) ends: SystemTime,
    /// The workload certificate's own `notAfter`.
    pub(crate) cert_not_after: SystemTime,
    /// Whether the workload certificate is another than the one in
    /// service before: a refresh, as Linkerd's families count one.
    pub(crate) renewed: bool,
}

/// linkerd2-proxy's `control_identity_cert_*` families. Its gauges are
/// floating-point, so these are too, and the exposition writes what
/// Linkerd's does (`1893456000.0`).
#[derive(Clone, Debug)]
struct ControlIdentity {
    expiration: Gauge<f64, AtomicU64>,
    refresh: Gauge<f64, AtomicU64>,
    refreshes: Family<RefreshLabels, Counter>,
    /// The `result="ok"` and `result="error"` counters, resolved once.
    ok: Counter,
    error: Counter,
}

impl Default for ControlIdentity {
    fn default() -> Self {
        let refreshes = Family::<RefreshLabels, Counter>::default();
        let ok = refreshes
            .get_or_create(&RefreshLabels { result: "ok" })
            .clone();
        let error = refreshes
            .get_or_create(&RefreshLabels { result: "error" })
            .clone();
        Self {
            expiration: Gauge::default(),
            refresh: Gauge::default(),
            refreshes,
            ok,
            error,
        }
    }
}

impl ControlIdentity {
    fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "control_identity_cert_expiration_timestamp",
            "When the workload certificate in service expires, in seconds since the Unix epoch",
            Unit::Seconds,
            self.expiration.clone(),
        );
        registry.register_with_unit(
            "control_identity_cert_refresh_timestamp",
            "When the workload certificate in service was put in service, in seconds since the Unix epoch",
            Unit::Seconds,
            self.refresh.clone(),
        );
        registry.register(
            "control_identity_cert_refreshes",
            "Workload certificates put in service (ok) and credential updates refused (error)",
            self.refreshes.clone(),
        );
    }

    fn refreshed(&self, not_after: SystemTime, at: SystemTime) {
        self.ok.inc();
        self.expiration.set(epoch_secs(not_after));
        self.refresh.set(epoch_secs(at));
    }
}

/// Seconds since the Unix epoch, 0 for a time before it.
fn epoch_secs(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    result: &'static str,
}

/// `identity_cert_info`: one series naming the identity in service, or
/// none before credentials are loaded.
///
/// Not a `Family`: swapping one series for another there takes two writes,
/// between which a scrape would see both series or neither. Here a
/// rotation is one pointer swap, and each scrape reads one identity.
#[derive(Clone, Debug, Default)]
struct IdentityInfo {
    current: Arc<ArcSwapOption<Identity>>,
}

impl IdentityInfo {
    fn set(&self, identity: &Identity) {
        self.current.store(Some(Arc::new(identity.clone())));
    }
}

impl EncodeMetric for IdentityInfo {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.current.load().as_deref() {
            Some(identity) => encoder
                .encode_family(&[("identity", identity.as_str())])?
                .encode_gauge(&1_i64),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.current.load().is_none()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: RejectReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    direction: Direction,
    reason: HandshakeFailure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetireLabels {
    direction: Direction,
    reason: RetireReason,
}

/// Which side of a connection the mesh was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The mesh accepted the connection.
    Inbound,
    /// The mesh opened the connection.
    Outbound,
}

impl Direction {
    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Why TLS detection or a handshake failed: the `reason` label of
/// `tls_handshake_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// Detection or the handshake took longer than its timeout.
    Timeout,
    /// A plaintext client on a strict port.
    PlaintextRefused,
    /// No client certificate where one is required.
    NoClientCertificate,
    /// A ClientHello naming another server than this workload, on a
    /// strict port, which would pass it through.
    PassthroughRefused,
    /// No local credentials are loaded yet.
    NoCredentials,
    /// The local credentials have expired.
    CredentialsExpired,
    /// The local credentials are not valid yet: the clock is before their
    /// `notBefore` (stepped back, or the issuer's runs ahead). Counted
    /// apart from [`HandshakeFailure::NoCredentials`], since the remedy is
    /// the clock, not the delivery of a certificate.
    CredentialsNotYetValid,
    /// The peer's chain does not lead to a trust anchor, or, for a SPIFFE
    /// ID, to none of its own trust domain's
    /// ([`NoAnchorOfTrustDomain`](crate::NoAnchorOfTrustDomain)): either
    /// way no anchor that vouches for the peer issued its chain.
    UnknownIssuer,
    /// The peer's certificate has expired.
    CertificateExpired,
    /// The peer's certificate is not valid yet.
    CertificateNotYetValid,
    /// The peer's certificate is unusable for another reason.
    BadCertificate,
    /// The peer's certificate names another identity than the expected one.
    IdentityMismatch,
    /// The peer's certificate names no identity.
    NoPeerIdentity,
    /// The peer offers nothing the mesh accepts (TLS 1.2, other suites,
    /// only application protocols the mesh does not speak).
    Incompatible,
    /// The peer aborted the handshake with an alert.
    AlertReceived,
    /// The connection failed underneath TLS.
    Io,
    /// Anything else rustls refused.
    Other,
}

impl HandshakeFailure {
    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::PlaintextRefused => "plaintext_refused",
            Self::NoClientCertificate => "no_client_certificate",
            Self::PassthroughRefused => "passthrough_refused",
            Self::NoCredentials => "no_credentials",
            Self::CredentialsExpired => "credentials_expired",
            Self::CredentialsNotYetValid => "credentials_not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::CertificateExpired => "certificate_expired",
            Self::CertificateNotYetValid => "certificate_not_yet_valid",
            Self::BadCertificate => "bad_certificate",
            Self::IdentityMismatch => "identity_mismatch",
            Self::NoPeerIdentity => "no_peer_identity",
            Self::Incompatible => "incompatible",
            Self::AlertReceived => "alert_received",
            Self::Io => "io",
            Self::Other => "other",
        }
    }

    /// Classifies a handshake error from tokio-rustls, which wraps rustls's
    /// error in an `io::Error`.
    pub(crate) fn of_io(err: &std::io::Error) -> Self {
        match err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            Some(e) => Self::of_rustls(e),
            None => Self::Io,
        }
    }

    fn of_rustls(err: &rustls::Error) -> Self {
        use rustls::{CertificateError as C, Error as E};
        match err {
            E::InvalidCertificate(c) => match c {
                C::Expired | C::ExpiredContext { .. } => Self::CertificateExpired,
                C::NotValidYet | C::NotValidYetContext { .. } => Self::CertificateNotYetValid,
                C::UnknownIssuer => Self::UnknownIssuer,
                C::NotValidForName | C::NotValidForNameContext { .. } => Self::IdentityMismatch,
                C::Other(other) if other.0.is::<crate::verify::IdentityMismatch>() => {
                    Self::IdentityMismatch
                }
                // No anchor of the identity's trust domain issued the
                // chain: as unknown as no anchor at all, which is how the
                // acceptor counts the same refusal.
                C::Other(other) if other.0.is::<crate::verify::NoAnchorOfTrustDomain>() => {
                    Self::UnknownIssuer
                }
                _ => Self::BadCertificate,
            },
            E::NoCertificatesPresented => Self::NoClientCertificate,
            // A peer that offers no application protocol the mesh speaks
            // (RFC 7301 §3.2) is as incompatible as one offering no suite.
            E::PeerIncompatible(_) | E::NoApplicationProtocol => Self::Incompatible,
            E::AlertReceived(_) => Self::AlertReceived,
            _ => Self::Other,
        }
    }
}

/// Why a connection was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetireReason {
    /// The local credentials rotated to ones that no longer vouch for the
    /// connection: a trust bundle that no longer verifies the peer's
    /// chain, another local identity (client connections), or any
    /// rotation, when so configured (server connections).
    Rotation,
    /// A certificate of the connection nears its `notAfter`.
    Expiry,
}

impl RetireReason {
    /// The metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Rotation => "rotation",
            Self::Expiry => "expiry",
        }
    }
}

macro_rules! label_value {
    ($($ty:ty),*) => {$(
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_label())
            }
        }
    )*};
}

label_value!(Direction, HandshakeFailure, RejectReason, RetireReason);

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exposes_each_family_with_closed_label_values() {
        let metrics = TlsMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let web = Identity::parse("spiffe://example.org/ns/shop/sa/web").unwrap();
        let secs = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        metrics.loaded(
            &Loaded {
                identity: &web,
                ends: secs(1_700_000_000),
                cert_not_after: secs(1_700_000_100),
                renewed: true,
            },
            true,
            secs(1_690_000_000),
        );
        metrics.last_update(true);
        metrics.rejected(RejectReason::KeyMismatch);
        metrics.handshake_failed(Direction::Inbound, HandshakeFailure::PlaintextRefused);
        metrics.retired(Direction::Outbound, RetireReason::Rotation);
        metrics.passed_through();
        let text = encoded(&registry);
        for line in [
            "identity_cert_info{identity=\"spiffe://example.org/ns/shop/sa/web\"} 1",
            "identity_cert_expiration_timestamp_seconds 1700000000",
            "identity_cert_rotations_total 1",
            "control_identity_cert_expiration_timestamp_seconds 1700000100.0",
            "control_identity_cert_refresh_timestamp_seconds 1690000000.0",
            "control_identity_cert_refreshes_total{result=\"ok\"} 1",
            "control_identity_cert_refreshes_total{result=\"error\"} 1",
            "identity_cert_rejected_updates_total{reason=\"key_mismatch\"} 1",
            "# TYPE identity_cert_last_update_successful gauge",
            "identity_cert_last_update_successful 0",
            "tls_handshake_failures_total{direction=\"inbound\",reason=\"plaintext_refused\"} 1",
            "tls_connections_retired_total{direction=\"outbound\",reason=\"rotation\"} 1",
            "tls_passthrough_connections_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        metrics.last_update(true);
        let text = encoded(&registry);
        assert!(
            text.lines()
                .any(|l| l == "identity_cert_last_update_successful 1"),
            "{text}"
        );
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_peer_offering_no_protocol_the_mesh_speaks_is_incompatible() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::NoApplicationProtocol,
        );
        assert_eq!(HandshakeFailure::of_io(&io), HandshakeFailure::Incompatible);
    }
}
