//! The `stat`, `routes`, `top`, `edges` and `authz` views: golden signals
//! from two scrapes.
//!
//! `linkerd viz stat` answers "is this workload healthy?" with a handful of
//! numbers computed by Prometheus over a window: success rate (successes
//! over all `response_total`), requests per second, latency percentiles by
//! `histogram_quantile` over `response_latency_ms_bucket`, and the share of
//! traffic on mutual TLS. These views compute the same numbers without a
//! Prometheus: they scrape each admin server's `/metrics` twice, a window
//! apart, [parse](Scrape::parse) the text, take the increase of every
//! counter ([`Delta`]) and sum it per workload or per route ([`Totals`]),
//! from which every row takes the same figures ([`Golden`]). Quantiles use
//! Prometheus' own interpolation ([`histogram_quantile`]), so the figures
//! match a dashboard's.
//!
//! - [`stat::run`]: one row per workload (`NAME=ADDR` targets with the same
//!   name are replicas of one workload), with MESHED, SUCCESS, RPS,
//!   LATENCY_P50, LATENCY_P95, LATENCY_P99 and TLS, from inbound traffic.
//! - [`routes::run`]: the same per inbound route, or with `to` per outbound
//!   route to one service, with the retry ratio and the success rate of
//!   attempts (actual) beside that of requests (effective).
//! - [`top::run`]: a live view that redraws both every interval.
//! - [`edges::run`]: who calls whom, with the identities each end proved
//!   and whether the traffic was on mutual TLS, like `linkerd viz edges`.
//! - [`authz::run`]: the same figures per Server, route and authorization
//!   that let requests in, and the rate of those denied, like `linkerd viz
//!   authz`; for an opaque Server, the connections each authorization let
//!   in and those refused.
//!
//! Each renders as a table or, for scripts, as JSON ([`Format`]). A figure
//! that cannot be computed (no traffic, no replica of a workload scraped,
//! or counts past the range of `f64`) shows as `-` in a table and as
//! `null` in JSON, never as `NaN` or `inf` ([`Golden`]); a sample no
//! counter can have (negative, NaN, infinite) counts for nothing
//! ([`Delta`]). A latency histogram series with more
//! buckets than a histogram has ([`delta::MAX_BOUNDS`]), or whose bounds
//! would take its source past that many, is left out of the latencies of
//! its row alone, so that one broken replica cannot blank or skew the
//! latency of the replicas summed with it; the row says so
//! ([`Golden::latency_series_dropped`], a `*` and a note under a table).
//!
//! A target that could not be scraped makes its workload `0/1` under
//! MESHED, or its routes and edges missing; that alone does not tell a
//! wrong port from a sidecar that is restarting, so a table ends with a
//! line naming each such target and why (`could not scrape vote: cannot
//! connect to 127.0.0.1:4191: Connection refused`), and a `top` frame
//! lists them (`unreachable`). JSON keeps to the rows, so each view's
//! `view` function gives those targets beside its text
//! ([`View::unreachable`]) for the caller to report apart. When not one
//! target answers, the view fails with that error instead, at once rather
//! than after the window.

pub mod authz;
pub mod delta;
pub mod edges;
mod golden;
mod group;
mod identity;
pub mod parse;
mod quantile;
mod render;
pub mod routes;
pub mod scrape;
mod series;
pub mod stat;
mod targets;
pub mod top;

use std::{fmt, io, str::FromStr, time::Duration};

use serde::Serialize;
use tokio::time::Instant;

pub use self::{
    delta::{Delta, Totals},
    golden::Golden,
    parse::{ParseError, ParseErrorKind, Sample, Scrape},
    quantile::histogram_quantile,
    scrape::{ScrapeError, ScrapeErrorKind, scrape},
    targets::{InvalidTarget, InvalidTargetKind, Target},
};

/// How a view is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, like `linkerd viz stat`.
    #[default]
    Table,
    /// JSON, for scripts (`-o json`).
    Json,
}

impl FromStr for Format {
    type Err = InvalidFormat;

    /// `table` or `json`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            _ => Err(InvalidFormat),
        }
    }
}

/// A format other than `table` or `json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidFormat;

impl fmt::Display for InvalidFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected table or json")
    }
}

impl std::error::Error for InvalidFormat {}

