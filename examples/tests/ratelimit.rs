//! A Server's `HTTPLocalRateLimitPolicy` enforced by a live sidecar: a
//! burst of requests beyond the total rate gets 429s, the ones within it
//! reach the application.
//!
//! This runs on the real clock, so the numbers leave room for timing: at
//! 5 requests per second, 40 requests sent at once can earn at most the
//! 5 of the burst plus 5 more for every second the burst takes to send.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

const RATE: usize = 5;
const SENT: usize = 40;

fn policy() -> String {
    "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web-http, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  port: http
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: { name: web-limit, namespace: shop }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: web-http }
  total: { requestsPerSecond: 5 }
"
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_total_rate_gets_429s_and_the_rest_reach_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, policy()).unwrap();
    let app = ok_app(false).await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: shop\n    labels: {{app: web}}\n\
         \x20   ports: {{http: {}}}\n  files: [{}]\n",
        app.port(),
        policy_file.display(),
    ));
    let inbound = running.inbound[0];

    let client = http1();
    let started = tokio::time::Instant::now();
    let requests = (0..SENT).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let req = Request::get(format!("http://{inbound}/"))
                .body(full(""))
                .unwrap();
            let res = client.request(req).await.unwrap();
            let error = res.headers().get("mesh-error").cloned();
            let status = res.status();
            let body = body_bytes(res).await;
            (status, error, body)
        })
    });
    let mut ok = 0;
    let mut limited = 0;
    for request in requests.collect::<Vec<_>>() {
        let (status, error, body) = request.await.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(body, "ok");
                ok += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(error.unwrap(), "total rate limit exceeded: 5rps");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Its idle connections would hold the sidecar's drain open.
    drop(client);
    // What the limit could have earned while the burst was sent, plus one.
    let allowed = RATE + (elapsed * RATE as f64).ceil() as usize + 1;
    // The limit starts full, so the first five always fit.
    assert!(
        ok >= RATE && ok <= allowed,
        "{ok} succeeded in {elapsed:.2}s"
    );
    assert!(
        limited >= 20,
        "only {limited} were limited in {elapsed:.2}s"
    );

    let metrics = scrape(running.admin).await;
    let counted: usize = metrics
        .lines()
        .filter(|l| {
            l.starts_with("inbound_http_local_ratelimit_total{")
                && l.contains(r#"srv_name="web-http""#)
                && l.contains(r#"ratelimit_name="web-limit""#)
                && l.contains(r#"ratelimit_scope="total""#)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(counted, limited, "{metrics}");
    stop(running).await;
}
