//! The order a service's route matches are tried in.
//!
//! Users write `HTTPRoute`s for the Gateway API, which does not try rules
//! in the order they are written: a catch-all `PathPrefix /` rule written
//! first would otherwise take every request from the rules after it. The
//! most specific match wins (mesh-core's
//! [`MatchPrecedence`]), across all
//! rules of all routes of the service; among equally specific matches,
//! the oldest route by `metadata.creationTimestamp`, then the first by
//! `{namespace}/{name}`, then the first rule of that route, then the
//! rule's first match.
//!
//! A `GRPCRoute`'s matches are ranked by the `GRPCRoute`'s own rules
//! ([`GrpcPrecedence`]), with the same ties, and never together with
//! `HTTPRoute` matches: the Gateway API forbids merging the two kinds, and
//! a service with `GRPCRoute`s has its `HTTPRoute`s set aside before they
//! would be ranked (see the [config](super) docs).
//!
//! ServiceProfile routes are Linkerd's, which tries them in the order they
//! are written: they come after every `HTTPRoute` match, in that order.

use std::{cmp::Ordering, sync::Arc};

use mesh_core::{
    classify::Classify,
    resource::{DocumentContext, GrpcRouteMatch, ResourceError, ResourceErrorKind, ResourceName},
    route::MatchPrecedence,
};

// `metadata.creationTimestamp`, read by mesh-core as the inbound policy
// reads it.
pub(super) use mesh_core::resource::Timestamp;

use super::{RouteHosts, RouteRetryPolicy};

/// One match of one route of a service: `routes[route].matches[index]` of
/// a [`ServiceRetryPolicy`](super::ServiceRetryPolicy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatchRef {
    /// The route, as an index into
    /// [`ServiceRetryPolicy::routes`](super::ServiceRetryPolicy::routes).
    pub route: usize,
    /// The match, as an index into the route's
    /// [`matches`](RouteRetryPolicy::matches).
    pub index: usize,
}

/// Where a route came from: what orders matches of equal precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A rule of an `HTTPRoute` or a `GRPCRoute`.
    Rule(RuleOrigin),
    /// A route added to the routes by hand: tried after every rule, in
    /// the order written.
    Written,
    /// A ServiceProfile route, tried as one [`Written`](Self::Written),
    /// with the rules its `responseClasses` classify its responses by,
    /// when it has any.
    Profile(Option<Classify>),
}

/// The route a rule belongs to, and which rule of it the rule is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RuleOrigin {
    /// The route's `metadata.creationTimestamp`, when it has one.
    pub(super) created: Option<Timestamp>,
    /// `{namespace}/{name}`; a route without a namespace is in the one it
    /// is applied to, which the reader does not know, and is written with
    /// an empty one.
    pub(super) route: Arc<str>,
    /// `{namespace}/{name}` of a route written without a namespace, in its
    /// client's namespace once a selection for one knows it
    /// ([`ServiceRetryPolicy::for_namespace`](super::ServiceRetryPolicy::for_namespace)):
    /// what ties rank it by in place of [`route`](Self::route), as a
    /// cluster would rank the route applied there. `None` before, and for
    /// a route written with a namespace.
    pub(super) applied: Option<Arc<str>>,
    /// The route's position among the routes read, for two that share a
    /// name (an `HTTPRoute` and a `GRPCRoute` may).
    pub(super) position: usize,
    /// The rule's index in the route.
    pub(super) rule: usize,
    /// Whether the rule is the one the Gateway API gives an `HTTPRoute`
    /// written without `rules`, which no document holds.
    pub(super) defaulted: bool,
    /// The kind of the route, which decides how the rule's matches rank.
    pub(super) kind: RuleKind,
    /// Where the route was read, to name it if it is set aside.
    pub(super) source: Arc<RouteSource>,
    /// The route's `hostnames`: which requests it may take, and how its
    /// matches rank against other routes' for a request's host.
    pub(super) hosts: RouteHosts,
    /// The route's namespace when it is not its parent Service's: a
    /// consumer route, which applies only to clients in that namespace.
    /// `None` for a producer route (in the Service's namespace), which
    /// applies to every client, and for a route that names no namespace,
    /// which is in the client's own.
    pub(super) consumer: Option<Arc<str>>,
}

