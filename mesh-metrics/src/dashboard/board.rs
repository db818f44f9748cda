//! What the dashboard knows: the recent rounds of scrapes, the history, and
//! the view they make. No I/O and no clock: the poller feeds it rounds and
//! the times they ended, so tests feed it known metric texts.

use std::{collections::VecDeque, fmt, mem, time::Duration};

use serde::Serialize;

use super::{
    DashboardConfig,
    history::{History, Series},
    summary::{Edge, RouteSummary, Summary, WorkloadSummary},
};
use crate::query::{Delta, Sample, Scrape, Target};

/// The rounds of scrapes, the history, and the latest summaries.
#[derive(Debug)]
pub struct Board {
    sources: Vec<Target>,
    interval: Duration,
    window: Duration,
    /// The rounds that still matter for the window, oldest first.
    rounds: VecDeque<Round>,
    /// The most rounds a window spans, a bound on `rounds` even if the
    /// clock stood still.
    max_rounds: usize,
    /// The most bytes of one source's scrapes kept for the window, its
    /// latest aside.
    source_bytes: usize,
    /// Rounds observed so far.
    observed: u64,
    /// Each source's last failure, `None` when its last scrape succeeded.
    errors: Vec<Option<String>>,
    history: History,
    current: Summary,
    /// The longest window the current figures cover.
    covered: Duration,
}

#[derive(Debug)]
struct Round {
    at: Duration,
    /// One per source; `None` where its scrape failed, or was let go to
    /// keep within the source's budget.
    scrapes: Vec<Option<Scrape>>,
    /// What each scrape holds, by [`scrape_bytes`].
    bytes: Vec<usize>,
    /// When the process behind each scrape started
    /// (`process_start_time_seconds`), where it says.
    started: Vec<Option<f64>>,
}

impl Board {
    /// An empty board for `config`.
    pub fn new(config: &DashboardConfig) -> Self {
        let window = config.window.max(config.interval);
        let per_window = window.as_nanos() / config.interval.as_nanos().max(1);
        Self {
            sources: config.sources.clone(),
            interval: config.interval,
            window,
            rounds: VecDeque::new(),
            max_rounds: usize::try_from(per_window)
                .unwrap_or(usize::MAX)
                .saturating_add(2),
            source_bytes: config.source_bytes,
            observed: 0,
            errors: vec![None; config.sources.len()],
            history: History::new(config.history),
            current: Summary::default(),
            covered: Duration::ZERO,
        }
    }

    /// Takes in one round of scrapes, one result per source in the order
    /// the configuration names them, that ended `at` (from the start of
    /// polling). The history gains the summary of the interval since the
    /// previous round; the current figures cover the window.
    /// A failed scrape marks its source down, with the failure's text.
    pub fn observe<E: fmt::Display>(&mut self, at: Duration, results: Vec<Result<Scrape, E>>) {
        let mut scrapes = Vec::with_capacity(results.len());
        for (i, result) in results.into_iter().enumerate() {
            let (scrape, error) = match result {
                Ok(scrape) => (Some(scrape), None),
                Err(e) => (None, Some(e.to_string())),
            };
            scrapes.push(scrape);
            if let Some(slot) = self.errors.get_mut(i) {
                *slot = error;
            }
        }
        if let Some(last) = self.rounds.back() {
            let deltas = pair(&last.scrapes, &scrapes, |_| at.saturating_sub(last.at));
            self.history
                .push(at, Summary::from_deltas(&self.sources, &deltas));
        }
        // Rounds start a window only while they are about a window old;
        // half an interval of slack absorbs the jitter of the ticks. A
        // window as long as a `Duration` goes reaches back to the first
        // round, not past the end of the type.
        let reach = self.window.saturating_add(self.interval / 2);
        while self.rounds.len() >= self.max_rounds
            || self
                .rounds
                .front()
                .is_some_and(|oldest| at.saturating_sub(oldest.at) > reach)
        {
            self.rounds.pop_front();
        }
        // Each source's window starts at the oldest round that has it,
        // of the process it has now.
        let started: Vec<Option<f64>> = scrapes
            .iter()
            .map(|s| s.as_ref().and_then(process_start))
            .collect();
        let deltas = pair_oldest(&self.sources, &self.rounds, &scrapes, &started, at);
        self.current = Summary::from_deltas(&self.sources, &deltas);
        self.covered = deltas
            .iter()
            .flatten()
            .map(Delta::elapsed)
            .max()
            .unwrap_or(Duration::ZERO);
        let bytes = scrapes
            .iter()
            .map(|s| s.as_ref().map_or(0, scrape_bytes))
            .collect();
        self.rounds.push_back(Round {
            at,
            scrapes,
            bytes,
            started,
        });
        self.keep_within_budget();
        self.observed += 1;
    }