/// A view that could not be produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// No target was given.
    NoTargets,
    /// A view that redraws was asked to redraw every zero seconds.
    ZeroInterval,
    /// Not one target could be scraped: each one, and why.
    Unreachable(Vec<Unreachable>),
    /// Writing the view failed.
    Write(io::Error),
    /// Encoding the view as JSON failed.
    Json(serde_json::Error),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoTargets => "no admin address given",
            Self::ZeroInterval => "the interval between frames must be above zero",
            Self::Unreachable(targets) => {
                f.write_str("no admin server could be scraped")?;
                for (i, target) in targets.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{target}")?;
                }
                return Ok(());
            }
            Self::Write(_) => "cannot write the view",
            Self::Json(_) => "cannot encode the view as json",
        })
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Each target's causes are in its own line of the message.
            Self::NoTargets | Self::ZeroInterval | Self::Unreachable(_) => None,
            Self::Write(e) => Some(e),
            Self::Json(e) => Some(e),
        }
    }
}

/// Scrapes every target at once: the scrapes, `None` for a target that
/// failed, and the first failure.
pub async fn scrape_all(targets: &[Target]) -> (Vec<Option<Scrape>>, Option<ScrapeError>) {
    let mut first_error = None;
    let scrapes = scrape_each(targets)
        .await
        .into_iter()
        .map(|r| r.map_err(|e| first_error.get_or_insert(e)).ok())
        .collect();
    (scrapes, first_error)
}

/// Scrapes every target at once: each one's scrape, or why it failed.
pub(crate) async fn scrape_each(targets: &[Target]) -> Vec<Result<Scrape, ScrapeError>> {
    futures_util::future::join_all(targets.iter().map(scrape)).await
}

/// Scrapes `targets`, waits `window`, scrapes again: the delta of each
/// target, `None` for one that failed either time.
///
/// # Errors
///
/// When `targets` is empty or none could be scraped both times; when none
/// answered the first scrape, at once rather than after the window.
pub async fn measure(
    targets: &[Target],
    window: Duration,
) -> Result<Vec<Option<Delta>>, QueryError> {
    Ok(measure_each(targets, window).await?.deltas)
}

/// The deltas of a window, and why each target that has none failed.
pub(crate) struct Measured {
    /// The delta of each target, `None` for one that failed either time.
    pub(crate) deltas: Vec<Option<Delta>>,
    /// Why each target without a delta failed: at the first scrape, else
    /// at the second.
    pub(crate) failures: Vec<Option<ScrapeError>>,
}

/// [`measure`], with why each target that has no delta failed.
pub(crate) async fn measure_each(
    targets: &[Target],
    window: Duration,
) -> Result<Measured, QueryError> {
    if targets.is_empty() {
        return Err(QueryError::NoTargets);
    }
    let start = Instant::now();
    let (before, mut failures) = split(scrape_each(targets).await);
    // A target that missed the first scrape has no delta, whatever the
    // second brings: with none scraped, the window would only delay the
    // error.
    if before.iter().all(Option::is_none) && failures.iter().any(Option::is_some) {
        return Err(QueryError::Unreachable(unreachable(targets, &failures)));
    }
    tokio::time::sleep(window).await;
    let elapsed = start.elapsed();
    let (after, second) = split(scrape_each(targets).await);
    let deltas = deltas(&before, &after, elapsed);
    for (failure, second) in failures.iter_mut().zip(second) {
        if failure.is_none() {
            *failure = second;
        }
    }
    if deltas.iter().all(Option::is_none) && failures.iter().any(Option::is_some) {
        return Err(QueryError::Unreachable(unreachable(targets, &failures)));
    }
    Ok(Measured { deltas, failures })
}

/// A view's text, and the targets it could not scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The view: a table, ending with a line for each target that could
    /// not be scraped, or JSON, which keeps to the rows scripts read.
    pub text: String,
    /// Each target that could not be scraped, and why, in the order of
    /// the targets: a caller of JSON reports them apart (on standard
    /// error, say) so that the JSON stays what scripts parse.
    pub unreachable: Vec<Unreachable>,
}

/// A target that could not be scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The target's name (`web` of `web=127.0.0.1:4191`).
    pub name: String,
    /// Its admin address.
    pub addr: String,
    /// Why, with the causes of the failure, each after a `: `.
    pub reason: String,
}

