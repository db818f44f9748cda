//! The last few minutes, one summary per interval, for the sparklines.
//!
//! The history is a ring: it holds at most its capacity of points and
//! drops the oldest as a new one arrives, so a dashboard left open for a
//! week uses what it used after five minutes. A sparkline is read out of it
//! per workload, edge or route, one value per point, `null` where that
//! workload, edge or route had no traffic, so every series lines up with
//! the one shared timeline.

use std::{collections::VecDeque, num::NonZeroUsize, time::Duration};

use serde::Serialize;

use super::summary::{Edge, RouteSummary, Summary, WorkloadSummary};
use crate::query::Golden;

/// The per-interval summaries of the last `capacity` intervals.
#[derive(Clone, Debug)]
pub struct History {
    points: VecDeque<(Duration, Summary)>,
    capacity: NonZeroUsize,
}

impl History {
    /// An empty history that keeps at most `capacity` points. Room is
    /// taken as points come, not at once: the capacity is configured, and
    /// a large one must not fail the allocation of an empty history.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            points: VecDeque::new(),
            capacity,
        }
    }

    /// Adds the summary of the interval that ended `at` (from the start of
    /// polling), dropping the oldest point when full.
    pub fn push(&mut self, at: Duration, summary: Summary) {
        if self.points.len() == self.capacity.get() {
            self.points.pop_front();
        }
        self.points.push_back((at, summary));
    }

    /// The points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is held yet.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The most points it holds.
    pub fn capacity(&self) -> NonZeroUsize {
        self.capacity
    }

    /// When each point's interval ended, in seconds from the start of
    /// polling, oldest first.
    pub fn timeline(&self) -> Vec<f64> {
        self.points.iter().map(|(at, _)| at.as_secs_f64()).collect()
    }

    /// The sparklines of workload `name`.
    pub fn workload(&self, name: &str) -> Series {
        self.series(|s| {
            s.workloads
                .iter()
                .find(|w| w.stat.name == name && w.stat.meshed > 0)
                .map(Signals::from)
        })
    }

    /// The sparklines of the edge from `src` to `dst`. Found by binary
    /// search, as a summary's edges are sorted: a source picks how many
    /// there are, and each is looked up in every point.
    pub fn edge(&self, src: &str, dst: &str) -> Series {
        self.series(|s| {
            s.edges
                .binary_search_by(|e| (e.src.as_str(), e.dst.as_str()).cmp(&(src, dst)))
                .ok()
                .and_then(|i| s.edges.get(i))
                .map(Signals::from)
        })
    }

    /// The sparklines of `route`, one of a workload's outbound routes,
    /// found as [`edge`](Self::edge) finds an edge's.
    pub fn route(&self, route: &RouteSummary) -> Series {
        fn key(r: &RouteSummary) -> (&str, &str, &str) {
            (&r.row.workload, &r.row.service, &r.row.route)
        }
        self.series(|s| {
            s.routes
                .binary_search_by(|r| key(r).cmp(&key(route)))
                .ok()
                .and_then(|i| s.routes.get(i))
                .map(Signals::from)
        })
    }

    fn series(&self, find: impl Fn(&Summary) -> Option<Signals>) -> Series {
        let mut series = Series::with_capacity(self.points.len());
        for (_, summary) in &self.points {
            series.push(find(summary));
        }
        series
    }
}

/// Sparklines: one value per point of the history, aligned with its
/// [timeline](History::timeline); `null` where there was no traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    /// Success rate, 0 to 1.
    pub success: Vec<Option<f64>>,
    /// Responses per second.
    pub rps: Vec<Option<f64>>,
    /// Median latency, in milliseconds.
    pub latency_ms_p50: Vec<Option<f64>>,
    /// 95th percentile latency, in milliseconds.
    pub latency_ms_p95: Vec<Option<f64>>,
    /// 99th percentile latency, in milliseconds.
    pub latency_ms_p99: Vec<Option<f64>>,
    /// Share of responses on mutual TLS, 0 to 1.
    pub tls: Vec<Option<f64>>,
    /// Retries per second; all `null` but for routes.
    pub retries: Vec<Option<f64>>,
    /// Timeouts per second; all `null` but for routes.
    pub timeouts: Vec<Option<f64>>,
    /// Requests denied by policy per second; all `null` but for workloads.
    pub denied: Vec<Option<f64>>,
}

impl Series {
    fn with_capacity(n: usize) -> Self {
        let v = || Vec::with_capacity(n);
        Self {
            success: v(),
            rps: v(),
            latency_ms_p50: v(),
            latency_ms_p95: v(),
            latency_ms_p99: v(),
            tls: v(),
            retries: v(),
            timeouts: v(),
            denied: v(),
        }
    }

    fn push(&mut self, point: Option<Signals>) {
        let p = point.unwrap_or_default();
        let g = p.golden;
        self.success.push(g.and_then(|g| g.success));
        self.rps.push(g.map(|g| g.rps));
        self.latency_ms_p50.push(g.and_then(|g| g.latency_ms_p50));
        self.latency_ms_p95.push(g.and_then(|g| g.latency_ms_p95));
        self.latency_ms_p99.push(g.and_then(|g| g.latency_ms_p99));
        self.tls.push(p.tls);
        self.retries.push(p.retries);
        self.timeouts.push(p.timeouts);
        self.denied.push(p.denied);
    }
}

/// One point of one sparkline set: the figures of one row of one summary.
/// A field is `None` where the row has no such figure.
#[derive(Clone, Copy, Debug, Default)]
struct Signals {
    golden: Option<Golden>,
    tls: Option<f64>,
    retries: Option<f64>,
    timeouts: Option<f64>,
    denied: Option<f64>,
}

impl From<&WorkloadSummary> for Signals {
    fn from(w: &WorkloadSummary) -> Self {
        Self {
            golden: Some(w.stat.golden),
            tls: w.stat.tls,
            denied: Some(w.denied),
            ..Self::default()
        }
    }
}

impl From<&Edge> for Signals {
    fn from(e: &Edge) -> Self {
        Self {
            golden: Some(e.golden),
            tls: e.tls,
            ..Self::default()
        }
    }
}

impl From<&RouteSummary> for Signals {
    fn from(r: &RouteSummary) -> Self {
        Self {
            golden: Some(r.row.golden),
            tls: None,
            retries: Some(r.retries),
            timeouts: Some(r.timeouts),
            denied: None,
        }
    }
}