    /// Lets go of each source's oldest scrapes until those it has left,
    /// its latest aside, hold at most its budget: its window then starts
    /// at the oldest it kept. The latest stays, as the next round's
    /// interval starts at it. The oldest rounds left with no scrape at all
    /// go too: no window can start at them, and with a window long enough
    /// that age never lets them go, they would pile up for as long as
    /// the dashboard runs.
    fn keep_within_budget(&mut self) {
        let Some((latest, older)) = self.rounds.make_contiguous().split_last_mut() else {
            return;
        };
        for source in 0..latest.scrapes.len() {
            let mut held: usize = older.iter().filter_map(|r| r.bytes.get(source)).sum();
            for round in older.iter_mut() {
                if held <= self.source_bytes {
                    break;
                }
                if let (Some(scrape), Some(bytes)) =
                    (round.scrapes.get_mut(source), round.bytes.get_mut(source))
                {
                    *scrape = None;
                    held -= mem::take(bytes);
                }
            }
        }
        while self.rounds.len() > 1
            && self
                .rounds
                .front()
                .is_some_and(|r| r.scrapes.iter().all(Option::is_none))
        {
            self.rounds.pop_front();
        }
    }

    /// How many scrapes of `source` are kept for the window.
    #[cfg(test)]
    pub(super) fn scrapes_held(&self, source: usize) -> usize {
        self.rounds
            .iter()
            .filter(|r| r.scrapes.get(source).is_some_and(Option::is_some))
            .count()
    }

    /// How many rounds are kept for the window.
    #[cfg(test)]
    pub(super) fn rounds_held(&self) -> usize {
        self.rounds.len()
    }

    /// The summary over the window that ended with the last round.
    pub fn current(&self) -> &Summary {
        &self.current
    }

    /// The per-interval summaries.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// What the dashboard's JSON endpoint answers.
    pub fn view(&self) -> View {
        let h = &self.history;
        View {
            interval_seconds: self.interval.as_secs_f64(),
            window_seconds: self.covered.as_secs_f64(),
            configured_window_seconds: self.window.as_secs_f64(),
            rounds: self.observed,
            at_seconds: self.rounds.back().map_or(0.0, |r| r.at.as_secs_f64()),
            sources: self
                .sources
                .iter()
                .zip(&self.errors)
                .map(|(t, error)| SourceView {
                    name: t.name.clone(),
                    addr: t.addr.clone(),
                    up: self.observed > 0 && error.is_none(),
                    error: error.clone(),
                })
                .collect(),
            timeline: h.timeline(),
            workloads: self
                .current
                .workloads
                .iter()
                .map(|w| WorkloadView {
                    history: h.workload(&w.stat.name),
                    workload: w.clone(),
                })
                .collect(),
            edges: self
                .current
                .edges
                .iter()
                .map(|e| EdgeView {
                    history: h.edge(&e.src, &e.dst),
                    edge: e.clone(),
                })
                .collect(),
            routes: self
                .current
                .routes
                .iter()
                .map(|r| RouteView {
                    history: h.route(r),
                    route: r.clone(),
                })
                .collect(),
        }
    }
}

/// An upper bound on the bytes `scrape` holds: each sample, its name,
/// and each of its labels' ids and texts, counted as if no sample shared
/// them (a scrape keeps each distinct text once). A source picks how many
/// samples it serves, and how long their labels are, up to
/// [`MAX_SCRAPE_BYTES`](crate::query::scrape::MAX_SCRAPE_BYTES) of text.
pub(super) fn scrape_bytes(scrape: &Scrape) -> usize {
    /// A shared name's reference counts.
    const NAME: usize = 2 * mem::size_of::<usize>();
    /// A label's pair of ids, and where its two texts end.
    const LABEL: usize = 2 * mem::size_of::<u32>() + 2 * mem::size_of::<u32>();
    scrape
        .samples()
        .iter()
        .map(|s| {
            let labels: usize = s.labels().map(|(k, v)| LABEL + k.len() + v.len()).sum();
            mem::size_of::<Sample>() + NAME + s.name.len() + labels
        })
        .sum()
}

/// When the process that served `scrape` started, by its
/// `process_start_time_seconds`.
fn process_start(scrape: &Scrape) -> Option<f64> {
    scrape
        .samples()
        .iter()
        .find(|s| s.name == "process_start_time_seconds" && s.labels().len() == 0)
        .map(|s| s.value)
}

