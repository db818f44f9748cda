//! A request its Server's `HTTPLocalRateLimitPolicy` refused is counted
//! in `inbound_http_errors_total`, as linkerd2-proxy counts it (its error
//! layer wraps its policy, and a rate limit's error is not one of the
//! policy errors it leaves out): once, under `error="rate limited"`, with
//! the target and the Server, `srv_port` included. Like a denial, it is
//! not in `request_total` or `response_total`, which count the requests
//! the Server let through.
//!
//! The sidecar runs on the real clock, so the test does not assume how
//! many requests the limit (one a second) lets through: it sends until
//! two were refused, and checks that the families count what it saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::*;

const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web-http, namespace: emojivoto }
spec:
  podSelector: { matchLabels: { app: emoji } }
  port: http
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: { name: web-limit, namespace: emojivoto }
spec:
  targetRef: { group: policy.linkerd.io, kind: Server, name: web-http }
  total: { requestsPerSecond: 1 }
";

#[tokio::test]
async fn a_rate_limited_request_is_an_inbound_error_of_its_server_and_not_a_response() {
    let app = ok_app(false).await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    let inbound = sidecar.inbound[0];

    let mut served = 0_u64;
    let mut limited = 0_u64;
    // At one a second, a burst of a few requests meets the limit; the
    // bound only keeps a stalled machine from looping on.
    for _ in 0..50 {
        let answer = raw_exchange(
            inbound,
            "GET / HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            served += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
            assert!(
                answer.contains("total rate limit exceeded: 1rps"),
                "{answer}"
            );
            limited += 1;
            if limited == 2 {
                break;
            }
        }
    }
    assert_eq!(limited, 2, "{served} served, {limited} limited");

    let metrics = scrape(sidecar.admin).await;
    let port = app.port();
    let ip = inbound.ip();
    let line = format!(
        "inbound_http_errors_total{{error=\"rate limited\",target_addr=\"{ip}:{port}\",\
         target_ip=\"{ip}\",target_port=\"{port}\",srv_group=\"policy.linkerd.io\",\
         srv_kind=\"server\",srv_name=\"web-http\",srv_port=\"{port}\"}} {limited}\n"
    );
    assert!(metrics.contains(&line), "no {line} in {metrics}");
    assert_eq!(
        series(&metrics, "inbound_http_errors_total", &[]),
        limited,
        "{metrics}"
    );
    // Counted once: not as a response, nor as a request the Server let
    // through.
    assert!(!metrics.contains("status_code=\"429\""), "{metrics}");
    assert_eq!(
        series(&metrics, "request_total", &["direction=\"inbound\""]),
        served,
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "response_total", &["direction=\"inbound\""]),
        served,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "inbound_http_local_ratelimit_total",
            &["srv_name=\"web-http\""]
        ),
        limited,
        "{metrics}"
    );
    stop(sidecar).await;
}
