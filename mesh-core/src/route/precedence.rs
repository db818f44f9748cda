//! How specific a route match is, for the Gateway API's precedence.
//!
//! Several rules of the routes attached to one parent can match the same
//! request; the Gateway API does not pick the rule written first but the
//! most specific match (`HTTPRouteRule.matches` in its spec). Both sides
//! of the mesh order their matches by it, the inbound policy and the
//! outbound routes, so the key lives here, next to [`RouteMatch`].

use super::{PathMatch, RouteMatch};

/// How specific a [`RouteMatch`] is: greater wins. Compare two with
/// [`Ord`]; sort a table most specific first with
/// `sort_by(|a, b| b.precedence().cmp(&a.precedence()))`.
///
/// The order is the Gateway API's, field by field, with Linkerd's choice
/// for the case the spec leaves to implementations:
///
/// 1. the path kind: an `Exact` path, then a `RegularExpression` (the spec
///    calls its rank implementation specific), then a `PathPrefix`.
///    linkerd2-proxy ranks a path match by the length of the path it
///    matched: a regular expression matches the whole path, so it beats
///    every prefix and ties an exact path; here the exact path, the one
///    the spec ranks first, wins that tie;
/// 2. the longer path (an exact path, or a prefix without its trailing
///    `/`). Two regular expressions tie here, as in linkerd2-proxy: each
///    matches the whole path of the request it matches, so the length it
///    matched is the same, and the length of a pattern says nothing of how
///    specific it is (`/a/.*` is shorter than `/[a-z]+/.*` yet narrower);
/// 3. a method over none;
/// 4. more header matches;
/// 5. more query parameter matches.
///
/// A match without a path is the Gateway API's default, the prefix `/`,
/// and ranks with a written `/` prefix. Ties beyond these (the route's
/// age and name, the rule's position) are the caller's: only it knows
/// where the match came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MatchPrecedence {
    path_kind: PathKind,
    path_len: usize,
    method: bool,
    headers: usize,
    query_params: usize,
}

/// Path kinds, least specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum PathKind {
    Prefix,
    Regex,
    Exact,
}

impl RouteMatch {
    /// How specific this match is, for ordering it among others: see
    /// [`MatchPrecedence`].
    pub fn precedence(&self) -> MatchPrecedence {
        let (path_kind, path_len) = match self.path() {
            Some(PathMatch::Exact(p)) => (PathKind::Exact, p.len()),
            Some(PathMatch::Regex(_)) => (PathKind::Regex, 0),
            Some(PathMatch::Prefix(p)) => (PathKind::Prefix, p.trim_end_matches('/').len()),
            None => (PathKind::Prefix, 0),
        };
        MatchPrecedence {
            path_kind,
            path_len,
            method: self.method().is_some(),
            headers: self.headers().len(),
            query_params: self.query_params().len(),
        }
    }
}
