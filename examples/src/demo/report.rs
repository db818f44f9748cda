//! What the demo shows while it runs, and what it checks when it ends.
//!
//! Every interval it scrapes each sidecar's `/metrics` and prints what
//! changed, with the arithmetic `sidecar stat` and `sidecar routes` use
//! (mesh-metrics' `query` module): one row per workload from its inbound
//! traffic, then `web`'s calls to `emoji` and `voting` as its sidecar
//! answered them (after retries) beside every attempt it made. A sidecar
//! whose metrics could not be read gets a line saying why; one that has not
//! answered by the time the next table is due is given up on for that
//! table, so that it does not hold back the others' figures.
//!
//! At the end it adds up the whole run and checks what the mesh promises:
//! `web` saw at least 99 % success although `voting` fails one vote in ten,
//! and so did `vote-bot`'s requests to `web`,
//! every request between sidecars was on mutual TLS (a request a sidecar
//! answered itself, with no peer, was not between sidecars), every call
//! the policy denies got a 403 and at least one was made, every
//! sidecar's metrics could be read at the end, and `web`'s dashboard, whose
//! address the demo prints, served its page at the end: an address handed
//! to the reader is a promise too, and one never fetched could break
//! unseen.

use std::{fmt, sync::atomic::Ordering::Relaxed, time::Duration};

