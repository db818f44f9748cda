//! A ServiceProfile route's `responseClasses` decide a gRPC response
//! before its `grpc-status`, in the metrics and in the route's retries, as
//! linkerd2-proxy's profile classifier tries a route's classes on the
//! response head first and its profile retries ask the same classifier: a
//! trailers-only `200` with `grpc-status: 13` is a success, and not
//! retried, on a route whose class calls `2xx` one; a `500` with
//! `grpc-status: 0` is a failure, and retried, on one whose class calls
//! `5xx` one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;

const EMOJI: &str = "emoji.emojivoto.svc.cluster.local";

/// `ListAll`, retryable, calls a `2xx` a success; `FindByShortcode`,
/// retryable, and `Vote`, not, call a `5xx` a failure.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: emoji.emojivoto.svc.cluster.local
  namespace: emojivoto
spec:
  routes:
  - name: ListAll
    condition:
      method: POST
      pathRegex: /emojivoto\\.v1\\.EmojiService/ListAll
    isRetryable: true
    responseClasses:
    - condition: {status: {min: 200, max: 299}}
      isFailure: false
  - name: FindByShortcode
    condition:
      method: POST
      pathRegex: /emojivoto\\.v1\\.EmojiService/FindByShortcode
    isRetryable: true
    responseClasses:
    - condition: {status: {min: 500, max: 599}}
      isFailure: true
  - name: Vote
    condition:
      method: POST
      pathRegex: /emojivoto\\.v1\\.EmojiService/Vote
    responseClasses:
    - condition: {status: {min: 500, max: 599}}
      isFailure: true
";

fn config(dir: &tempfile::TempDir, app: SocketAddr) -> String {
    let file = dir.path().join("profile.yaml");
    std::fs::write(&file, PROFILE).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: {EMOJI}\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// Attempts seen per `x-call`.
type Attempts = Arc<Mutex<HashMap<String, usize>>>;

/// A gRPC application answering each attempt of a call (by its `x-call`)
/// trailers-only, in turn as its `x-answers` says (`500 0,200 0`: a `500`
/// with `grpc-status: 0`, then a `200` with `grpc-status: 0`; the last
/// repeats).
async fn app() -> (SocketAddr, Attempts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Attempts::default();
    let seen = attempts.clone();
    serve(listener, move |req: Request<Incoming>| {
        let header = |name: &str| req.headers()[name].to_str().unwrap().to_owned();
        let (call, answers) = (header("x-call"), header("x-answers"));
        let attempt = {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry(call).or_default();
            *n += 1;
            *n
        };
        let answers: Vec<&str> = answers.split(',').collect();
        let (status, grpc) = answers[(attempt - 1).min(answers.len() - 1)]
            .split_once(' ')
            .unwrap();
        let res = Response::builder()
            .status(status.parse::<u16>().unwrap())
            .header("content-type", "application/grpc")
            .header("grpc-status", grpc)
            .body(full(""))
            .unwrap();
        async move { Ok(res) }
    });
    (addr, attempts)
}

/// Calls `method` as `call`, answered as `answers` says; returns the
/// answer's status and `grpc-status`, its body read whole.
async fn call(outbound: SocketAddr, method: &str, call: &str, answers: &str) -> (u16, String) {
    let req = emoji_call(EMOJI, method)
        .header("x-call", call)
        .header("x-answers", answers)
        .body(full(""))
        .unwrap();
    let res = h2_via(outbound, req).await.unwrap();
    let status = res.status().as_u16();
    let grpc = res.headers()["grpc-status"].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    (status, grpc)
}

/// The `classification` of the samples of `family` whose labels hold every
/// one of `labels`, with their values.
fn classes(metrics: &str, family: &str, labels: &[&str]) -> Vec<(String, u64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| {
            let class = l
                .split("classification=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap()
                .to_owned();
            (class, l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_profile_routes_classes_decide_a_grpc_response_before_its_grpc_status() {
    let dir = tempfile::tempdir().unwrap();
    let (app, attempts) = app().await;
    let sidecar = sidecar(&config(&dir, app));
    let outbound = sidecar.outbound;

    // A trailers-only INTERNAL, in a `200` the route's class calls a
    // success: answered as it is, once, where its grpc-status alone would
    // have had it retried (and the retry answered OK).
    let got = call(outbound, "ListAll", "internal", "200 13,200 0").await;
    assert_eq!(got, (200, "13".to_owned()));
    // A `500` with OK, which the route's class calls a failure: retried,
    // where its grpc-status alone would have returned it.
    let got = call(outbound, "FindByShortcode", "retried", "500 0,200 0").await;
    assert_eq!(got, (200, "0".to_owned()));
    // The same `500` with OK on a route that does not retry: answered, a
    // failure.
    let got = call(outbound, "Vote", "failed", "500 0").await;
    assert_eq!(got, (500, "0".to_owned()));
    let seen = attempts.lock().unwrap().clone();
    assert_eq!(seen["internal"], 1, "{seen:?}");
    assert_eq!(seen["retried"], 2, "{seen:?}");
    assert_eq!(seen["failed"], 1, "{seen:?}");

    let route_name = |route: &str| format!("route_name=\"{route}\"");
    let rt_route = |route: &str| format!("rt_route=\"{route}\"");
    let status = |code: &str| format!("status_code=\"{code}\"");
    // Counted as each call or attempt ends, which the sidecar may finish
    // after the client has read its end.
    let expected = |metrics: &str| {
        !classes(metrics, "response_total", &[&route_name("Vote")]).is_empty()
            && classes(
                metrics,
                "route_actual_response_total",
                &[&rt_route("FindByShortcode")],
            )
            .len()
                == 2
    };
    let metrics = scrape_until(sidecar.admin, expected).await;
    let is = |class: &str| vec![(class.to_owned(), 1)];
    let golden = |route: &str, code: &str| {
        classes(
            &metrics,
            "response_total",
            &["direction=\"outbound\"", &route_name(route), &status(code)],
        )
    };
    let profile = |family: &str, route: &str, code: &str| {
        let dst = format!("dst=\"{EMOJI}\"");
        classes(
            &metrics,
            family,
            &[
                "direction=\"outbound\"",
                &dst,
                &rt_route(route),
                &status(code),
            ],
        )
    };

    // `200` with INTERNAL: a success, as the call and as its one attempt.
    assert_eq!(golden("ListAll", "200"), is("success"), "{metrics}");
    for family in ["route_response_total", "route_actual_response_total"] {
        assert_eq!(
            profile(family, "ListAll", "200"),
            is("success"),
            "{family} {metrics}"
        );
    }
    // `500` with OK: a failure, as the attempt that was retried and as
    // the call that was not.
    assert_eq!(
        profile("route_actual_response_total", "FindByShortcode", "500"),
        is("failure"),
        "{metrics}"
    );
    assert_eq!(
        profile("route_actual_response_total", "FindByShortcode", "200"),
        is("success"),
        "{metrics}"
    );
    assert_eq!(
        profile("route_response_total", "FindByShortcode", "200"),
        is("success"),
        "{metrics}"
    );
    assert_eq!(golden("Vote", "500"), is("failure"), "{metrics}");
    for family in ["route_response_total", "route_actual_response_total"] {
        assert_eq!(
            profile(family, "Vote", "500"),
            is("failure"),
            "{family} {metrics}"
        );
    }
    stop(sidecar).await;
}
