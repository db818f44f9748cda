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

use std::{cmp::Ordering, fmt, sync::Arc};

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

/// A point in time, as `metadata.creationTimestamp` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    seconds: i64,
    nanos: u32,
}

/// Why a `creationTimestamp` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InvalidTimestamp(String);

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z",
            self.0
        )
    }
}

impl Timestamp {
    /// Reads an RFC 3339 time, as Kubernetes writes and reads
    /// `metadata.creationTimestamp`: `2024-05-01T12:00:00Z`, with
    /// optional fractions of a second and a `Z` or `±hh:mm` offset.
    pub(super) fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        parse_rfc3339(text).ok_or_else(|| InvalidTimestamp(text.to_owned()))
    }
}

fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let part = b.get(from..from + n)?;
        part.iter().try_fold(0_u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && matches!(b.get(10), Some(b'T' | b't'))) {
        return None;
    }
    if !(at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0_u32;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && at(i + 3, b':') => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset * 60;
    Some(Timestamp { seconds, nanos })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date, in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> (i64, u32) {
        let t = Timestamp::parse(text).unwrap();
        (t.seconds, t.nanos)
    }

    #[test]
    fn timestamps_read_as_kubernetes_writes_them() {
        assert_eq!(at("1970-01-01T00:00:00Z"), (0, 0));
        assert_eq!(at("2024-05-01T12:00:00Z"), (1_714_564_800, 0));
        assert_eq!(at("2000-02-29T23:59:59Z"), (951_868_799, 0));
        assert_eq!(at("2024-05-01T14:00:00+02:00"), (1_714_564_800, 0));
        assert_eq!(
            at("2024-05-01T11:30:00.25-00:30"),
            (1_714_564_800, 250_000_000)
        );
        assert_eq!(at("1969-12-31T23:59:59Z"), (-1, 0));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00Zjunk",
            "yesterday",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

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
