//! The demo's traffic: `vote-bot` driving `web` at a steady rate, as
//! emojivoto's vote bot does, and a call the policy must refuse, made
//! regularly from `emoji`'s sidecar to `voting`.
//!
//! Both send through their own workload's sidecar, so every request in the
//! demo crosses two sidecars over mutual TLS.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header::HOST};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use mesh_core::serve::Shutdown;
use tokio::{
    sync::Semaphore,
    task::JoinSet,
    time::{Interval, MissedTickBehavior},
};

use super::apps::{EMOJI, Outcomes};

/// The most `vote-bot` requests in flight at once. At the demo's rates a
/// handful are; the bound keeps a stalled mesh from piling up tasks.
const MAX_IN_FLIGHT: u32 = 64;

/// How long `vote-bot` waits at the end for the requests in flight, as a
/// sidecar's shutdown grace: a stalled mesh must not keep the demo, and
/// its files, from stopping.
const DRAIN: Duration = Duration::from_secs(5);

/// What the calls the policy must refuse got.
#[derive(Debug, Default)]
pub struct DeniedCounts {
    /// Answered 403.
    pub forbidden: AtomicU64,
    /// Answered with a 2xx: the policy let them through.
    pub got_through: AtomicU64,
    /// Answered with another status, or not at all.
    pub other: AtomicU64,
}

impl DeniedCounts {
    /// Every call made.
    pub fn attempted(&self) -> u64 {
        self.forbidden.load(Relaxed) + self.got_through.load(Relaxed) + self.other.load(Relaxed)
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The `n`th request of `vote-bot`: mostly votes for a random emoji, with
/// listings and leaderboards in between.
fn vote_bot_path(n: u64, rng: &mut fastrand::Rng) -> String {
    match n % 10 {
        0 | 5 => "/api/list".to_owned(),
        7 => "/api/leaderboard".to_owned(),
        _ => {
            let choice = rng.choice(EMOJI).copied().unwrap_or(":joy:");
            format!("/api/vote?choice={choice}")
        }
    }
}

/// The ticks of `rps` requests a second, on one schedule from the first.
///
/// The runtime that polls them also runs the applications, their clients
/// and the tables, so a tick is often seen some milliseconds after it was
/// due. Each tick seen more than 5 ms late used to put the next a whole
/// period after the moment it was seen (tokio's `Delay`), and the lost
/// milliseconds added up: on a busy machine `vote-bot` sent a tenth fewer
/// requests than the rate the demo prints. A late tick now leaves the
/// schedule where it was (`Skip`): the next comes when it was due, and
/// only ticks missed by a whole period are dropped, never sent in a burst
/// (after Ctrl-Z, say).
fn pace(rps: u32) -> Interval {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rps.max(1));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticks
}

/// Sends `rps` requests a second to `web` through `vote-bot`'s sidecar at
/// `outbound`, counting the answers in `counts`, until `stop`; then waits
/// up to five seconds, as a sidecar's shutdown grace, for the requests in
/// flight, and counts those still unanswered as failed.
pub async fn vote_bot(outbound: SocketAddr, rps: u32, stop: Shutdown, counts: Arc<Outcomes>) {
    let client = client();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let mut ticks = pace(rps);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut in_flight = JoinSet::new();
    let stop = stop.wait();
    tokio::pin!(stop);
    for n in 0.. {
        // With every permit out (a stalled mesh), stop still ends the loop.
        let permit = tokio::select! {
            permit = async {
                ticks.tick().await;
                permits.clone().acquire_owned().await
            } => permit,
            () = &mut stop => break,
        };
        let Ok(permit) = permit else {
            break;
        };
        let req = Request::get(format!("http://{outbound}{}", vote_bot_path(n, &mut rng)))
            .header(HOST, "web")
            .body(Empty::new());
        let (client, counts) = (client.clone(), counts.clone());
        in_flight.spawn(async move {
            let _permit = permit;
            let ok = match req {
                Ok(req) => match client.request(req).await {
                    Ok(res) => {
                        let status = res.status();
                        res.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            };
            counts.record(ok);
        });
        // Forget the finished ones; the permits bound the rest.
        while in_flight.try_join_next().is_some() {}
    }
    let drained = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        // Dropping the set aborts them; they were never answered.
        for _ in 0..in_flight.len() {
            counts.record(false);
        }
    }
}

/// Every `every`, votes as `emoji` through its sidecar at `outbound`: a
/// call to `voting` that the policy allows only from `web`, so it must get
/// a 403. Counts the answers in `counts` until `stop`; a call still
/// unanswered then is not counted.
pub async fn trespass(
    outbound: SocketAddr,
    every: Duration,
    stop: Shutdown,
    counts: Arc<DeniedCounts>,
) {
    let client = client();
    let mut ticks = tokio::time::interval(every);
    let stop = stop.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => break,
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{outbound}/api/vote?choice=:see_no_evil:"))
            .header(HOST, "voting")
            .body(Empty::new());
        let status = async {
            match client.request(req.ok()?).await {
                Ok(res) => {
                    let status = res.status();
                    res.into_body().collect().await.ok().map(|_| status)
                }
                Err(_) => None,
            }
        };
        // A stalled mesh never answers: stop ends the wait, uncounted.
        let status = tokio::select! {
            status = status => status,
            () = &mut stop => break,
        };
        let counter = match status {
            Some(StatusCode::FORBIDDEN) => &counts.forbidden,
            Some(s) if s.is_success() => &counts.got_through,
            _ => &counts.other,
        };
        counter.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the thread busy for `busy`, as the demo's other tasks keep
    /// the runtime `vote-bot` shares with them.
    fn work_for(busy: Duration) {
        let until = tokio::time::Instant::now() + busy;
        while tokio::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    #[tokio::test]
    async fn ticks_seen_late_keep_their_schedule() {
        let period = Duration::from_secs(1) / 30;
        let mut ticks = pace(30);
        let first = ticks.tick().await;
        for _ in 0..8 {
            // Busy past the next tick's time: it is seen 10 ms late.
            work_for(period + Duration::from_millis(10));
            let at = ticks.tick().await;
            let offset = (at - first).as_nanos();
            assert_eq!(
                offset % period.as_nanos(),
                0,
                "a tick {offset} ns after the first, off the schedule of one every {period:?}"
            );
        }
    }

    #[test]
    fn vote_bot_mostly_votes() {
        let mut rng = fastrand::Rng::with_seed(1);
        let paths: Vec<String> = (0..10).map(|n| vote_bot_path(n, &mut rng)).collect();
        let votes = paths
            .iter()
            .filter(|p| p.starts_with("/api/vote?choice=:"))
            .count();
        assert_eq!(votes, 7, "{paths:?}");
        assert_eq!(paths[0], "/api/list");
        assert_eq!(paths[7], "/api/leaderboard");
    }
}