/// The kind of route a rule is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RuleKind {
    /// An `HTTPRoute`'s: its matches rank by [`MatchPrecedence`].
    Http,
    /// A `GRPCRoute`'s, with the rank of each of its matches, by index.
    /// The `HTTPRoute` matches the reader makes of them no longer say
    /// which names a match gave (a service alone is a path prefix, a
    /// method alone an expression), so the ranks are taken from the
    /// `GRPCRoute` as written. A match added to the rule by hand, past
    /// the end, ranks as one that names nothing.
    Grpc(Arc<[GrpcPrecedence]>),
}

/// The document a route was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RouteSource {
    /// The text's name (a file).
    pub(super) origin: String,
    /// The document, from 1.
    pub(super) document: usize,
    /// The route's `metadata.namespace`, when it names one: with the
    /// name, what a warning about the route calls it.
    pub(super) namespace: Option<String>,
    /// The route's `metadata.name`.
    pub(super) name: String,
    /// The route's API group, which with its kind, namespace and name
    /// names one object in a cluster.
    pub(super) group: String,
    /// The `parentRefs` entry that attaches it to the service.
    pub(super) parent: usize,
    /// The entry's `port`, for an `EgressNetwork` parent: the destination
    /// port the route takes traffic to; `None` for every port, and for a
    /// Service parent, whose routes are not divided by port here.
    pub(super) port: Option<u16>,
}

impl RouteSource {
    /// The route as messages about it name it: `Kind namespace/name`, or
    /// `Kind name` for a route written without a namespace, whose
    /// [`RuleOrigin::route`] key is `/name`; without a kind, the object
    /// alone (`namespace/name`).
    pub(super) fn named<'a>(&'a self, kind: Option<&'a str>) -> ResourceName<'a> {
        ResourceName::new(kind, self.namespace.as_deref(), Some(&self.name))
    }
}

/// How specific a `GRPCRoute` match is, least specific first: the
/// Gateway API's `GRPCRouteRule` precedence, "the largest number of
/// characters in a matching service, then in a matching method, then
/// header matches", as Linkerd's proxy ranks them.
///
/// Two matches that both fit a call and both name its service name the
/// same one, so counting characters comes down to whether a match names
/// the service at all, and likewise the method. A name given by a
/// regular expression (which Linkerd's outbound policy would compare as
/// an exact name, see the [config](super) docs) matches the whole of the
/// call's name, and counts as given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct GrpcPrecedence {
    service: bool,
    method: bool,
    headers: usize,
}

impl GrpcPrecedence {
    /// The rank of `m`.
    pub(super) fn of(m: &GrpcRouteMatch) -> Self {
        let method = m.method.as_ref();
        Self {
            service: method.is_some_and(|m| m.service.is_some()),
            method: method.is_some_and(|m| m.method.is_some()),
            headers: m.headers.len(),
        }
    }
}

impl RuleOrigin {
    /// The Gateway API's ties: the oldest route first, a route with a
    /// timestamp before one without (which, applied now, would be the
    /// newest); then by `{namespace}/{name}`; then the route read first;
    /// then the first rule.
    fn tie(&self, other: &Self) -> Ordering {
        Timestamp::older_first(self.created, other.created)
            .then_with(|| self.ranked_name().cmp(other.ranked_name()))
            .then(self.position.cmp(&other.position))
            .then(self.rule.cmp(&other.rule))
    }

    /// The `{namespace}/{name}` ties rank the route by: in the namespace
    /// it is applied to, when it was written without one and that is
    /// known ([`applied`](Self::applied)).
    fn ranked_name(&self) -> &str {
        self.applied.as_deref().unwrap_or(&self.route)
    }