use bytes::Bytes;
use futures_util::future::join_all;
use http::{StatusCode, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_metrics::{
    Direction,
    dashboard::PAGE_PATH,
    query::{
        Format, Sample, Scrape, Target, Totals, deltas,
        routes::{render_routes, route_rows},
        scrape::scrape,
        stat::{render_stat, stat_rows},
    },
};
use tokio::time::Instant;

use super::{apps::Outcomes, mesh::Mesh, traffic::DeniedCounts};

/// The least success `web` may see from its calls, after retries.
pub const MIN_EFFECTIVE_SUCCESS: f64 = 0.99;

/// How long the dashboard may take to answer at the end: a stalled admin
/// server must not keep the demo, and its files, from stopping.
const DASHBOARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of the dashboard's page that is read: the page is a few tens
/// of kilobytes.
const MAX_PAGE: usize = 1024 * 1024;

/// The sidecars' admin servers, and the last scrape of each.
#[derive(Debug)]
pub struct Watch {
    /// `web`, `emoji`, `voting`, then `vote-bot`: the first three make the
    /// stat table, and all four must be on mutual TLS.
    targets: Vec<Target>,
    before: Vec<Option<Scrape>>,
    /// `web`'s calls that succeeded and failed, at the last frame.
    calls_before: (u64, u64),
    /// The address of `web`'s dashboard, as the demo printed it.
    dashboard: String,
    /// How far apart the tables are, and so the longest a table's scrape
    /// of one sidecar may take.
    interval: Duration,
    /// When the scrapes of `before` began: a sidecar that answers at once
    /// is read then, whatever the others keep the table waiting for.
    taken: Instant,
}

impl Watch {
    /// Watches the sidecars of `mesh`, from no traffic, for tables
    /// `interval` apart.
    pub fn new(mesh: &Mesh, interval: Duration) -> Self {
        let target = |name: &str, running: &crate::sidecar::Running| Target {
            name: name.to_owned(),
            addr: running.admin.to_string(),
        };
        let targets = vec![
            target("web", &mesh.web),
            target("emoji", &mesh.emoji),
            target("voting", &mesh.voting),
            target("vote-bot", &mesh.vote_bot),
        ];
        let dashboard = format!("http://{}{PAGE_PATH}", mesh.web.admin);
        Self::with_targets(targets, dashboard, interval)
    }

    /// Watches `targets`, `web`, `emoji`, `voting` and `vote-bot` in that
    /// order, and the dashboard at `dashboard`.
    fn with_targets(targets: Vec<Target>, dashboard: String, interval: Duration) -> Self {
        let before = vec![Some(Scrape::default()); targets.len()];
        Self {
            targets,
            before,
            calls_before: (0, 0),
            dashboard,
            interval,
            taken: Instant::now(),
        }
    }

    /// Scrapes every sidecar and renders what changed since the last
    /// frame; `uptime` is how long the demo has run.
    pub async fn frame(
        &mut self,
        uptime: Duration,
        web_calls: &Outcomes,
        denied: &DeniedCounts,
    ) -> String {
        let limit = self.interval;
        // The counters are read as the scrapes begin, not when the last
        // one ends: timed from the end of one table's scrapes to the end
        // of the next, a table after one held up by a sidecar that did not
        // answer covered only its own scrapes' milliseconds, while the
        // others' counters had moved over the whole interval, and their
        // rates came out hundreds of times too high. (`sidecar top` times
        // its frames the same way.)
        let now = Instant::now();
        let scrapes = join_all(
            self.targets
                .iter()
                .map(|target| scrape_within(target, limit)),
        )
        .await;
        // A row of dashes does not say why: the reason goes under the
        // table, with the workload's name.
        let mut unscraped = String::new();
        for ((target, scrape), before) in self.targets.iter().zip(&scrapes).zip(&self.before) {
            match (scrape, before) {
                (Err(error), _) => {
                    unscraped += &format!("no metrics from {}'s sidecar: {error}\n", target.name);
                }
                // Read now, but not for the table before: nothing to count
                // from.
                (Ok(_), None) => {
                    unscraped += &format!(
                        "no figures from {}'s sidecar: the table before could not read its metrics\n",
                        target.name
                    );
                }
                (Ok(_), Some(_)) => {}
            }
        }
        let after: Vec<Option<Scrape>> = scrapes.into_iter().map(Result::ok).collect();
        let window = now.saturating_duration_since(self.taken);
        let deltas = deltas(&self.before, &after, window);
        self.before = after;
        self.taken = now;

        let web = &self.targets[..1];
        let mut routes = route_rows(web, &deltas[..1], Some("emoji"));
        routes.extend(route_rows(web, &deltas[..1], Some("voting")));
        let calls = (web_calls.ok(), web_calls.failed());
        let (ok, failed) = (calls.0 - self.calls_before.0, calls.1 - self.calls_before.1);
        self.calls_before = calls;
        let workloads = stat_rows(&self.targets[..3], &deltas[..3], Direction::Inbound);
        // Rendering a table cannot fail; only JSON encoding can.
        let stat = render_stat(&workloads, Format::Table).unwrap_or_default();
        let routes = render_routes(&routes, true, Format::Table).unwrap_or_default();
        format!(
            "── {:>3}s ─ the last {:.1}s {}\n{stat}\n{unscraped}\
             web's calls, from its sidecar (SUCCESS after retries; ACTUAL_*: every attempt):\n{routes}\n\
             web saw {} success; denied calls so far: {} of {} got 403\n",
            uptime.as_secs(),
            window.as_secs_f64(),
            "─".repeat(48),
            percent(rate(ok, ok + failed)),
            denied.forbidden.load(Relaxed),
            denied.attempted(),
        )
    }

    /// Scrapes every sidecar once more, fetches `web`'s dashboard once,
    /// and checks the whole run.
    pub async fn summary(
        &self,
        elapsed: Duration,
        requests: &Outcomes,
        web_calls: &Outcomes,
        denied: &DeniedCounts,
    ) -> Summary {
        let (scrapes, dashboard) = tokio::join!(
            join_all(self.targets.iter().map(scrape)),
            fetch_dashboard(&self.dashboard)
        );
        let unscraped: Vec<Breach> = self
            .targets
            .iter()
            .zip(&scrapes)
            .filter_map(|(target, scrape)| {
                let error = scrape.as_ref().err()?;
                Some(Breach::NoMetrics {
                    workload: target.name.clone(),
                    reason: error.to_string(),
                })
            })
            .collect();
        let last: Vec<Option<Scrape>> = scrapes.into_iter().map(Result::ok).collect();
        let whole = deltas(&vec![Some(Scrape::default()); last.len()], &last, elapsed);
        // `None` when the sidecar's metrics could not be read: its figures
        // are unknown, not zero.
        let of = |i: usize, select: &dyn Fn(&Sample) -> bool| {
            let delta = whole[i].as_ref()?;
            let mut totals = Totals::default();
            delta.accumulate(&mut totals, select);
            Some(totals)
        };
        // The retries web's sidecar made for web's calls.
        let retries = of(0, &|s| s.name == "retry_requests_total").map(|t| t.retries as u64);
        let voting_failures = of(2, &|s| {
            s.label("direction") == Some(Direction::Inbound.as_label())
        })
        .map(|t| t.failure as u64);
        // A response without a `tls` label is one the sidecar gave itself
        // before any connection to a peer (a 404 for a service it does not
        // know, say): that request never went between sidecars, so it is
        // neither on mutual TLS nor off it.
        let between_sidecars = |s: &Sample| s.name != "response_total" || s.label("tls").is_some();
        let tls = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let rate = of(i, &between_sidecars).and_then(|t| t.tls_rate());
                (target.name.clone(), rate)
            })
            .collect();
        let mut summary = Summary {
            elapsed,
            requests: requests.ok() + requests.failed(),
            request_failures: requests.failed(),
            web_calls: web_calls.ok() + web_calls.failed(),
            effective_success: rate(web_calls.ok(), web_calls.ok() + web_calls.failed()),
            retries,
            voting_failures,
            tls,
            denied_forbidden: denied.forbidden.load(Relaxed),
            denied_got_through: denied.got_through.load(Relaxed),
            denied_other: denied.other.load(Relaxed),
            breaches: Vec::new(),
        };
        summary.breaches = summary.check();
        summary.breaches.extend(unscraped);
        if let Err(reason) = dashboard {
            summary.breaches.push(Breach::Dashboard {
                url: self.dashboard.clone(),
                reason,
            });
        }
        summary
    }
}

