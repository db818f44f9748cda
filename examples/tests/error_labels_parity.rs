//! The `error` labels of refusals and timeouts, as linkerd2-proxy gives
//! them, in `outbound_{http,tcp}_errors_total`, the route families, and
//! the `mesh-error` header.
//!
//! Fail-fast and load shedding: Linkerd's balancer queue fails the
//! requests it holds when fail-fast comes (`FailFastError`: `failfast`,
//! `FAIL_FAST`, `service in fail-fast`), and shuts the gate in front of
//! it, where a `LoadShed` turns every request that comes while the
//! service is in fail-fast away (`LoadShedError`: `loadshed`,
//! `LOAD_SHED`, `service unavailable`). With a zero fail-fast timeout, the
//! first request that finds no endpoint is the one that fails fast.
//! Opaque TCP connections are queued, and counted, the same way.
//!
//! A caller's deadline (`mesh-deadline`, `grpc-timeout`) nearer than the
//! route's timeouts ends a request as its stream deadline: Linkerd labels
//! its expiry `REQUEST_TIMEOUT` in the route's family and the backend's,
//! whatever timeouts the route has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, StatusCode, Version};
use mesh_examples::sidecar::Running;
use support::*;
use tokio::{io::AsyncWriteExt, net::TcpStream};

/// An `HTTPRoute` of `emoji` for every request, without timeouts.
const EMOJI_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-all, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
";

/// Endpoints are taken out at their first failure, for ten minutes.
const ACCRUAL: &str = "      failure_accrual: {max_failures: 1, min_penalty: 10m, \
                       max_penalty: 10m, jitter: 0}\n";

/// A sidecar on one runtime (one queue per service) whose `emoji` (HTTP,
/// with [`EMOJI_ROUTE`]) and `db` (a TCP port) have endpoints that refuse
/// connections, taken out at their first failure, with `failfast` as
/// both fail-fast timeouts.
fn refusing(dir: &tempfile::TempDir, failfast: &str) -> Running {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, EMOJI_ROUTE).unwrap();
    let (emoji, db) = (refused_port(), refused_port());
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         \x20 http_failfast_timeout: {failfast}\n  tcp_failfast_timeout: {failfast}\n\
         \x20 services:\n\
         \x20   - name: emoji\n      endpoints: [127.0.0.1:{emoji}]\n{ACCRUAL}\
         \x20   - name: db\n      endpoints: [127.0.0.1:{db}]\n{ACCRUAL}\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ))
}

/// The status and `mesh-error` of the answer to `GET http://emoji/`.
async fn get(sidecar: &Running) -> (StatusCode, Option<String>) {
    let (status, error, _) = upstreams::get(sidecar.outbound, "/").await;
    (status, error)
}

/// Opens a connection to the TCP port of `db` and waits until the
/// sidecar closes it (or resets it).
async fn closed_tcp(sidecar: &Running) {
    let mut tcp = TcpStream::connect(sidecar.outbound_ports[0]).await.unwrap();
    let _ = tcp.write_all(b"hello").await;
    assert!(read_to_close(&mut tcp).await.is_empty());
}

const FAILFAST: (StatusCode, Option<&str>) = (
    StatusCode::SERVICE_UNAVAILABLE,
    Some("service in fail-fast"),
);
const SHED: (StatusCode, Option<&str>) =
    (StatusCode::SERVICE_UNAVAILABLE, Some("service unavailable"));

fn answer(got: &(StatusCode, Option<String>)) -> (StatusCode, Option<&str>) {
    (got.0, got.1.as_deref())
}

const ROUTE_HTTP: &str = "outbound_http_route_request_statuses_total";
const BACKEND_HTTP: &str = "outbound_http_route_backend_response_statuses_total";

/// What `outbound_http_errors_total`, `outbound_tcp_errors_total` and the
/// route's and backend's families counted with `error` (Linkerd's
/// lower-case value) and `label` (its route families' upper-case one).
fn refusals(metrics: &str, error: &str, label: &str) -> [u64; 4] {
    let error = format!("error=\"{error}\"");
    let label = format!("http_status=\"503\",error=\"{label}\"");
    [
        series(metrics, "outbound_http_errors_total", &[&error]),
        series(metrics, "outbound_tcp_errors_total", &[&error]),
        route_sample(metrics, ROUTE_HTTP, "emoji-all", &label).unwrap_or(0),
        route_sample(metrics, BACKEND_HTTP, "emoji-all", &label).unwrap_or(0),
    ]
}