    /// Places a route written without a namespace in `namespace`, its
    /// client's, for ties to rank it there ([`applied`](Self::applied)).
    /// Returns whether that changed how it ranks.
    pub(super) fn apply_in(&mut self, namespace: &str) -> bool {
        apply_in(&self.route, &mut self.applied, namespace)
    }

    /// Whether the rule is a `GRPCRoute`'s.
    pub(super) fn is_grpc(&self) -> bool {
        matches!(self.kind, RuleKind::Grpc(_))
    }
}

/// Sets `applied` to `route`, a `{namespace}/{name}` key written without a
/// namespace (`/{name}`), placed in `namespace`: the name ties rank a route
/// by once its client's namespace is known, as a cluster would rank the
/// route applied there. Returns whether that changed `applied`; a route
/// written with a namespace keeps `None`.
pub(super) fn apply_in(route: &str, applied: &mut Option<Arc<str>>, namespace: &str) -> bool {
    let Some(name) = route.strip_prefix('/') else {
        return false;
    };
    let placed = format!("{namespace}/{name}");
    if applied.as_deref() == Some(&*placed) {
        return false;
    }
    *applied = Some(placed.into());
    true
}

/// A route's `metadata.creationTimestamp`, `written` as the text has it,
/// read for ties ([`Timestamp::older_first`]); refused at that field of
/// `context` when it is no RFC 3339 time.
pub(super) fn created(
    written: Option<&str>,
    context: &DocumentContext<'_>,
) -> Result<Option<Timestamp>, ResourceError> {
    written.map(Timestamp::parse).transpose().map_err(|e| {
        context.error(
            ResourceErrorKind::InvalidValue,
            "metadata.creationTimestamp",
            e.to_string(),
        )
    })
}

/// Every match of `routes`, in the order they are tried: the rules'
/// (routes whose `origins` entry is a rule) by precedence, then the
/// others' in the order written. A route past the end of `origins` is
/// one added by hand.
///
/// `GRPCRoute` rules rank among themselves by [`GrpcPrecedence`] and
/// `HTTPRoute` rules among themselves by [`MatchPrecedence`]; when a
/// service has both (which the reader does not leave), only the
/// `GRPCRoute` rules are tried, as Linkerd would serve the service.
pub(super) fn match_order(routes: &[RouteRetryPolicy], origins: &[Origin]) -> Vec<MatchRef> {
    let mut http = Vec::new();
    let mut grpc = Vec::new();
    let mut written = Vec::new();
    for (route, policy) in routes.iter().enumerate() {
        for (index, matcher) in policy.matches.iter().enumerate() {
            let at = MatchRef { route, index };
            match origins.get(route) {
                Some(Origin::Rule(origin)) => match &origin.kind {
                    RuleKind::Http => http.push((matcher.precedence(), origin, at)),
                    RuleKind::Grpc(ranks) => {
                        let rank = ranks.get(index).copied().unwrap_or_default();
                        grpc.push((rank, origin, at));
                    }
                },
                Some(Origin::Written | Origin::Profile(_)) | None => written.push(at),
            }
        }
    }
    let rules = if grpc.is_empty() {
        ranked(http)
    } else {
        ranked(grpc)
    };
    rules.into_iter().chain(written).collect()
}

/// `rules` most specific first, ties to the older route, then the first
/// by name, then the first rule, then the rule's first match.
fn ranked<P: Ord>(mut rules: Vec<(P, &RuleOrigin, MatchRef)>) -> Vec<MatchRef> {
    rules.sort_by(|(pa, oa, a), (pb, ob, b)| {
        pb.cmp(pa)
            .then_with(|| oa.tie(ob))
            .then(a.index.cmp(&b.index))
    });
    rules.into_iter().map(|(_, _, at)| at).collect()
}

