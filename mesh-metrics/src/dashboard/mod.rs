//! A live dashboard of a mesh: one page, served from an admin server.
//!
//! `stat` and `top` answer "is this workload healthy?" in a terminal. The
//! dashboard answers it at a glance, and adds the one thing a table shows
//! badly: the shape of the mesh. Per workload it shows success rate, RPS,
//! latency percentiles, TLS coverage and requests its policy denied, with
//! sparklines over the last few minutes; a graph of who calls whom, drawn
//! from each caller's outbound metrics (`dst_service`), coloured by success
//! rate, with calls the callee forbade (403) set apart; and, per outbound
//! route, how many retries were spent and how many requests timed out.
//!
//! # How it works
//!
//! A [`Poller`], one task per process, scrapes every source's `/metrics`
//! once per interval (2 s by default), as `sidecar stat` does, each
//! within the interval (a source that does not answer in time is down
//! for that round, and does not hold the others back), and feeds
//! the round to a [`Board`]. The board keeps the last few rounds to compute
//! the current figures over a window (10 s by default), and a bounded
//! [`History`] of per-interval summaries (150 points, five minutes at 2 s)
//! for the sparklines. After each round the poller encodes the view as JSON
//! once; page views only copy those bytes, so a dozen open browsers cost
//! the sources nothing more.
//!
//! The [`Dashboard`] service answers two paths: [`PAGE_PATH`], a single
//! HTML page with its CSS, JavaScript and SVG inline (nothing is fetched
//! from elsewhere, and its `Content-Security-Policy` says so), and
//! [`API_PATH`], the JSON the page polls ([`View`]). It fits mesh-core's
//! [`Admin::with_extension`](mesh_core::admin::Admin::with_extension).
//! The poller stops by itself once every clone of the service is dropped.
//!
//! # Memory
//!
//! The figures over the window are the difference between a source's
//! latest scrape and the one a window before, so the board keeps every
//! source's scrapes of the last window: six at the defaults. A source
//! picks how much it serves, up to
//! [`MAX_SCRAPE_BYTES`](crate::query::scrape::MAX_SCRAPE_BYTES) of text
//! a scrape, so six of them could be most of a gigabyte for one source.
//! Each source's scrapes other than its latest are therefore kept within
//! [`DashboardConfig::source_bytes`] (64 MiB by default, counted as if
//! no two samples shared a label text, which overstates them): past
//! it, its oldest are let go, and its window is shorter, starting at the
//! oldest it kept. Rates are per second over the time actually covered,
//! so they stay right, only less smooth; the replicas of a workload,
//! whose counts are summed, share the window of the one that covers the
//! least. A source as large as a proxy
//! usually serves is far from it.
//!
//! A source that restarted counts from zero again. Its window starts at
//! its new process's first scrape (or, until there is a second, at its
//! previous process's last), told by `process_start_time_seconds`: the
//! difference to an older scrape is only what the new process counted,
//! and over the whole window it would show a fraction of the real rate.
//!
//! The figures are labelled with the window they were computed over, not
//! the one configured: a rate averaged over 2 s is noisier than one over
//! 10 s, and a reader must know which one is on the screen.
//! [`View::window_seconds`] is the longest any workload covers, and each
//! workload whose window is shorter (its budget let scrapes go) says its
//! own ([`WorkloadSummary::window_seconds`]). Until the dashboard has held
//! a window of rounds, the window is the time it has polled.
//!
//! A source also picks how many services and routes it names, and each
//! edge or route shown costs nine sparklines in every view, and its row
//! in every point of the history. A summary keeps the [`MAX_EDGES`]
//! busiest edges and the [`MAX_ROUTES`] busiest routes (by requests a
//! second), as `top` shows the busiest rows; a page could not draw more.
//! A row's sparkline has a gap (`null`) at a point where it was not among
//! them.
//!
//! ```
//! use std::time::Duration;
//!
//! use mesh_core::admin::{Admin, Readiness};
//! use mesh_metrics::{dashboard::{Dashboard, DashboardConfig}, query::Target};
//! use prometheus_client::registry::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sources = Target::parse_list("web=127.0.0.1:4191,emoji=127.0.0.1:4192")?;
//! let config = DashboardConfig::new(sources).with_interval(Duration::from_secs(1));
//! let (dashboard, poller) = Dashboard::new(config)?;
//! tokio::spawn(poller.run());
//! let admin = Admin::new(Registry::default(), Readiness::new()).with_extension(dashboard);
//! # drop(admin);
//! # Ok(()) }
//! ```