impl fmt::Display for Unreachable {
    /// `scraping NAME (ADDR): REASON`, its control characters escaped,
    /// as a table's are: the reason may quote what the admin server sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::printable::Printable;
        write!(
            f,
            "scraping {} ({}): {}",
            Printable::new(&self.name),
            Printable::new(&self.addr),
            Printable::new(&self.reason)
        )
    }
}

/// `text`, a view of `measured`, and as a table the lines that name each
/// target that could not be scraped, and why. JSON keeps to the rows
/// scripts read, where `meshed` counts the replicas that answered; the
/// failures are beside it.
fn with_failures(text: String, targets: &[Target], measured: &Measured, format: Format) -> View {
    let text = match format {
        Format::Table => text + &render::unreachable_note(targets, &measured.failures),
        Format::Json => text,
    };
    let unreachable = unreachable(targets, &measured.failures);
    View { text, unreachable }
}

/// Each of `targets` that failed, and why.
fn unreachable(targets: &[Target], failures: &[Option<ScrapeError>]) -> Vec<Unreachable> {
    targets
        .iter()
        .zip(failures)
        .filter_map(|(target, failure)| {
            Some(Unreachable {
                name: target.name.clone(),
                addr: target.addr.clone(),
                reason: render::causes(failure.as_ref()?),
            })
        })
        .collect()
}

/// Scrapes and failures, each `None` where the other is.
fn split(
    results: Vec<Result<Scrape, ScrapeError>>,
) -> (Vec<Option<Scrape>>, Vec<Option<ScrapeError>>) {
    results
        .into_iter()
        .map(|r| match r {
            Ok(scrape) => (Some(scrape), None),
            Err(e) => (None, Some(e)),
        })
        .unzip()
}

/// Pairs two rounds of scrapes, `elapsed` apart, into deltas.
pub fn deltas(
    before: &[Option<Scrape>],
    after: &[Option<Scrape>],
    elapsed: Duration,
) -> Vec<Option<Delta>> {
    before
        .iter()
        .zip(after)
        .map(|pair| match pair {
            (Some(b), Some(a)) => Some(Delta::between(b, a, elapsed)),
            _ => None,
        })
        .collect()
}

/// Encodes `value` as pretty JSON with a final newline, its DEL and C1
/// controls escaped as JSON escapes C0: a view goes to a terminal, and
/// its names come from scrapes.
fn to_json(value: &impl Serialize) -> Result<String, QueryError> {
    let s = serde_json::to_string_pretty(value).map_err(QueryError::Json)?;
    let mut s = crate::printable::escape_json_string(s);
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `127.0.0.1:<port>` where nothing listens, the port drawn below
    /// Linux's ephemeral range (32768–60999): a port bound to 0 and
    /// closed could be taken again by another test's listener meanwhile.
    fn refused_addr() -> String {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new();
        let port = (0_u64..)
            .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
            .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            .unwrap();
        format!("127.0.0.1:{port}")
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_to_the_first_scrape_fails_at_once_naming_the_address() {
        // A port nothing listens on: bound, then closed. With not one
        // target scraped, no delta can come of the window, so waiting it
        // out (a minute, an hour) only delays the error.
        let addr = refused_addr();
        let targets = Target::parse_list(&format!("web={addr}")).unwrap();
        let window = Duration::from_secs(3600);
        let start = Instant::now();
        let error = measure(&targets, window).await.unwrap_err();
        assert!(start.elapsed() < window, "{:?}", start.elapsed());
        let QueryError::Unreachable(failed) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!((&*failed[0].name, &*failed[0].addr), ("web", &*addr));
        assert!(error.to_string().contains(&addr), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn when_none_answers_each_target_is_named_with_its_reason() {
        // Two workloads down: the error names both, by name and address,
        // not only the first address tried.
        let (web, emoji) = (refused_addr(), refused_addr());
        let targets = Target::parse_list(&format!("web={web},emoji={emoji}")).unwrap();
        let error = measure(&targets, Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        for expected in [
            format!("scraping web ({web}): "),
            format!("scraping emoji ({emoji}): "),
        ] {
            assert!(error.contains(&expected), "{expected} not in {error}");
        }
        assert!(
            error.starts_with("no admin server could be scraped: "),
            "{error}"
        );
    }
}