/// Scrapes `target` for a table, giving up after `limit`, the time
/// between tables, when that is sooner than the scrape's own timeout (5
/// s). The sidecars are scraped together and a table waits for the last
/// of them, so one admin server that takes connections and never answers
/// held every table, and the other three sidecars' figures, to that
/// timeout. It is shown as not answering in that table instead, as
/// Prometheus' `scrape_timeout` may not exceed its `scrape_interval` and
/// the dashboard gives up at its interval.
async fn scrape_within(target: &Target, limit: Duration) -> Result<Scrape, String> {
    match tokio::time::timeout(limit, scrape(target)).await {
        Ok(scraped) => scraped.map_err(|error| error.to_string()),
        Err(_) => Err(format!(
            "{} did not answer within {}s, the time between tables",
            target.addr,
            limit.as_secs_f64()
        )),
    }
}

/// Fetches the dashboard's page at `url` once: `Err` says why what came
/// back is not the page.
async fn fetch_dashboard(url: &str) -> Result<(), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let fetch = async {
        let response = client.get(uri).await.map_err(|error| {
            if error.is_connect() {
                format!("cannot connect: {}", crate::root_cause(&error))
            } else {
                error.to_string()
            }
        })?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("answered {status}"));
        }
        let html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let body = Limited::new(response.into_body(), MAX_PAGE)
            .collect()
            .await
            .map_err(|e| format!("its page could not be read: {e}"))?
            .to_bytes();
        if !html || !String::from_utf8_lossy(&body).contains("dashboard") {
            return Err("answered 200 OK with something else than its page".to_owned());
        }
        Ok(())
    };
    tokio::time::timeout(DASHBOARD_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", DASHBOARD_TIMEOUT.as_secs())))
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.2}%", r * 100.0))
}

/// The whole run, and what broke.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// How long the traffic ran.
    pub elapsed: Duration,
    /// `vote-bot`'s requests to `web` that were answered or failed.
    pub requests: u64,
    /// Those that did not get a 2xx.
    pub request_failures: u64,
    /// `web`'s calls to `emoji` and `voting`.
    pub web_calls: u64,
    /// The share of `web`'s calls that got a 2xx, as `web` counted them.
    pub effective_success: Option<f64>,
    /// The retries `web`'s sidecar made; `None` when its metrics could
    /// not be read at the end ([`Breach::NoMetrics`]).
    pub retries: Option<u64>,
    /// The failures `voting` answered, before any retry; `None` when its
    /// sidecar's metrics could not be read at the end.
    pub voting_failures: Option<u64>,
    /// Per sidecar, the share of its requests (both ways) to or from
    /// another sidecar that were on mutual TLS; the requests it answered
    /// itself, with no peer, are not counted.
    pub tls: Vec<(String, Option<f64>)>,
    /// Denied calls that got their 403.
    pub denied_forbidden: u64,
    /// Denied calls that got a 2xx.
    pub denied_got_through: u64,
    /// Denied calls that got something else.
    pub denied_other: u64,
    /// The promises the run broke; empty when it held them all.
    pub breaches: Vec<Breach>,
}