mod board;
mod history;
mod page;
mod summary;

use std::{
    convert::Infallible,
    fmt,
    future::{Ready, ready},
    num::NonZeroUsize,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response};
use mesh_core::{admin::local::names_local_host, body::BoxBody};
use tokio::time::{Instant, MissedTickBehavior};
use tower_service::Service;

pub use self::{
    board::{Board, EdgeView, RouteView, SourceView, View, WorkloadView},
    history::{History, Series},
    page::{API_PATH, PAGE_PATH},
    summary::{Edge, MAX_EDGES, MAX_ROUTES, RouteSummary, Summary, WorkloadSummary},
};
use crate::query::{Scrape, Target, scrape};

/// What the dashboard scrapes, how often, and how much it remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardConfig {
    /// The admin servers to scrape; sources with one name are replicas of
    /// one workload. The process serving the dashboard is usually one.
    pub sources: Vec<Target>,
    /// How often every source is scraped, and the longest a scrape may
    /// take. Default 2 seconds. Never zero.
    pub interval: Duration,
    /// The window the current figures cover. Default 10 seconds; a window
    /// shorter than the interval counts as one interval.
    pub window: Duration,
    /// How many intervals the sparklines show. Default 150: five minutes
    /// at the default interval.
    pub history: NonZeroUsize,
    /// The most bytes of one source's scrapes kept for the window, its
    /// latest scrape aside, which is always kept. Default
    /// [`DEFAULT_SOURCE_BYTES`](Self::DEFAULT_SOURCE_BYTES). See the
    /// [module docs](self#memory).
    pub source_bytes: usize,
}

impl DashboardConfig {
    /// The default interval: 2 seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    /// The default window: 10 seconds.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
    /// The default history: 150 points.
    pub const DEFAULT_HISTORY: NonZeroUsize = NonZeroUsize::MIN.saturating_add(149);
    /// The default bytes kept per source for the window: 64 MiB.
    pub const DEFAULT_SOURCE_BYTES: usize = 64 << 20;

    /// Scrapes `sources` with the default interval, window and history.
    pub fn new(sources: Vec<Target>) -> Self {
        Self {
            sources,
            interval: Self::DEFAULT_INTERVAL,
            window: Self::DEFAULT_WINDOW,
            history: Self::DEFAULT_HISTORY,
            source_bytes: Self::DEFAULT_SOURCE_BYTES,
        }
    }

    /// Sets how often the sources are scraped.
    #[must_use]
    pub fn with_interval(self, interval: Duration) -> Self {
        Self { interval, ..self }
    }

    /// Sets the window of the current figures.
    #[must_use]
    pub fn with_window(self, window: Duration) -> Self {
        Self { window, ..self }
    }

    /// Sets how many points the sparklines keep.
    #[must_use]
    pub fn with_history(self, history: NonZeroUsize) -> Self {
        Self { history, ..self }
    }

    /// Sets the most bytes of one source's scrapes kept for the window,
    /// beside its latest.
    #[must_use]
    pub fn with_source_bytes(self, source_bytes: usize) -> Self {
        Self {
            source_bytes,
            ..self
        }
    }
}

/// A dashboard configuration that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidDashboard {
    /// No source to scrape.
    NoSources,
    /// A zero interval, which would scrape without pause.
    ZeroInterval,
}

impl fmt::Display for InvalidDashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSources => "the dashboard has no source to scrape",
            Self::ZeroInterval => "the dashboard's scrape interval is zero",
        })
    }
}

impl std::error::Error for InvalidDashboard {}

