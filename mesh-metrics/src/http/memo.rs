//! The targets one service has seen, found again without hashing.
//!
//! The labels of a request come from values other layers insert: the
//! connection's TLS status, the policy decision, the route. Within one
//! connection and one policy they are clones of the same `Arc`s, request
//! after request. The layer-wide [`HandleCache`](crate::family::cache)
//! cannot use that: it keeps its own copies of the label values, so it has
//! to hash about 80 bytes of them, load a snapshot through `arc-swap` and
//! compare each value byte by byte on every request.
//!
//! So each service a [`MetricsLayer`](super::MetricsLayer) makes keeps the
//! targets it sees together with the very values (`Arc` clones) their
//! first requests carried. A request whose values are the same allocations
//! is matched by a handful of address comparisons. Values from another
//! connection or policy snapshot are compared by bytes and still match:
//! identities, route and policy names outlive connections and reloads.
//! Hyper clones the service for every request; the clones share the memo.
//!
//! Reading the memo takes no lock and writes nothing: each entry is set
//! once and never replaced, so threads that share a service do not contend
//! for it. The price is that it holds at most [`SLOTS`] × [`WAYS`] targets,
//! the first ones seen; a request whose slot is full finds its target in
//! the layer-wide cache, as every request did before the memo. Targets
//! folded into the overflow series are never kept, so that each of their
//! requests is counted as a fold.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use http::Request;
use mesh_core::{
    classify::Classify,
    conn::{ConnectionInfo, Tls},
    labels::{Authorized, DstService},
    route::RouteId,
};

use super::target::{Shared, TargetHandles};
use crate::{
    family::cache::{same_opt_str, same_str},
    labels::{Direction, same_kind, same_opt_kind},
};

/// How many slots a service's memo has. A request's values pick its slot.
const SLOTS: usize = 32;

/// How many targets a slot keeps, checked in the order they were kept.
/// Most slots hold one: a request checks one entry.
const WAYS: usize = 4;

/// What a [`Metrics`](super::Metrics) service and its clones share: the
/// layer's label caches and this service's memo.
#[derive(Debug)]
pub(crate) struct Targets {
    pub(crate) shared: Arc<Shared>,
    /// Inbound: the port `target_port` names in place of the one each
    /// connection was accepted on (see
    /// [`MetricsLayer::with_target_port`](super::MetricsLayer::with_target_port)).
    target_port: Option<u16>,
    memo: Box<[[OnceLock<Entry>; WAYS]; SLOTS]>,
}

/// One kept target, and the values its labels came from.
#[derive(Debug)]
struct Entry {
    /// The address the first request's connection was accepted on. The
    /// port that may name the target instead is the same for every entry,
    /// so equal addresses give equal targets.
    local_addr: Option<SocketAddr>,
    tls: Option<Tls>,
    authorized: Option<Authorized>,
    route: Option<RouteId>,
    dst_service: Option<DstService>,
    target: Arc<TargetHandles>,
}

/// The request extensions a target's labels come from, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sources<'a> {
    /// The connection: its TLS status and the address it came to; inbound
    /// only, as outbound TLS labels come from configuration.
    conn: Option<&'a ConnectionInfo>,
    /// The port that names the target in place of the connection's own.
    target_port: Option<u16>,
    /// The policy decision; inbound only.
    pub(crate) authorized: Option<&'a Authorized>,
    pub(crate) route: Option<&'a RouteId>,
    /// The destination service; outbound only.
    pub(crate) dst_service: Option<&'a DstService>,
}

impl<'a> Sources<'a> {
    /// Each direction reads only the extensions its labels come from (see
    /// [`MetricsLayer::inbound`](super::MetricsLayer::inbound) and
    /// [`outbound`](super::MetricsLayer::outbound)): each lookup hashes a
    /// type id and probes the request's extension map, on every request.
    fn of<B>(direction: Direction, target_port: Option<u16>, req: &'a Request<B>) -> Self {
        let ext = req.extensions();
        match direction {
            Direction::Inbound => Self {
                conn: ext.get::<ConnectionInfo>(),
                target_port,
                authorized: ext.get::<Authorized>(),
                route: ext.get::<RouteId>(),
                dst_service: None,
            },
            Direction::Outbound => Self {
                conn: None,
                target_port: None,
                authorized: None,
                route: ext.get::<RouteId>(),
                dst_service: ext.get::<DstService>(),
            },
        }
    }