/// A promise of the mesh that a run broke.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Breach {
    /// `web` made no calls at all.
    NoTraffic,
    /// `web` saw less success than [`MIN_EFFECTIVE_SUCCESS`].
    Success(f64),
    /// `vote-bot`, the mesh's user, saw less success from `web` than
    /// [`MIN_EFFECTIVE_SUCCESS`]: requests failed before `web` could make
    /// its calls (at `web`'s sidecar, say), which `web`'s own count misses.
    RequestSuccess(f64),
    /// A sidecar served or sent requests that were not on mutual TLS.
    Tls {
        /// The workload.
        workload: String,
        /// The share that was.
        rate: f64,
    },
    /// A sidecar's `/metrics` could not be read at the end, so its
    /// figures in the summary (retries, `voting`'s failures, its share on
    /// mutual TLS) are unknown, not zero, and no promise about them holds.
    NoMetrics {
        /// The workload.
        workload: String,
        /// Why: the scrape's error, naming the admin address.
        reason: String,
    },
    /// `web`'s dashboard, whose address the demo printed, did not serve
    /// its page at the end.
    Dashboard {
        /// The address the demo printed.
        url: String,
        /// What came back instead, or why nothing did.
        reason: String,
    },
    /// No denied call was attempted.
    NoDeniedCall,
    /// Denied calls that got through.
    DeniedGotThrough(u64),
    /// Denied calls answered with neither a 403 nor a 2xx.
    DeniedOther(u64),
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTraffic => f.write_str("web made no calls"),
            Self::Success(rate) => write!(
                f,
                "web saw {:.2}% success, below {:.0}%",
                rate * 100.0,
                MIN_EFFECTIVE_SUCCESS * 100.0
            ),
            Self::RequestSuccess(rate) => write!(
                f,
                "vote-bot saw {:.2}% success from web, below {:.0}%",
                rate * 100.0,
                MIN_EFFECTIVE_SUCCESS * 100.0
            ),
            Self::Tls { workload, rate } => write!(
                f,
                "{workload}: {:.2}% of requests on mutual tls, not 100%",
                rate * 100.0
            ),
            Self::NoMetrics { workload, reason } => write!(
                f,
                "{workload}'s sidecar gave no metrics at the end ({reason}), \
                 so its figures are unknown"
            ),
            Self::Dashboard { url, reason } => write!(
                f,
                "web's dashboard at {url} did not answer with its page: {reason}"
            ),
            Self::NoDeniedCall => f.write_str("no denied call was attempted"),
            Self::DeniedGotThrough(n) => write!(f, "{n} denied calls got through"),
            Self::DeniedOther(n) => write!(f, "{n} denied calls got no 403"),
        }
    }
}

impl Summary {
    /// Whether the run held every promise.
    pub fn passed(&self) -> bool {
        self.breaches.is_empty()
    }

    /// The summary of a run that was stopped rather than run for a length
    /// it was given: `demo stopped: ` and the figures, with no verdict.
    /// A run stopped by hand may have lasted too little for any promise
    /// to be judged (`web` makes no call in its first moments), and the
    /// person who stopped it has seen every table; the verdict of
    /// [`Summary`]'s `Display` is for a run whose length was chosen for it.
    pub fn unjudged(&self) -> impl fmt::Display + '_ {
        Unjudged(self)
    }

    fn check(&self) -> Vec<Breach> {
        let mut breaches = Vec::new();
        match self.effective_success {
            None => breaches.push(Breach::NoTraffic),
            Some(rate) if rate < MIN_EFFECTIVE_SUCCESS => breaches.push(Breach::Success(rate)),
            Some(_) => {}
        }
        let answered = self.requests - self.request_failures.min(self.requests);
        match rate(answered, self.requests) {
            Some(rate) if rate < MIN_EFFECTIVE_SUCCESS => {
                breaches.push(Breach::RequestSuccess(rate));
            }
            _ => {}
        }
        for (workload, rate) in &self.tls {
            if let Some(rate) = rate.filter(|r| *r < 1.0) {
                let workload = workload.clone();
                breaches.push(Breach::Tls { workload, rate });
            }
        }
        if self.denied_forbidden + self.denied_got_through + self.denied_other == 0 {
            breaches.push(Breach::NoDeniedCall);
        }
        if self.denied_got_through > 0 {
            breaches.push(Breach::DeniedGotThrough(self.denied_got_through));
        }
        if self.denied_other > 0 {
            breaches.push(Breach::DeniedOther(self.denied_other));
        }
        breaches
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            f.write_str("demo passed: ")?;
        } else {
            let breaches: Vec<String> = self.breaches.iter().map(Breach::to_string).collect();
            write!(f, "demo FAILED ({}): ", breaches.join("; "))?;
        }
        Figures(self).fmt(f)
    }
}