/// A service's [`match_order`], worked out once when the service's
/// routes are read or merged, with what it depends on, so that a lookup
/// can tell whether it still holds. The routes are public, and may be
/// changed by hand after; a lookup then works the order out afresh, as
/// before.
#[derive(Clone, Debug, Default)]
pub(super) struct Ranked {
    /// The order.
    order: Vec<MatchRef>,
    /// How many matches each route had.
    counts: Vec<usize>,
    /// The precedence of each match of each `HTTPRoute` rule, in route
    /// order: all the order depends on besides the counts and the
    /// origins, which only reading and merging change, and which rank
    /// again.
    precedences: Vec<MatchPrecedence>,
    /// Whether any rule's route names hostnames, so that a lookup must
    /// rank the request's host before the order.
    hosted: bool,
}

impl Ranked {
    /// The order of `routes`, kept with what it depends on.
    pub(super) fn new(routes: &[RouteRetryPolicy], origins: &[Origin]) -> Self {
        let precedences = routes
            .iter()
            .zip(origins)
            .filter(|(_, origin)| is_http(origin))
            .flat_map(|(route, _)| route.matches.iter().map(|m| m.precedence()))
            .collect();
        Self {
            order: match_order(routes, origins),
            counts: routes.iter().map(|r| r.matches.len()).collect(),
            precedences,
            hosted: hosted(origins),
        }
    }

    /// Whether any rule's route names hostnames.
    pub(super) fn hosted(&self) -> bool {
        self.hosted
    }

    /// The order, if `routes` are as they were ranked: as many, with as
    /// many matches each, and each `HTTPRoute` rule's matches as
    /// specific. (A match replaced by one just as specific keeps its
    /// place, as it would ranked again.)
    pub(super) fn order(
        &self,
        routes: &[RouteRetryPolicy],
        origins: &[Origin],
    ) -> Option<&[MatchRef]> {
        if routes.len() != self.counts.len() {
            return None;
        }
        let mut precedences = self.precedences.iter();
        let same = routes
            .iter()
            .zip(&self.counts)
            .enumerate()
            .all(|(i, (route, &count))| {
                route.matches.len() == count
                    && (!origins.get(i).is_some_and(is_http)
                        || route
                            .matches
                            .iter()
                            .all(|m| precedences.next() == Some(&m.precedence())))
            });
        same.then_some(&self.order[..])
    }
}

/// Whether any of `origins` is a rule of a route that names hostnames.
pub(super) fn hosted(origins: &[Origin]) -> bool {
    origins
        .iter()
        .any(|o| matches!(o, Origin::Rule(rule) if !rule.hosts.is_any()))
}

fn is_http(origin: &Origin) -> bool {
    matches!(
        origin,
        Origin::Rule(RuleOrigin {
            kind: RuleKind::Http,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn older_routes_come_first_and_those_without_a_time_last() {
        let origin = |created: Option<&str>, route: &str| RuleOrigin {
            created: created.map(|t| Timestamp::parse(t).unwrap()),
            route: route.into(),
            applied: None,
            position: 0,
            rule: 0,
            defaulted: false,
            kind: RuleKind::Http,
            source: Arc::new(RouteSource {
                origin: String::new(),
                document: 1,
                namespace: None,
                name: route.into(),
                group: String::new(),
                parent: 0,
                port: None,
            }),
            hosts: RouteHosts::default(),
            consumer: None,
        };
        let mut origins = [
            origin(None, "a/a"),
            origin(Some("2024-01-02T00:00:00Z"), "a/a"),
            origin(Some("2024-01-01T00:00:00Z"), "z/z"),
            origin(None, "a/0"),
        ];
        origins.sort_by(RuleOrigin::tie);
        let order: Vec<&str> = origins.iter().map(|o| &*o.route).collect();
        assert_eq!(order, ["z/z", "a/a", "a/0", "a/a"]);
        assert!(origins[3].created.is_none());
    }
}