    /// The connection's TLS status; inbound only.
    #[inline]
    pub(crate) fn tls(&self) -> Option<&'a Tls> {
        self.conn.map(|info| &info.tls)
    }

    /// The address the connection came to, with the port Servers are
    /// matched against; inbound only.
    #[inline]
    pub(crate) fn target_addr(&self) -> Option<SocketAddr> {
        self.conn.map(|info| match self.target_port {
            Some(port) => SocketAddr::new(info.local_addr.ip(), port),
            None => info.local_addr,
        })
    }

    /// Whether `kept` is the address the connection was accepted on.
    #[inline]
    fn same_local_addr(&self, kept: Option<&SocketAddr>) -> bool {
        match (self.conn, kept) {
            (Some(info), Some(kept)) => info.local_addr == *kept,
            (None, None) => true,
            _ => false,
        }
    }

    /// The slot of these values: the local port, and the strings'
    /// lengths and last bytes, which is cheap, and the same for equal
    /// values wherever they were allocated.
    #[inline]
    fn slot(&self) -> usize {
        let mut h = 0;
        if let Some(info) = self.conn {
            h = mix(h, u64::from(info.local_addr.port()));
        }
        if let Some(a) = self.authorized {
            h = mix(h, fingerprint(&a.authz));
            h = mix(h, fingerprint(&a.route));
        }
        if let Some(route) = self.route {
            h = mix(h, fingerprint(route.as_str()));
        }
        if let Some(Tls::Mutual { peer }) = self.tls() {
            h = mix(h, fingerprint(peer.as_str()));
        }
        if let Some(dst) = self.dst_service {
            h = mix(h, fingerprint(dst.as_str()));
        }
        // The high bits are the best mixed.
        (h >> 32) as usize % SLOTS
    }

    /// Whether `entry` was filled from equal values: the same allocations,
    /// or the same bytes.
    #[inline]
    fn matches(&self, entry: &Entry) -> bool {
        same_route(self.route, entry.route.as_ref())
            && self.same_local_addr(entry.local_addr.as_ref())
            && same_policy(self.authorized, entry.authorized.as_ref())
            && same_opt_str(
                self.dst_service.map(DstService::as_str),
                entry.dst_service.as_ref().map(DstService::as_str),
            )
            && match (self.tls(), &entry.tls) {
                (Some(a), Some(b)) => same_tls(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    fn to_entry(self, target: Arc<TargetHandles>) -> Entry {
        Entry {
            local_addr: self.conn.map(|info| info.local_addr),
            tls: self.tls().cloned(),
            authorized: self.authorized.cloned(),
            route: self.route.cloned(),
            dst_service: self.dst_service.cloned(),
            target,
        }
    }
}

impl Targets {
    pub(crate) fn new(shared: Arc<Shared>, target_port: Option<u16>) -> Self {
        Self {
            shared,
            target_port,
            memo: Box::default(),
        }
    }

    /// The handles of `req`'s target: from the memo, or else from the
    /// layer-wide cache, and then kept if its slot has room.
    pub(crate) fn find<B>(&self, req: &Request<B>) -> Arc<TargetHandles> {
        let sources = Sources::of(self.shared.direction, self.target_port, req);
        let Some(ways) = self.memo.get(sources.slot()) else {
            return self.shared.target(sources);
        };
        for way in ways {
            match way.get() {
                Some(entry) if sources.matches(entry) => return entry.target.clone(),
                Some(_) => {}
                None => {
                    let target = self.shared.target(sources);
                    if !target.folded() {
                        // Another thread may have taken this way meanwhile;
                        // the target is then found in the cache next time.
                        let _ = way.set(sources.to_entry(target.clone()));
                    }
                    return target;
                }
            }
        }
        self.shared.target(sources)
    }

    /// How many targets the memo keeps.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.memo
            .iter()
            .flatten()
            .filter(|way| way.get().is_some())
            .count()
    }
}

/// Whether two policy decisions give the same labels' values: names by
/// address or bytes, kinds by address or bytes, and the Server's port.
#[inline]
fn same_policy(a: Option<&Authorized>, b: Option<&Authorized>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            same_str(&a.authz, &b.authz)
                && same_str(&a.route, &b.route)
                && same_str(&a.server, &b.server)
                && a.server_port == b.server_port
                && same_kind(a.authz_kind, b.authz_kind)
                && same_kind(a.server_kind, b.server_kind)
                && same_opt_kind(a.route_kind, b.route_kind)
        }
        (None, None) => true,
        _ => false,
    }
}

