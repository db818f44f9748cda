//! The balancer gauges of a live sidecar: `/metrics` counts each outbound
//! service's endpoints by state (`ready`, `failing`, `probing`) as failure
//! accrual takes one out and lets it back, once per service whatever the
//! number of runtimes. How a DNS answer changes the counts is tested
//! beside the resolver loop (`sidecar::outbound::endpoints`), where the
//! answers can be written; here a name resolves through `/etc/hosts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HTTP: &str = "outbound_http_balancer_endpoints";
const TCP: &str = "outbound_tcp_balancer_endpoints";

/// The value of `family` for `service` in `state`; `None` when the
/// series is missing.
fn gauge(metrics: &str, family: &str, service: &str, state: &str) -> Option<u64> {
    let series = format!("{family}{{service=\"{service}\",endpoint_state=\"{state}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map(|value| value.parse().unwrap())
}

/// `service`'s endpoints in `family` as (ready, failing, probing).
fn states(metrics: &str, family: &str, service: &str) -> (u64, u64, u64) {
    let get = |state| gauge(metrics, family, service, state).unwrap_or_else(|| panic!("{metrics}"));
    (get("ready"), get("failing"), get("probing"))
}

/// An application that answers `ok`, or `503` while `failing` is set.
async fn switchable_app(failing: Arc<AtomicBool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, move |_| {
        let failing = failing.load(Ordering::Relaxed);
        async move {
            let mut res = Response::new(full("ok"));
            if failing {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok(res)
        }
    });
    addr
}

#[tokio::test]
async fn an_endpoint_that_fails_is_counted_failing_then_probing_then_ready_again() {
    let failing = Arc::new(AtomicBool::new(true));
    let flaky = switchable_app(failing.clone()).await;
    let live = ok_app(false).await;
    // Two runtimes: each has its own HTTP and TCP balancers of emoji.
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{flaky}, {live}]\n\
         \x20     failure_accrual: {{max_failures: 2, min_penalty: 1s, max_penalty: 1s, jitter: 0}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    ));
    // Each runtime builds its balancers once it serves, after the sidecar
    // has started, which a busy machine may not have got to yet.
    let metrics = scrape_until(sidecar.admin, |metrics| {
        [HTTP, TCP]
            .iter()
            .all(|family| gauge(metrics, family, "emoji", "ready").is_some())
    })
    .await;
    assert_eq!(
        states(&metrics, HTTP, "emoji"),
        (2, 0, 0),
        "not once per runtime"
    );
    assert_eq!(
        states(&metrics, TCP, "emoji"),
        (2, 0, 0),
        "not once per runtime"
    );

    // One client connection, so one runtime: its balancer sends the
    // flaky endpoint requests until two in a row fail and take it out,
    // for a second.
    let client = http1();
    let get = || {
        Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap()
    };
    let mut out = None;
    for _ in 0..200 {
        let res = client.request(get()).await.unwrap();
        body_bytes(res).await;
        let metrics = scrape(sidecar.admin).await;
        if gauge(&metrics, HTTP, "emoji", "ready") == Some(1) {
            out = Some(metrics);
            break;
        }
    }
    let metrics = out.expect("two failures in a row in 200 requests");
    assert_eq!(states(&metrics, HTTP, "emoji"), (1, 1, 0), "{metrics}");
    // Still two endpoints; the TCP balancers saw no failure.
    assert!(
        metrics.contains("outbound_endpoints{service=\"emoji\"} 2"),
        "{metrics}"
    );
    assert_eq!(states(&metrics, TCP, "emoji"), (2, 0, 0));

    // It recovers. Once its penalty is over it is on probation, with no
    // request needed to say so.
    failing.store(false, Ordering::Relaxed);
    let mut probation = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let metrics = scrape(sidecar.admin).await;
        if gauge(&metrics, HTTP, "emoji", "failing") == Some(0) {
            probation = Some(metrics);
            break;
        }
    }
    let metrics = probation.expect("the penalty of a second ends");
    assert_eq!(states(&metrics, HTTP, "emoji"), (1, 0, 1), "{metrics}");

    // The next request drawn to it is its probe, which succeeds: it is back.
    let mut back = false;
    for _ in 0..200 {
        let res = client.request(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        body_bytes(res).await;
        if states(&scrape(sidecar.admin).await, HTTP, "emoji") == (2, 0, 0) {
            back = true;
            break;
        }
    }
    assert!(
        back,
        "no probe reached the recovered endpoint in 200 requests"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_tcp_port_whose_endpoint_refuses_counts_it_failing_under_tcp_only() {
    let refused = refused_addr().await;
    let live = ok_app(false).await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{refused}, {live}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 1m}}\n\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    ));
    // Connections land on either runtime; whichever draws the refusing
    // endpoint first takes it out.
    let mut out = None;
    for _ in 0..200 {
        // Bytes no HTTP server takes, then the end: the live endpoint
        // closes at once, and the sidecar closes a connection it could not
        // forward.
        let mut tcp = tokio::net::TcpStream::connect(sidecar.outbound_ports[0])
            .await
            .unwrap();
        let _ = tcp.write_all(b"\x00\r\n\r\n").await;
        let _ = tcp.shutdown().await;
        let mut back = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut back));
        let _ = ended.await.expect("the connection ends");
        let metrics = scrape(sidecar.admin).await;
        if gauge(&metrics, TCP, "db", "failing") == Some(1) {
            out = Some(metrics);
            break;
        }
    }
    let metrics = out.expect("a connection drawn to the refusing endpoint in 200");
    assert_eq!(states(&metrics, TCP, "db"), (1, 1, 0), "{metrics}");
    // HTTP requests have balancers of their own, which saw nothing.
    assert_eq!(states(&metrics, HTTP, "db"), (2, 0, 0), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_service_by_name_counts_the_addresses_its_name_resolves_to() {
    let live = ok_app(false).await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [localhost:{}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        live.port()
    ));
    let resolved = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("outbound_endpoints{service=\"emoji\"} "))
            .map(|n| n.parse::<u64>().unwrap())
    };
    // The name is looked up on tokio's blocking pool once the sidecar has
    // started, and the balancers hear of the answer after: a busy machine
    // may take a while over both, so the counts are read once they agree.
    let settled = |metrics: &str| {
        resolved(metrics).is_some_and(|n| {
            n > 0
                && [HTTP, TCP]
                    .iter()
                    .all(|family| gauge(metrics, family, "emoji", "ready") == Some(n))
        })
    };
    let mut metrics = scrape(sidecar.admin).await;
    for _ in 0..200 {
        if settled(&metrics) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics = scrape(sidecar.admin).await;
    }
    let resolved = resolved(&metrics).expect("the endpoints gauge");
    // localhost is 127.0.0.1, and maybe ::1.
    assert!((1..=2).contains(&resolved), "{metrics}");
    for family in [HTTP, TCP] {
        assert_eq!(
            states(&metrics, family, "emoji"),
            (resolved, 0, 0),
            "{metrics}"
        );
    }
    stop(sidecar).await;
}
