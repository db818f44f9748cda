//! `top`'s window: the time between the two reads of each frame's
//! counters, however long a round of scrapes waited on a target that did
//! not answer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::HashSet,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::admin_stub::read_head;
use mesh_metrics::query::{Format, Target, top};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    time::Instant,
};

async fn answer(tcp: &mut TcpStream, body: &str) {
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
}

/// An admin server whose inbound route has answered 10 more requests at
/// each scrape; returns its address and when each scrape came.
async fn counting_admin() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                if !read_head(&mut tcp).await {
                    return;
                }
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Instant::now());
                    seen.len() - 1
                };
                let body = format!(
                    "response_total{{direction=\"inbound\",srv_name=\"web-http\",\
                     route_name=\"get\",classification=\"success\"}} {}\n# EOF\n",
                    10 * n
                );
                answer(&mut tcp, &body).await;
            });
        }
    });
    (addr, times)
}

/// An admin server that takes the scrapes numbered in `silent` (from 0)
/// and never answers them; it answers the others with no samples.
async fn stalling_admin(silent: &'static [usize]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent: HashSet<usize> = silent.iter().copied().collect();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for n in 0.. {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            if silent.contains(&n) {
                held.push(tcp);
                continue;
            }
            tokio::spawn(async move {
                if read_head(&mut tcp).await {
                    answer(&mut tcp, "# EOF\n").await;
                }
            });
        }
    });
    addr
}

/// The frames `top` writes as JSON.
async fn frames(targets: &[Target], interval: Duration, n: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    top::run(
        &mut out,
        targets,
        interval,
        Format::Json,
        NonZeroUsize::new(n),
    )
    .await
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The RPS of `web`'s route in `frame`.
fn web_rps(frame: &serde_json::Value) -> Option<f64> {
    let routes = frame["routes"].as_array().unwrap();
    let web = routes.iter().find(|r| r["workload"] == "web").unwrap();
    web["rps"].as_f64()
}

#[tokio::test(start_paused = true)]
async fn a_round_held_up_by_a_silent_target_does_not_skew_the_next_frames_rate() {
    // `vote` answers the first round, takes the second and never answers
    // it (until the scrape times out, 5 s later), then answers again.
    // `web` answers every round at once, 10 requests more each time. Its
    // frames must count those 10 over the time between its two scrapes:
    // measured from the end of one round to the end of the next, the
    // first frame's window was 6 s for a 1 s interval (a rate of 1.7 for
    // 10), and the second's, whose round began as soon as the late one
    // ended, was 0 (no rate at all, `null`). Nor may the rounds then
    // catch up on the intervals the late one missed: each would cover the
    // few instants since the one before, and read a rate from one request
    // or none (here 0 s again, and `null`).
    let (web, times) = counting_admin().await;
    let vote = stalling_admin(&[1]).await;
    let targets = Target::parse_list(&format!("web={web},vote={vote}")).unwrap();
    let frames = frames(&targets, Duration::from_secs(1), 3).await;
    let times = times.lock().unwrap().clone();
    assert_eq!(frames.len(), 3);
    assert_eq!(times.len(), 4);
    for (i, frame) in frames.iter().enumerate() {
        let between = (times[i + 1] - times[i]).as_secs_f64();
        let rps = web_rps(frame);
        assert!(
            rps.is_some_and(|rps| (rps * between - 10.0).abs() < 1e-9),
            "frame {i}: rps {rps:?} for 10 requests in {between}s: {frame}"
        );
        let window = frame["window_seconds"].as_f64().unwrap();
        assert!((window - between).abs() < 1e-9, "frame {i}: {frame}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_target_in_the_first_round_does_not_skew_the_first_frame() {
    // The first round waits the scrape's timeout for `vote`: the first
    // frame's window starts when `web` was read, not when `vote` gave up.
    let (web, times) = counting_admin().await;
    let vote = stalling_admin(&[0]).await;
    let targets = Target::parse_list(&format!("web={web},vote={vote}")).unwrap();
    let frames = frames(&targets, Duration::from_secs(1), 1).await;
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let between = (times[1] - times[0]).as_secs_f64();
    let rps = web_rps(&frames[0]);
    assert!(
        rps.is_some_and(|rps| (rps * between - 10.0).abs() < 1e-9),
        "rps {rps:?} for 10 requests in {between}s: {}",
        frames[0]
    );
}