/// A summary without its verdict: see [`Summary::unjudged`].
struct Unjudged<'a>(&'a Summary);

impl fmt::Display for Unjudged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "demo stopped: {}", Figures(self.0))?;
        // No verdict, but a figure said to be unknown says why.
        for breach in &self.0.breaches {
            if let Breach::NoMetrics { .. } = breach {
                write!(f, "; {breach}")?;
            }
        }
        Ok(())
    }
}

/// What a run added up to: the part of its summary line after the
/// verdict.
struct Figures<'a>(&'a Summary);

impl fmt::Display for Figures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = self.0;
        let tls = summary.tls.iter().filter_map(|(_, rate)| *rate);
        let least_tls = tls.reduce(f64::min);
        let voting = match summary.voting_failures {
            Some(n) => format!("voting failed {n} votes"),
            None => "voting's failed votes unknown".to_owned(),
        };
        let retries = match summary.retries {
            Some(n) => format!("web's sidecar retried {n} times"),
            None => "web's sidecar's retries unknown".to_owned(),
        };
        write!(
            f,
            "{:.1}s, {} requests to web ({} failed); {voting}, {retries}, \
             web saw {} success over {} calls; mTLS {}; {} of {} denied calls got 403",
            summary.elapsed.as_secs_f64(),
            summary.requests,
            summary.request_failures,
            percent(summary.effective_success),
            summary.web_calls,
            percent(least_tls),
            summary.denied_forbidden,
            summary.denied_forbidden + summary.denied_got_through + summary.denied_other,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    };

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::demo::mesh::tests::admin_answering;

    /// A server that answers every request with `answer`; the URL of its
    /// dashboard path.
    async fn answering(answer: &'static str) -> String {
        let addr = admin_answering(answer).await;
        format!("http://{addr}{PAGE_PATH}")
    }

    #[tokio::test]
    async fn a_sidecar_that_stops_answering_does_not_hold_the_table_back() {
        // The four sidecars are scraped together and a table waits for the
        // slowest: one whose admin server took connections and never
        // answered held every table to the 5 s scrape timeout, though the
        // tables are 2 s apart and the other three had answered. Its scrape
        // now gives up at the interval, which its line says.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let metrics = admin_answering(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        let target = |name: &str, addr: std::net::SocketAddr| Target {
            name: name.to_owned(),
            addr: addr.to_string(),
        };
        let interval = Duration::from_secs(2);
        let targets = vec![
            target("web", metrics),
            target("emoji", metrics),
            target("voting", silent),
            target("vote-bot", metrics),
        ];
        let mut watch = Watch::with_targets(targets, String::new(), interval);

        let frame = watch
            .frame(interval, &Outcomes::default(), &DeniedCounts::default())
            .await;

        let line = format!("no metrics from voting's sidecar: {silent} did not answer within 2s");
        assert!(frame.contains(&line), "{frame}");
        for answered in ["web", "emoji", "vote-bot"] {
            let line = format!("no metrics from {answered}'s");
            assert!(!frame.contains(&line), "{frame}");
        }
    }

    /// A server that answers each `/metrics` with `response_total` of
    /// inbound requests at what `count` holds then, raw.
    async fn counting(count: Arc<AtomicU64>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = format!(
                        "response_total{{direction=\"inbound\",tls=\"true\",\
                         classification=\"success\"}} {}\n",
                        count.load(Relaxed)
                    );
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// A server that holds its first connection without a word and answers
    /// every later `/metrics` with no series.
    async fn silent_once() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answering = admin_answering(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
             content-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut tcp, _)) = listener.accept().await {
                if held.is_empty() {
                    held.push(tcp);
                    continue;
                }
                // Later ones go to a server that answers.
                tokio::spawn(async move {
                    if let Ok(mut answering) = tokio::net::TcpStream::connect(answering).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut answering).await;
                    }
                });
            }
        });
        addr
    }

    /// The RPS column of `name`'s row of the stat table in `frame`.
    fn rps(frame: &str, name: &str) -> f64 {
        frame
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|cells| cells.first() == Some(&name) && cells.get(1) == Some(&"1/1"))
            .and_then(|cells| cells.get(3)?.strip_suffix("rps")?.parse().ok())
            .unwrap_or_else(|| panic!("no RPS for {name} in:\n{frame}"))
    }

    #[tokio::test]
    async fn a_table_after_one_held_up_counts_its_rates_over_the_time_its_counters_cover() {
        // voting's admin server holds the first table's scrape until the
        // table gives up on it, an interval later; web's answered at once.
        // The next table follows at once, and web's counters moved by 100
        // over the interval and more between its two scrapes. Timed from
        // the end of one table's scrapes to the end of the next, that
        // table's window was the few milliseconds of its own scrapes, and
        // web's rate hundreds of times what it was.
        let count = Arc::new(AtomicU64::new(0));
        let metrics = counting(count.clone()).await;
        let target = |name: &str, addr: std::net::SocketAddr| Target {
            name: name.to_owned(),
            addr: addr.to_string(),
        };
        let interval = Duration::from_secs(1);
        let targets = vec![
            target("web", metrics),
            target("emoji", metrics),
            target("voting", silent_once().await),
            target("vote-bot", metrics),
        ];
        let mut watch = Watch::with_targets(targets, String::new(), interval);
        let (calls, denied) = (Outcomes::default(), DeniedCounts::default());

        let held = watch.frame(interval, &calls, &denied).await;
        assert!(held.contains("no metrics from voting's sidecar"), "{held}");
        count.store(100, Relaxed);
        let next = watch.frame(interval * 2, &calls, &denied).await;

        // 100 requests over at least the interval the first table waited.
        let web = rps(&next, "web");
        assert!(web <= 100.0, "{web} rps in:\n{next}");
        // voting answered this time, but has no figures: the row of
        // dashes says why.
        let why = "no figures from voting's sidecar: the table before could not read its metrics";
        assert!(next.contains(why), "{next}");
    }

    #[test]
    fn a_run_stopped_by_hand_shows_its_figures_without_a_verdict() {
        let summary = Summary {
            elapsed: Duration::from_millis(400),
            requests: 0,
            request_failures: 0,
            web_calls: 0,
            effective_success: None,
            retries: Some(0),
            voting_failures: Some(0),
            tls: vec![("web".into(), None)],
            denied_forbidden: 0,
            denied_got_through: 0,
            denied_other: 0,
            breaches: vec![Breach::NoTraffic, Breach::NoDeniedCall],
        };
        let judged = summary.to_string();
        let figures = judged.split_once("): ").unwrap().1;
        assert!(
            judged.starts_with("demo FAILED (web made no calls"),
            "{judged}"
        );
        assert_eq!(
            summary.unjudged().to_string(),
            format!("demo stopped: {figures}")
        );
    }

    #[tokio::test]
    async fn only_the_dashboards_page_is_the_dashboard() {
        let page = answering(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
             content-length: 30\r\nconnection: close\r\n\r\n<title>mesh dashboard</title>\n",
        )
        .await;
        assert_eq!(fetch_dashboard(&page).await, Ok(()));

        let missing =
            answering("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        assert_eq!(
            fetch_dashboard(&missing).await,
            Err("answered 404 Not Found".to_owned())
        );

        let other = answering(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
             content-length: 3\r\nconnection: close\r\n\r\nok\n",
        )
        .await;
        let error = fetch_dashboard(&other).await.unwrap_err();
        assert!(error.contains("something else than its page"), "{error}");
    }
}