/// Whether two routes give the same labels' values (their names by
/// address or bytes) and classify by the same rules: the same
/// allocation, which every request of one built route shares, or equal
/// rules.
#[inline]
fn same_route(a: Option<&RouteId>, b: Option<&RouteId>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a.is_same(b) => true,
        (Some(a), Some(b)) => {
            same_str(a.as_str(), b.as_str())
                && match (a.classify(), b.classify()) {
                    (None, None) => true,
                    (Some(x), Some(y)) => std::ptr::eq(x, y) || equal_rules(x, y),
                    _ => false,
                }
        }
        (None, None) => true,
        _ => false,
    }
}

/// Whether two classifiers in other allocations have the same rules (a
/// route rebuilt by a reload). Out of line: comparing the rules' bit sets
/// takes more code than the rest of a lookup, which would then no longer
/// be inlined into each request's path.
#[cold]
#[inline(never)]
fn equal_rules(a: &Classify, b: &Classify) -> bool {
    a == b
}

/// Whether two TLS statuses give the same labels' values.
#[inline]
fn same_tls(a: &Tls, b: &Tls) -> bool {
    match (a, b) {
        (Tls::Mutual { peer: a }, Tls::Mutual { peer: b }) => same_str(a.as_str(), b.as_str()),
        (Tls::NoClientCert, Tls::NoClientCert) => true,
        (Tls::Plaintext(a), Tls::Plaintext(b)) => a == b,
        _ => false,
    }
}

/// A string's length and last byte, in one word.
#[inline]
fn fingerprint(s: &str) -> u64 {
    let last = s.as_bytes().last().copied().unwrap_or(0);
    ((s.len() as u64) << 8) | u64::from(last)
}