/// The dashboard service: the page at [`PAGE_PATH`], its JSON at
/// [`API_PATH`], `404` elsewhere. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Dashboard {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The view of the last round, encoded once.
    api: ArcSwap<Bytes>,
}

impl Dashboard {
    /// The service, and the poller that keeps it current; spawn
    /// [`Poller::run`] once.
    ///
    /// # Errors
    ///
    /// When `config` names no source or its interval is zero.
    pub fn new(config: DashboardConfig) -> Result<(Self, Poller), InvalidDashboard> {
        if config.sources.is_empty() {
            return Err(InvalidDashboard::NoSources);
        }
        if config.interval.is_zero() {
            return Err(InvalidDashboard::ZeroInterval);
        }
        let board = Board::new(&config);
        let json = encode(&board.view()).unwrap_or_default();
        let shared = Arc::new(Shared {
            api: ArcSwap::from_pointee(json),
        });
        let poller = Poller {
            shared: Arc::downgrade(&shared),
            board,
            config,
        };
        Ok((Self { shared }, poller))
    }

    /// The JSON the API path answers now.
    pub fn api_json(&self) -> Bytes {
        Bytes::clone(&self.shared.api.load())
    }
}

impl<B> Service<Request<B>> for Dashboard {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // A page that reaches the admin port through DNS rebinding reads
        // it as its own origin; the host it names gives it away (see
        // mesh-core's `admin::local`). Linkerd's viz dashboard, too, serves
        // only the hosts it expects (`-enforced-host`).
        if !names_local_host(&req) {
            return ready(Ok(page::foreign_host()));
        }
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        ready(Ok(page::respond(req.uri().path(), get, || self.api_json())))
    }
}

/// The task that scrapes the sources once per interval. See
/// [`Dashboard::new`].
#[derive(Debug)]
pub struct Poller {
    shared: Weak<Shared>,
    board: Board,
    config: DashboardConfig,
}

impl Poller {
    /// Scrapes every source once per interval, all at once, until every
    /// clone of the [`Dashboard`] is dropped. A round that outlasts the
    /// interval delays the next one rather than bunching them.
    pub async fn run(mut self) {
        let start = Instant::now();
        let mut ticks = tokio::time::interval(self.config.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.shared.strong_count() == 0 {
                return;
            }
            let limit = self.config.interval;
            // The counters are read as the round begins; a source that
            // holds the round up must not stretch or shrink the window the
            // others' figures are divided by.
            let at = start.elapsed();
            let results = futures_util::future::join_all(
                self.config
                    .sources
                    .iter()
                    .map(|target| scrape_within(target, limit)),
            )
            .await;
            self.board.observe(at, results);
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            match encode(&self.board.view()) {
                Ok(json) => shared.api.store(Arc::new(json)),
                Err(error) => tracing::warn!(%error, "cannot encode the dashboard view"),
            }
        }
    }
}

/// Scrapes `target`, giving up after `limit` (the interval) if that is
/// sooner than the scrape's own timeout. The sources are scraped
/// together and a round ends with its slowest, so one admin server that
/// takes connections and never answers held every round, and every other
/// source's figures, to the scrape timeout (5 s where the interval is
/// 2 s). Prometheus, likewise, refuses a `scrape_timeout` longer than the
/// `scrape_interval`.
async fn scrape_within(target: &Target, limit: Duration) -> Result<Scrape, String> {
    tokio::time::timeout(limit, scrape_explained(target))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "scraping {}: no answer within {}s, the dashboard's scrape interval",
                target.addr,
                limit.as_secs_f64()
            ))
        })
}

/// Scrapes `target`; a failure is what the page shows of it, with its
/// causes: which line of the metrics did not read, what the system said
/// of the connection. Without them, an operator reads that a source is
/// down, and not why.
async fn scrape_explained(target: &Target) -> Result<Scrape, String> {
    scrape(target).await.map_err(|error| {
        let mut text = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(e) = cause {
            text.push_str(": ");
            text.push_str(&e.to_string());
            cause = e.source();
        }
        text
    })
}

fn encode(view: &View) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(view).map(Bytes::from)
}

#[cfg(test)]
mod tests;
