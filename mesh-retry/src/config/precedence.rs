//! The order a service's route matches are tried in.
//!
//! Users write `HTTPRoute`s for the Gateway API, which does not try rules
//! in the order they are written: a catch-all `PathPrefix /` rule written
//! first would otherwise take every request from the rules after it. The
//! most specific match wins (mesh-core's
//! [`MatchPrecedence`](mesh_core::route::MatchPrecedence)), across all
//! rules of all routes of the service; among equally specific matches,
//! the oldest route by `metadata.creationTimestamp`, then the first by
//! `{namespace}/{name}`, then the first rule of that route, then the
//! rule's first match.
//!
//! ServiceProfile routes are Linkerd's, which tries them in the order they
//! are written: they come after every `HTTPRoute` match, in that order.

use std::{cmp::Ordering, sync::Arc};

// `metadata.creationTimestamp`, read by mesh-core as the inbound policy
// reads it.
pub(super) use mesh_core::resource::Timestamp;

use super::RouteRetryPolicy;

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
    /// A rule of an `HTTPRoute` (or of a `GRPCRoute`, read as one).
    Rule(RuleOrigin),
    /// A ServiceProfile route, or one added to the routes by hand: tried
    /// after every rule, in the order written.
    Written,
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
    /// The route's position among the routes read, for two that share a
    /// name (an `HTTPRoute` and a `GRPCRoute` may).
    pub(super) position: usize,
    /// The rule's index in the route.
    pub(super) rule: usize,
}

impl RuleOrigin {
    /// The Gateway API's ties: the oldest route first, a route with a
    /// timestamp before one without (which, applied now, would be the
    /// newest); then by `{namespace}/{name}`; then the route read first;
    /// then the first rule.
    fn tie(&self, other: &Self) -> Ordering {
        let created = match (self.created, other.created) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        created
            .then_with(|| self.route.cmp(&other.route))
            .then(self.position.cmp(&other.position))
            .then(self.rule.cmp(&other.rule))
    }
}

/// Every match of `routes`, in the order they are tried: the rules'
/// (routes whose `origins` entry is a rule) by precedence, then the
/// others' in the order written. A route past the end of `origins` is
/// one added by hand.
pub(super) fn match_order(routes: &[RouteRetryPolicy], origins: &[Origin]) -> Vec<MatchRef> {
    let mut rules = Vec::new();
    let mut written = Vec::new();
    for (route, policy) in routes.iter().enumerate() {
        for (index, matcher) in policy.matches.iter().enumerate() {
            let at = MatchRef { route, index };
            match origins.get(route) {
                Some(Origin::Rule(origin)) => rules.push((matcher.precedence(), origin, at)),
                Some(Origin::Written) | None => written.push(at),
            }
        }
    }
    rules.sort_by(|(pa, oa, a), (pb, ob, b)| {
        pb.cmp(pa)
            .then_with(|| oa.tie(ob))
            .then(a.index.cmp(&b.index))
    });
    rules
        .into_iter()
        .map(|(_, _, at)| at)
        .chain(written)
        .collect()
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
            position: 0,
            rule: 0,
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
