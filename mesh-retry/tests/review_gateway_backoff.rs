//! A Gateway API rule's `retry.backoff` is a minimum (GEP-1731): "as long as
//! unsuccessful backend requests are not retried before the configured
//! minimum duration", whatever the jitter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{Budget, BudgetConfig, config, replay::ReplayBody};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: books, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: books}]
  rules:
  - retry: {codes: [503], attempts: 4, backoff: 100ms}
";

#[tokio::test(start_paused = true)]
async fn no_retry_comes_before_the_rules_backoff() {
    let loaded = config::load("route.yaml", ROUTE).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap();
    let route = books.routes[0].clone();
    let budget = Arc::new(Budget::new(
        BudgetConfig::new(1000.0, 1000, Duration::from_secs(10)).unwrap(),
    ));
    // Every attempt's arrival; each request fails three times, then works.
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = arrivals.clone();
    let upstream = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        let attempt = {
            let mut log = log.lock().unwrap();
            log.push(Instant::now());
            log.len()
        };
        async move {
            let mut res = Response::new(Proxied::from(full("reply")));
            if attempt % 4 != 0 {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, Infallible>(res)
        }
    });
    let svc = route.layer(budget).layer(upstream);
    for _ in 0..20 {
        let res = svc.clone().oneshot(Request::new(empty())).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 80);
    for request in arrivals.chunks(4) {
        let waits: Vec<Duration> = request.windows(2).map(|w| w[1] - w[0]).collect();
        // The first retry waits the backoff itself (up to the timer's
        // millisecond).
        assert!(waits[0] <= Duration::from_millis(101), "{waits:?}");
        assert!(
            waits.iter().all(|wait| *wait >= Duration::from_millis(100)),
            "{waits:?}"
        );
    }
}
