//! Which deadline ended an attempt on a route with a request timeout, as
//! the backend families label it, when the caller sends a deadline of its
//! own (`mesh-deadline` on a plain request, `grpc-timeout` on a gRPC call).
//!
//! The route's stack holds the request to the nearer of the route's timeout
//! and the caller's, and writes what is left of it into each attempt's
//! deadline header, retries included; a backend's counter reads it back. An
//! attempt that deadline ends is `REQUEST_TIMEOUT`, whichever of the two it
//! was: the deadline the attempt really ran under, as linkerd2-proxy makes
//! a caller's `l5d-timeout` the route's stream deadline, whose expiry it
//! labels `REQUEST_TIMEOUT` too. An attempt whose caller goes away before
//! it is `CANCEL`, and so is one whose caller sent the other kind's header,
//! which the stack does not read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;
use tokio::sync::Notify;

/// Routes by `x-case`: `patient`, whose request timeout is an hour, and
/// `deadline`, whose request timeout is a second (long enough for a failed
/// first attempt and its backoff on a loaded machine); each an `HTTPRoute` of
/// `emoji` retrying `5xx` once, and a `GRPCRoute` of `voting` (a service
/// is served one kind or the other) retrying `UNAVAILABLE` once.
const ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: emoji-patient
  namespace: emojivoto
  annotations: {retry.linkerd.io/http: 5xx}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: patient}]}]
    timeouts: {request: 1h}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: emoji-deadline
  namespace: emojivoto
  annotations: {retry.linkerd.io/http: 5xx}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{headers: [{name: x-case, value: deadline}]}]
    timeouts: {request: 1s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: voting-patient
  namespace: emojivoto
  annotations: {retry.linkerd.io/grpc: unavailable, timeout.linkerd.io/request: 1h}
spec:
  parentRefs: [{group: core, kind: Service, name: voting, port: 8080}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}, headers: [{name: x-case, value: patient}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: voting-deadline
  namespace: emojivoto
  annotations: {retry.linkerd.io/grpc: unavailable, timeout.linkerd.io/request: 1s}
spec:
  parentRefs: [{group: core, kind: Service, name: voting, port: 8080}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}, headers: [{name: x-case, value: deadline}]}]
";

/// A plaintext sidecar whose outbound `emoji` and `voting` are `backend`,
/// with [`ROUTES`].
fn config(dir: &tempfile::TempDir, backend: SocketAddr) -> String {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, ROUTES).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{backend}]\n\
         \x20   - name: voting\n      endpoints: [{backend}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// Each attempt the application saw: its `x-case`, its path, and its
/// deadline header (`grpc-timeout` on a gRPC call, `mesh-deadline` on
/// another), if any.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// The application: a path ending in `Flaky` fails its first attempt of
/// each case (`503`, or a trailers-only `UNAVAILABLE` for a gRPC call),
/// which the route retries; any other attempt is never answered, and
/// notifies `arrived` once the application has it.
async fn app() -> (SocketAddr, Seen, Arc<Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let arrived = Arc::new(Notify::new());
    let tries = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let (log, notify) = (seen.clone(), arrived.clone());
    serve(listener, move |req: Request<Incoming>| {
        let (log, notify, tries) = (log.clone(), notify.clone(), tries.clone());
        async move {
            let grpc = req
                .headers()
                .get("content-type")
                .is_some_and(|ct| ct == "application/grpc");
            let name = if grpc {
                "grpc-timeout"
            } else {
                "mesh-deadline"
            };
            let header = req
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned());
            let case = req.headers()["x-case"].to_str().unwrap().to_owned();
            let path = req.uri().path().to_owned();
            log.lock()
                .unwrap()
                .push((case.clone(), path.clone(), header));
            req.into_body().collect().await?;
            let n = {
                let mut tries = tries.lock().unwrap();
                let n = tries.entry(format!("{case} {path}")).or_default();
                *n += 1;
                *n
            };
            if path.ends_with("Flaky") && n == 1 {
                let mut res = Response::new(full(""));
                if grpc {
                    let headers = res.headers_mut();
                    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
                    headers.insert("grpc-status", HeaderValue::from_static("14"));
                } else {
                    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                }
                return Ok(res);
            }
            notify.notify_one();
            std::future::pending().await
        }
    });
    (addr, seen, arrived)
}

/// A plain request on `case`'s route to `path`, with `headers`.
fn plain(case: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get(format!("http://emoji{path}"))
        .version(Version::HTTP_2)
        .header("x-case", case);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(full("")).unwrap()
}

