//! A traffic split with a zero fail-fast timeout: the first request drawn
//! to a backend with no endpoint ready fails fast and puts the backend in
//! fail-fast, so that the split passes it over from then on, without
//! shedding anything; once its endpoint's penalty is over, a request
//! drawn to it probes it, and, the endpoint back, it takes its share
//! again. Its gate shut once and opened once, as Linkerd's would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_examples::sidecar::Running;
use support::*;

/// An application that answers each request with `name`.
fn answering(listener: tokio::net::TcpListener, name: &'static str) {
    serve(listener, move |_: Request<Incoming>| async move {
        Ok(Response::new(full(name)))
    });
}

/// A sidecar whose `emoji` route splits 1:1 between `emoji` and
/// `emoji-v2` (at `v2`), the latter's endpoint out for 2 s at its first
/// failure, with a zero fail-fast timeout, on one runtime.
fn start(dir: &tempfile::TempDir, emoji: SocketAddr, v2: SocketAddr) -> Running {
    let accrual =
        "      failure_accrual: {max_failures: 1, min_penalty: 2s, max_penalty: 2s, jitter: 0}\n";
    upstreams::split_sidecar(dir.path(), "0s", emoji, v2, accrual, 1)
}

/// The first answer to a request for `emoji` other than `served`: that
/// of the first request drawn to `emoji-v2`, within 200.
async fn drawn_to_v2(
    outbound: SocketAddr,
    served: &(StatusCode, Option<String>, String),
) -> (StatusCode, Option<String>, String) {
    for _ in 0..200 {
        let got = upstreams::get(outbound, "/").await;
        if got != *served {
            return got;
        }
    }
    panic!("no request was drawn to emoji-v2");
}

fn gate(metrics: &str, change: &str) -> u64 {
    series(
        metrics,
        &format!("outbound_http_balancer_queue_gate_{change}_total"),
        &["service=\"emoji-v2\""],
    )
}

#[tokio::test]
async fn with_a_zero_timeout_a_backend_is_passed_over_after_its_first_refusal_and_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let emoji = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emoji_addr = emoji.local_addr().unwrap();
    answering(emoji, "emoji");
    let v2 = refused_addr().await;
    let sidecar = start(&dir, emoji_addr, v2);
    let served = (StatusCode::OK, None, "emoji".to_owned());
    // Until a request is drawn to `emoji-v2`: its refused connect takes
    // the endpoint out.
    let got = drawn_to_v2(sidecar.outbound, &served).await;
    assert_eq!(got.0, StatusCode::BAD_GATEWAY, "{got:?}");
    // The next one drawn to it finds no endpoint ready: with a zero
    // timeout, it fails fast, and the backend is in fail-fast.
    let in_failfast = Some("service in fail-fast".to_owned());
    assert_eq!(
        drawn_to_v2(sidecar.outbound, &served).await,
        (StatusCode::SERVICE_UNAVAILABLE, in_failfast, String::new())
    );
    // Passed over from then on: nothing is shed.
    for _ in 0..20 {
        assert_eq!(upstreams::get(sidecar.outbound, "/").await, served);
    }
    let metrics = scrape(sidecar.admin).await;
    assert_eq!((gate(&metrics, "open"), gate(&metrics, "shut")), (1, 1));
    // The endpoint comes back; after its penalty the split sends it a
    // request again, which probes it, and it takes its share again.
    let listener = tokio::net::TcpListener::bind(v2).await.unwrap();
    answering(listener, "emoji-v2");
    let start = tokio::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "emoji-v2 was never taken again"
        );
        let got = upstreams::get(sidecar.outbound, "/").await;
        if got.2 == "emoji-v2" {
            break;
        }
        assert_eq!(got, served);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = scrape(sidecar.admin).await;
    assert_eq!((gate(&metrics, "open"), gate(&metrics, "shut")), (2, 1));
    stop(sidecar).await;
}