/// Fx's multiply-rotate step.
#[inline]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use mesh_core::{classify::Classify, labels::ResourceKind};
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;
    use crate::{HttpMetrics, MetricsConfig, http::target::ServerTls};

    fn targets(limit: usize) -> (Registry, Targets) {
        let mut registry = Registry::default();
        let limit = NonZeroUsize::new(limit).unwrap();
        let metrics = HttpMetrics::register_with(
            &mut registry,
            MetricsConfig::default().with_series_limit(limit),
        );
        let shared = Shared::new(
            metrics,
            Direction::Inbound,
            ServerTls::default(),
            Classify::default(),
        );
        (registry, Targets::new(Arc::new(shared), None))
    }

    /// A request as a new connection would carry it: every value a fresh
    /// allocation.
    fn request(peer: &str, route: &str, authz: &str) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "127.0.0.1:4143".parse().unwrap(),
            remote_addr: "127.0.0.1:50000".parse().unwrap(),
            tls: Tls::Mutual {
                peer: peer.parse().unwrap(),
            },
        });
        req.extensions_mut().insert(Authorized {
            server: Arc::from("srv"),
            server_kind: &ResourceKind::DEFAULT,
            server_port: None,
            route: Arc::from(route),
            route_kind: None,
            authz: Arc::from(authz),
            authz_kind: &ResourceKind::DEFAULT,
            audit: false,
        });
        req.extensions_mut().insert(RouteId::new(route));
        req
    }

    fn authz_of(req: &Request<()>) -> Arc<str> {
        req.extensions().get::<Authorized>().unwrap().authz.clone()
    }

    const WEB: &str = "spiffe://td/ns/emoji/sa/web";
    const TARGET: &str = r#"target_addr="127.0.0.1:4143",target_ip="127.0.0.1",target_port="4143""#;
    const SRV: &str = r#"srv_group="",srv_kind="default",srv_name="srv""#;

    #[test]
    fn values_that_differ_only_in_kind_or_port_find_their_own_targets() {
        let (_registry, targets) = targets(100);
        let plain = request(WEB, "list", "web");
        let with = |change: fn(&mut Authorized)| {
            let mut req = plain.clone();
            if let Some(a) = req.extensions_mut().get_mut::<Authorized>() {
                change(a);
            }
            req
        };
        let server = with(|a| {
            a.server_kind = &ResourceKind {
                group: "policy.linkerd.io",
                kind: "server",
            };
        });
        let port = with(|a| a.server_port = Some(8080));
        let authz = with(|a| {
            a.authz_kind = &ResourceKind {
                group: "policy.linkerd.io",
                kind: "serverauthorization",
            };
        });
        let route = with(|a| a.route_kind = Some(&ResourceKind::DEFAULT));
        let found: Vec<_> = [&plain, &server, &port, &authz, &route]
            .into_iter()
            .map(|req| targets.find(req))
            .collect();
        for (i, a) in found.iter().enumerate() {
            for b in &found[i + 1..] {
                assert!(!Arc::ptr_eq(a, b));
            }
        }
        assert!(Arc::ptr_eq(&targets.find(&server.clone()), &found[1]));
    }

    #[test]
    fn a_request_with_the_values_of_a_kept_one_finds_its_target() {
        let (_registry, targets) = targets(100);
        let first = request(WEB, "list", "web-only");
        let found = targets.find(&first);
        // The memo keeps the values the first request carried.
        assert_eq!(Arc::strong_count(&authz_of(&first)), 3);

        let same = first.clone();
        assert!(Arc::ptr_eq(&targets.find(&same), &found));
        drop(same);

        // Another connection: equal values, other allocations. It matches
        // the kept entry rather than replacing it.
        let other = request(WEB, "list", "web-only");
        assert!(Arc::ptr_eq(&targets.find(&other), &found));
        assert_eq!(Arc::strong_count(&authz_of(&first)), 3);
        assert_eq!(Arc::strong_count(&authz_of(&other)), 2);
        assert_eq!(targets.kept(), 1);
    }

    #[test]
    fn values_that_share_a_slot_but_differ_find_their_own_targets() {
        let (registry, targets) = targets(100);
        // The same lengths and last bytes: the same slot.
        let a = request(WEB, "list-a", "web-a");
        let b = request(WEB, "ping-a", "cli-a");
        let c = request("spiffe://td/ns/emoji/sa/veb", "list-a", "web-a");
        assert_eq!(
            Sources::of(Direction::Inbound, None, &a).slot(),
            Sources::of(Direction::Inbound, None, &b).slot()
        );
        assert_eq!(
            Sources::of(Direction::Inbound, None, &a).slot(),
            Sources::of(Direction::Inbound, None, &c).slot()
        );
        for req in [&a, &b, &a, &c, &c, &a] {
            targets.find(req).requests.inc();
        }
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let count = |route: &str, authz: &str, peer: &str| {
            format!(
                "request_total{{direction=\"inbound\",{TARGET},tls=\"true\",client_id=\"{peer}\",{SRV},route_name=\"{route}\",authz_group=\"\",authz_kind=\"default\",authz_name=\"{authz}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 3\n", count("list-a", "web-a", WEB))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1\n", count("ping-a", "cli-a", WEB))),
            "{text}"
        );
        let veb = "spiffe://td/ns/emoji/sa/veb";
        assert!(
            text.contains(&format!("{} 2\n", count("list-a", "web-a", veb))),
            "{text}"
        );
    }

    #[test]
    fn an_overflow_target_is_not_kept_so_that_every_fold_is_counted() {
        let (registry, targets) = targets(1);
        targets.find(&request(WEB, "first", "web"));
        let folded = request(WEB, "second", "web");
        for _ in 0..3 {
            targets.find(&folded).requests.inc();
        }
        assert_eq!(targets.kept(), 1);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "request_total{direction=\"inbound\",tls=\"true\",overflow=\"true\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("http_series_overflow_total{family=\"request_total\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn a_full_slot_leaves_further_targets_to_the_layer_wide_cache() {
        let (registry, targets) = targets(100);
        // Same lengths and last bytes: one slot for all.
        let requests: Vec<_> = ["a-x", "b-x", "c-x", "d-x", "e-x", "f-x"]
            .into_iter()
            .map(|route| request(WEB, route, "web"))
            .collect();
        let slot = |req| Sources::of(Direction::Inbound, None, req).slot();
        assert!(requests.iter().all(|req| slot(req) == slot(&requests[0])));
        for _ in 0..2 {
            for req in &requests {
                targets.find(req).requests.inc();
            }
        }
        assert_eq!(targets.kept(), WAYS);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for route in ["a-x", "f-x"] {
            let line = format!(
                "request_total{{direction=\"inbound\",{TARGET},tls=\"true\",client_id=\"{WEB}\",{SRV},route_name=\"{route}\",authz_group=\"\",authz_kind=\"default\",authz_name=\"web\"}} 2\n"
            );
            assert!(text.contains(&line), "{text}");
        }
    }
}
