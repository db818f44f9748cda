//! `sidecar routes --to`: a route's retries, and the success of its
//! attempts (actual) beside that of its requests (effective), from the
//! sidecar's own metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_metrics::query::{self, Delta, Format, Target, routes};
use support::*;

const GUIDE_ROUTE: &str = include_str!("../../mesh-retry/tests/fixtures/guide-httproute.yaml");

/// A backend that answers 503 to the first `fail` attempts of each request
/// (`?fail=N`, by its `x-request-id`), then 200.
async fn flaky_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    serve(listener, move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let id = req.headers()["x-request-id"].to_str().unwrap().to_owned();
            let fail: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("fail="))
                .map_or(0, |n| n.parse().unwrap());
            let attempt = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(id).or_default();
                *n += 1;
                *n
            };
            let mut res = Response::new(full(format!("attempt {attempt}")));
            if attempt <= fail {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok(res)
        }
    });
    addr
}

async fn call(outbound: SocketAddr, path: &str, id: &str) -> StatusCode {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", "emoji")
        .header("x-request-id", id)
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap().status()
}

#[tokio::test]
async fn a_retried_route_shows_its_retries_and_the_success_of_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let backend = flaky_backend().await;
    let sidecar = sidecar(&emoji_routes_yaml(dir.path(), backend, GUIDE_ROUTE, 2));
    let targets = Target::parse_list(&format!("web={}", sidecar.admin)).unwrap();
    let before = query::scrape(&targets[0]).await.unwrap();
    // Two requests: one in 3 attempts to a 200, one out of attempts (4)
    // on a 503. 7 attempts, 1 a success; 5 retries for 2 requests.
    assert_eq!(
        call(sidecar.outbound, "/api/emoji/list?fail=2", "a").await,
        StatusCode::OK
    );
    assert_eq!(
        call(sidecar.outbound, "/api/emoji/list?fail=10", "b").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let after = query::scrape(&targets[0]).await.unwrap();
    let window = Duration::from_secs(10);
    let deltas = [Some(Delta::between(&before, &after, window))];
    let rows = routes::route_rows(&targets, &deltas, Some("emoji"));
    let text = routes::render_routes(&rows, true, Format::Table).unwrap();
    assert_eq!(rows.len(), 1, "{text}\n{}", scrape(sidecar.admin).await);
    let row = &rows[0];
    assert_eq!(
        (row.route.as_str(), row.service.as_str()),
        ("web-to-emoji-retries", "emoji"),
        "{text}"
    );
    assert_eq!(row.golden.success, Some(0.5), "{text}");
    assert_eq!(row.golden.rps, 0.2, "{text}");
    assert_eq!(row.retry_ratio, Some(2.5), "{text}");
    assert!(!row.actual_estimated, "{text}");
    assert_eq!(row.actual_success, Some(1.0 / 7.0), "{text}");
    assert!((row.actual_rps - 0.7).abs() < 1e-9, "{text}");
    stop(sidecar).await;
}