/// A gRPC call on `case`'s route to `method`, with `headers`.
fn grpc_call(case: &str, method: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::post(format!("http://voting/emojivoto.v1.EmojiService/{method}"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("x-case", case);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(full("")).unwrap()
}

const BACKEND_HTTP: &str = "outbound_http_route_backend_response_statuses_total";
const BACKEND_GRPC: &str = "outbound_grpc_route_backend_response_statuses_total";

/// What the backend families counted with `error` for the plain requests
/// of `route` and the gRPC calls of `calls`.
fn backend_counts(metrics: &str, route: &str, calls: &str, error: &str) -> [Option<u64>; 2] {
    let error = format!("error=\"{error}\"");
    [
        route_sample(
            metrics,
            BACKEND_HTTP,
            route,
            &format!("http_status=\"\",{error}"),
        ),
        route_sample(
            metrics,
            BACKEND_GRPC,
            calls,
            &format!("grpc_status=\"UNKNOWN\",{error}"),
        ),
    ]
}

/// Sends `req` and expects the mesh's timeout answer to it.
async fn times_out(outbound: SocketAddr, req: Request<Body>) {
    let grpc = req.headers().contains_key("content-type");
    let res = h2_via(outbound, req).await.unwrap();
    if grpc {
        assert_eq!(res.headers()["grpc-status"], "4");
    } else {
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}

/// Every attempt of `case` carried a deadline header, of at most `most`
/// milliseconds.
fn every_attempt_carried_a_deadline(seen: &Seen, case: &str, attempts: usize, most: u64) {
    let seen = seen.lock().unwrap();
    let of_case: Vec<_> = seen.iter().filter(|(c, ..)| c == case).collect();
    assert_eq!(of_case.len(), attempts, "{seen:?}");
    for (_, path, header) in of_case {
        let header = header
            .as_deref()
            .unwrap_or_else(|| panic!("{path}: none in {seen:?}"));
        let millis = match header.strip_suffix(['n', 'u', 'm']) {
            Some(n) if header.ends_with('n') => n.parse::<u64>().unwrap() / 1_000_000,
            Some(n) if header.ends_with('u') => n.parse::<u64>().unwrap() / 1_000,
            Some(n) => n.parse().unwrap(),
            None => header.parse().unwrap(),
        };
        assert!(millis <= most, "{path}: {header} in {seen:?}");
    }
}

#[tokio::test]
async fn an_attempt_ended_by_the_callers_nearer_deadline_is_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen, _arrived) = app().await;
    let sidecar = sidecar(&config(&dir, backend));
    let outbound = sidecar.outbound;

    // The route gives an hour, the caller a second: the first attempt, and
    // a retry after a failed one, run out of the caller's time.
    let mesh = [("mesh-deadline", "1000")];
    let grpc = [("grpc-timeout", "1000m")];
    times_out(outbound, plain("patient", "/hold", &mesh)).await;
    times_out(outbound, grpc_call("patient", "Hold", &grpc)).await;
    times_out(outbound, plain("patient", "/Flaky", &mesh)).await;
    times_out(outbound, grpc_call("patient", "Flaky", &grpc)).await;

    let route = ("emoji-patient", "voting-patient");
    let metrics = scrape_until(sidecar.admin, |m| {
        backend_counts(m, route.0, route.1, "REQUEST_TIMEOUT") == [Some(2); 2]
    })
    .await;
    assert_eq!(
        backend_counts(&metrics, route.0, route.1, "REQUEST_TIMEOUT"),
        [Some(2); 2],
        "{metrics}"
    );
    assert!(!metrics.contains("error=\"CANCEL\""), "{metrics}");
    every_attempt_carried_a_deadline(&seen, "patient", 6, 1000);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_attempt_ended_by_the_routes_nearer_deadline_is_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen, _arrived) = app().await;
    let sidecar = sidecar(&config(&dir, backend));
    let outbound = sidecar.outbound;

    // The caller gives an hour, the route a second; and a caller that
    // sends no deadline.
    let mesh = [("mesh-deadline", "3600000")];
    let grpc = [("grpc-timeout", "1H")];
    times_out(outbound, plain("deadline", "/hold", &mesh)).await;
    times_out(outbound, grpc_call("deadline", "Hold", &grpc)).await;
    times_out(outbound, plain("deadline", "/Flaky", &mesh)).await;
    times_out(outbound, grpc_call("deadline", "Flaky", &grpc)).await;
    times_out(outbound, plain("deadline", "/hold", &[])).await;
    times_out(outbound, grpc_call("deadline", "Hold", &[])).await;

    let route = ("emoji-deadline", "voting-deadline");
    let metrics = scrape_until(sidecar.admin, |m| {
        backend_counts(m, route.0, route.1, "REQUEST_TIMEOUT") == [Some(3); 2]
    })
    .await;
    assert_eq!(
        backend_counts(&metrics, route.0, route.1, "REQUEST_TIMEOUT"),
        [Some(3); 2],
        "{metrics}"
    );
    assert!(!metrics.contains("error=\"CANCEL\""), "{metrics}");
    every_attempt_carried_a_deadline(&seen, "deadline", 8, 1000);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_attempt_whose_caller_hangs_up_before_its_deadline_is_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen, arrived) = app().await;
    let sidecar = sidecar(&config(&dir, backend));
    let outbound = sidecar.outbound;

    // Deadlines of ten minutes, nearer than the route's hour; and the
    // other kind's header, which says a millisecond and is not read.
    let calls = [
        plain("patient", "/hold", &[("mesh-deadline", "600000")]),
        grpc_call("patient", "Hold", &[("grpc-timeout", "10M")]),
        plain("patient", "/hold", &[("grpc-timeout", "1m")]),
        grpc_call("patient", "Hold", &[("mesh-deadline", "1")]),
    ];
    for req in calls {
        let call = tokio::spawn(async move { h2_via(outbound, req).await });
        arrived.notified().await;
        call.abort();
    }

    let route = ("emoji-patient", "voting-patient");
    let metrics = scrape_until(sidecar.admin, |m| {
        backend_counts(m, route.0, route.1, "CANCEL") == [Some(2); 2]
    })
    .await;
    assert_eq!(
        backend_counts(&metrics, route.0, route.1, "CANCEL"),
        [Some(2); 2],
        "{metrics}"
    );
    assert!(!metrics.contains("REQUEST_TIMEOUT"), "{metrics}");
    every_attempt_carried_a_deadline(&seen, "patient", 4, 3_600_000);
    stop(sidecar).await;
}
