//! The balancer queue and fail-fast gate of a live sidecar: with its one
//! endpoint refusing connections, failure accrual takes it out, requests
//! wait in the queue (`outbound_http_balancer_queue_length`), and after
//! `http_failfast_timeout` the service goes into fail-fast, which `/metrics`
//! shows in Linkerd's gate families.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

/// The value of `family` for `emoji`; `None` when the series is missing.
fn value(metrics: &str, family: &str) -> Option<f64> {
    let series = format!("{family}{{service=\"emoji\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn a_dead_endpoint_shows_a_waiting_request_then_a_shut_gate() {
    let dead = refused_addr().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: 2s\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{dead}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 10m, max_penalty: 10m, jitter: 0}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    ));
    const Q: &str = "outbound_http_balancer_queue";
    // The gate is open from the start, and the timeout is set once a
    // runtime has built its balancer.
    let metrics = scrape_until(sidecar.admin, |m| {
        value(m, &format!("{Q}_gate_timeout_seconds")) == Some(2.0)
    })
    .await;
    assert_eq!(value(&metrics, &format!("{Q}_gate_open_total")), Some(1.0));
    assert_eq!(value(&metrics, &format!("{Q}_gate_shut_total")), Some(0.0));
    assert_eq!(value(&metrics, &format!("{Q}_length")), Some(0.0));
    assert!(value(&metrics, &format!("{Q}_gate_open_time_seconds")).unwrap() > 0.0);
    // TCP balancers have queues of their own.
    assert_eq!(
        value(&metrics, "outbound_tcp_balancer_queue_gate_open_total"),
        Some(1.0),
        "{metrics}"
    );

    let client = http1();
    let get = || {
        Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap()
    };
    // The refused connect is a failure: the endpoint is out for ten
    // minutes, and the next request waits.
    let res = client.request(get()).await.unwrap();
    assert!(res.status().is_server_error(), "{res:?}");
    body_bytes(res).await;
    let waiting = tokio::spawn(client.request(get()));
    let metrics = scrape_until(sidecar.admin, |m| {
        value(m, &format!("{Q}_length")) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&metrics, &format!("{Q}_length")),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(value(&metrics, &format!("{Q}_requests_total")), Some(1.0));

    let res = waiting.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], "service in fail-fast");
    body_bytes(res).await;
    let metrics = scrape(sidecar.admin).await;
    for (family, expected) in [
        ("length", 0.0),
        ("requests_total", 1.0),
        ("latency_seconds_count", 1.0),
        ("gate_open_total", 1.0),
        ("gate_shut_total", 1.0),
        ("gate_open_time_seconds", 0.0),
    ] {
        let family = format!("{Q}_{family}");
        assert_eq!(
            value(&metrics, &family),
            Some(expected),
            "{family}\n{metrics}"
        );
    }
    assert!(value(&metrics, &format!("{Q}_gate_shut_time_seconds")).unwrap() > 0.0);
    // It waited the timeout: at least 2 s, in the bucket up to 3 s.
    assert!(value(&metrics, &format!("{Q}_latency_seconds_sum")).unwrap() >= 2.0);
    assert!(
        metrics.contains(&format!(
            "{Q}_latency_seconds_bucket{{le=\"3.0\",service=\"emoji\"}} 1\n"
        )),
        "{metrics}"
    );
    stop(sidecar).await;
}