/// The round where source `i`'s window starts, given when the process
/// that served its latest scrape started: the oldest round that has a
/// scrape of that process; when it has none yet, the last round that has
/// a scrape of the one before. A source that restarted counts from zero
/// again, and the difference to a scrape of its previous process is only
/// what the new one counted: spread over the whole window, it would show
/// a fraction of the rate (Prometheus' `rate` sums what each process
/// counted, and needs every scrape for it).
fn window_start(rounds: &VecDeque<Round>, i: usize, now: Option<f64>) -> Option<usize> {
    let held = |k: &usize| {
        rounds
            .get(*k)
            .is_some_and(|r| r.scrapes.get(i).is_some_and(Option::is_some))
    };
    let oldest = (0..rounds.len()).find(held)?;
    let Some(now) = now else {
        return Some(oldest);
    };
    let other = |k: &usize| {
        rounds
            .get(*k)
            .and_then(|r| r.started.get(i).copied().flatten())
            .is_some_and(|started| started != now)
    };
    let Some(last_other) = (0..rounds.len()).filter(held).rfind(other) else {
        return Some(oldest);
    };
    Some(
        (last_other + 1..rounds.len())
            .find(held)
            .unwrap_or(last_other),
    )
}

/// Deltas from `before` to `after`, source by source, over `elapsed(i)`.
fn pair(
    before: &[Option<Scrape>],
    after: &[Option<Scrape>],
    elapsed: impl Fn(usize) -> Duration,
) -> Vec<Option<Delta>> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .map(|(i, pair)| match pair {
            (Some(b), Some(a)) => Some(Delta::between(b, a, elapsed(i))),
            _ => None,
        })
        .collect()
}

/// Each source's delta to `after` from the oldest round that has it (of
/// the process it has now: see [`window_start`]), but that replicas of
/// one workload start at one round: the latest of their oldest. Their
/// counts are summed and divided by one window, so a replica whose window
/// is shorter (its oldest scrapes were let go, or failed) would have its
/// counts spread over time it did not cover.
fn pair_oldest(
    sources: &[Target],
    rounds: &VecDeque<Round>,
    after: &[Option<Scrape>],
    started: &[Option<f64>],
    at: Duration,
) -> Vec<Option<Delta>> {
    // Where the window of each source that has a scrape now starts.
    let oldest: Vec<Option<usize>> = after
        .iter()
        .enumerate()
        .map(|(i, scrape)| {
            scrape.as_ref()?;
            window_start(rounds, i, started.get(i).copied().flatten())
        })
        .collect();
    after
        .iter()
        .enumerate()
        .map(|(i, scrape)| {
            let scrape = scrape.as_ref()?;
            let name = &sources.get(i)?.name;
            let start = sources
                .iter()
                .zip(&oldest)
                .filter(|(t, _)| t.name == *name)
                .filter_map(|(_, o)| *o)
                .max()?;
            let (at_start, before) = rounds
                .iter()
                .skip(start)
                .find_map(|r| r.scrapes.get(i)?.as_ref().map(|s| (r.at, s)))?;
            Some(Delta::between(before, scrape, at.saturating_sub(at_start)))
        })
        .collect()
}

/// The JSON the dashboard page polls: the figures over the window, each
/// with its sparklines over the history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct View {
    /// How often the sources are scraped.
    pub interval_seconds: f64,
    /// The seconds the current figures cover: the longest of the
    /// workloads' windows (each says its own). Shorter than the window
    /// configured until the dashboard has seen a window of rounds, or when
    /// sources' budgets let their older scrapes go; 0 before two rounds.
    /// The page labels the figures with it: what was measured, not what
    /// was asked.
    pub window_seconds: f64,
    /// The window configured: what the figures cover once enough rounds
    /// are held.
    pub configured_window_seconds: f64,
    /// Rounds of scrapes so far.
    pub rounds: u64,
    /// When the last round began (its scrapes were sent), in seconds from
    /// the start of polling.
    pub at_seconds: f64,
    /// Every admin server scraped, and whether its last scrape worked.
    pub sources: Vec<SourceView>,
    /// When each sparkline point's interval ended (the round that closed
    /// it began), in seconds from the start of polling.
    pub timeline: Vec<f64>,
    /// One per workload, from its inbound traffic.
    pub workloads: Vec<WorkloadView>,
    /// Who calls whom, from outbound traffic.
    pub edges: Vec<EdgeView>,
    /// Outbound routes, with retries and timeouts.
    pub routes: Vec<RouteView>,
}

/// An admin server the dashboard scrapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceView {
    /// The workload it belongs to.
    pub name: String,
    /// Its address.
    pub addr: String,
    /// Whether its last scrape succeeded.
    pub up: bool,
    /// Why its last scrape failed.
    pub error: Option<String>,
}

/// A workload's figures and sparklines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadView {
    /// The figures over the window.
    #[serde(flatten)]
    pub workload: WorkloadSummary,
    /// The sparklines.
    pub history: Series,
}

/// An edge's figures and sparklines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeView {
    /// The figures over the window.
    #[serde(flatten)]
    pub edge: Edge,
    /// The sparklines.
    pub history: Series,
}

/// A route's figures and sparklines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteView {
    /// The figures over the window.
    #[serde(flatten)]
    pub route: RouteSummary,
    /// The sparklines.
    pub history: Series,
}