/// Checks that the refusals were counted once as fail-fast and once as
/// load shedding in every family.
async fn counted_once_each(sidecar: &Running) {
    let once = [1; 4];
    let metrics = scrape_until(sidecar.admin, |m| {
        refusals(m, "failfast", "FAIL_FAST") == once && refusals(m, "loadshed", "LOAD_SHED") == once
    })
    .await;
    assert_eq!(
        refusals(&metrics, "failfast", "FAIL_FAST"),
        once,
        "{metrics}"
    );
    assert_eq!(
        refusals(&metrics, "loadshed", "LOAD_SHED"),
        once,
        "{metrics}"
    );
}

/// Sends a request for `emoji` and opens a connection to `db` through a
/// [`refusing`] sidecar with `failfast` as its fail-fast timeouts, which
/// take their endpoints out; then two more of each, of which the first
/// fails fast and the second is shed; and checks what was counted.
async fn fails_fast_then_sheds(failfast: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = refusing(&dir, failfast);
    // The refused connects take the endpoints out.
    assert_eq!(
        answer(&get(&sidecar).await),
        (StatusCode::BAD_GATEWAY, Some("upstream connect error"))
    );
    closed_tcp(&sidecar).await;
    assert_eq!(answer(&get(&sidecar).await), FAILFAST);
    assert_eq!(answer(&get(&sidecar).await), SHED);
    closed_tcp(&sidecar).await;
    closed_tcp(&sidecar).await;
    counted_once_each(&sidecar).await;
    stop(sidecar).await;
}

#[tokio::test]
async fn a_zero_failfast_timeout_fails_the_first_fast_and_sheds_the_next() {
    // None ready: the first request brings fail-fast, the next is shed.
    fails_fast_then_sheds("0s").await;
}

#[tokio::test]
async fn the_requests_waiting_fail_fast_and_those_that_come_in_fail_fast_are_shed() {
    // The first after the refusal waits the timeout, and fails fast; the
    // next comes in fail-fast, and is shed.
    fails_fast_then_sheds("500ms").await;
}

/// Routes of `emoji` by `x-case`, each for plain requests and gRPC calls
/// alike: `per-try`, whose attempts' timeout is an hour and which has no
/// request timeout; `both`, with a request timeout of two hours besides;
/// `bare`, without timeouts.
const DEADLINE_ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-per-try, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: per-try}]}]
    timeouts: {backendRequest: 1h}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-both, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: both}]}]
    timeouts: {request: 2h, backendRequest: 1h}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-bare, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: bare}]}]
";

/// Sends a plain request and a gRPC call to `/hold` on `case`'s route,
/// with a deadline of 300 ms, and expects the mesh's timeout answer to
/// each.
async fn both_time_out(outbound: SocketAddr, case: &str) {
    let plain = Request::get("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("x-case", case)
        .header("mesh-deadline", "300")
        .body(full(""))
        .unwrap();
    let call = Request::post("http://emoji/hold")
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-case", case)
        .header("grpc-timeout", "300m")
        .body(full(""))
        .unwrap();
    // Bounded, so that a deadline not kept fails the test.
    let bound = Duration::from_secs(30);
    let res = tokio::time::timeout(bound, h2_via(outbound, plain))
        .await
        .expect("the caller's deadline ends the request")
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT, "{case}");
    let res = tokio::time::timeout(bound, h2_via(outbound, call))
        .await
        .expect("the caller's deadline ends the call")
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "4", "{case}");
}

#[tokio::test]
async fn a_callers_nearer_deadline_is_request_timeout_in_the_route_and_backend_families() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _gate) = backend().await;
    let sidecar = sidecar(&emoji_routes_yaml(dir.path(), backend, DEADLINE_ROUTES, 2));
    let routes = ["emoji-per-try", "emoji-both", "emoji-bare"];
    for case in ["per-try", "both", "bare"] {
        both_time_out(sidecar.outbound, case).await;
    }
    let once = [Some(1); 4];
    let metrics = scrape_until(sidecar.admin, |m| {
        routes
            .iter()
            .all(|route| timeouts_counted(m, route, "REQUEST_TIMEOUT") == once)
    })
    .await;
    for route in routes {
        assert_eq!(
            timeouts_counted(&metrics, route, "REQUEST_TIMEOUT"),
            once,
            "{route}: {metrics}"
        );
    }
    assert!(!metrics.contains("RESPONSE_HEADERS_TIMEOUT"), "{metrics}");
    assert!(!metrics.contains("error=\"CANCEL\""), "{metrics}");
    stop(sidecar).await;
}
