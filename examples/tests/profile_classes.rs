//! A ServiceProfile route's `responseClasses` classify its responses in the
//! metrics, as Linkerd's do: in the golden `response_total` and in the
//! profile route families, not only in its retries. A `500` a class marks
//! `isFailure: false` is a success; a `404` a class marks `isFailure: true`
//! is a failure. Routes without classes, the profile's default route and
//! routes that are not a profile's keep the default rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::*;

const EMOJI: &str = "emoji.emojivoto.svc.cluster.local";

/// A profile whose `Get /api/flaky` route calls a `500` a success, whose
/// `Get /api/missing` route calls a `404` a failure, and whose
/// `Get /api/plain` route has no classes.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: emoji.emojivoto.svc.cluster.local
  namespace: emojivoto
spec:
  routes:
  - name: Get /api/flaky
    condition:
      method: GET
      pathRegex: /api/flaky
    responseClasses:
    - condition:
        status:
          min: 500
          max: 500
      isFailure: false
  - name: Get /api/missing
    condition:
      method: GET
      pathRegex: /api/missing
    responseClasses:
    - condition:
        status:
          min: 400
          max: 499
      isFailure: true
  - name: Get /api/plain
    condition:
      method: GET
      pathRegex: /api/plain/.*
";

/// `web`, at the same application, on an `HTTPRoute`.
const HTTP_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-api, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
";

fn config(dir: &tempfile::TempDir, app: SocketAddr) -> String {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, format!("{PROFILE}---\n{HTTP_ROUTE}")).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: {EMOJI}\n      endpoints: [{app}]\n\
         \x20   - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// The application: `/api/missing` and a path ending in `404` answer
/// `404`, any other `500`.
async fn app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| {
        let path = req.uri().path();
        let status = if path == "/api/missing" || path.ends_with("404") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        async move {
            let mut res = Response::new(full("no"));
            *res.status_mut() = status;
            Ok(res)
        }
    });
    addr
}

async fn get(outbound: SocketAddr, host: &str, path: &str) -> StatusCode {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

/// The `classification` of each sample of `family` whose labels hold
/// every one of `labels`, with its value.
fn classes(metrics: &str, family: &str, labels: &[&str]) -> Vec<(String, String)> {
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
            let value = l.rsplit(' ').next().unwrap().to_owned();
            (class, value)
        })
        .collect()
}

#[tokio::test]
async fn a_profile_routes_classes_classify_its_responses_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let app = app().await;
    let sidecar = sidecar(&config(&dir, app));

    for (host, path, status) in [
        (EMOJI, "/api/flaky", 500),
        (EMOJI, "/api/flaky", 500),
        (EMOJI, "/api/missing", 404),
        (EMOJI, "/api/plain/500", 500),
        (EMOJI, "/api/plain/404", 404),
        (EMOJI, "/leaderboard", 500),
        ("web", "/api/flaky", 500),
        ("web", "/api/missing", 404),
    ] {
        assert_eq!(get(sidecar.outbound, host, path).await.as_u16(), status);
    }
    let metrics = scrape(sidecar.admin).await;
    let golden = |route: &str, dst: &str, status: &str| {
        let route = format!("route_name=\"{route}\"");
        let dst = format!("dst_service=\"{dst}\"");
        let status = format!("status_code=\"{status}\"");
        let found = classes(
            &metrics,
            "response_total",
            &["direction=\"outbound\"", &route, &dst, &status],
        );
        assert_eq!(found.len(), 1, "{route} {dst} {status} in {metrics}");
        found.into_iter().next().unwrap()
    };
    let profile = |family: &str, route: Option<&str>, status: &str| {
        let route = route.map(|r| format!(",rt_route=\"{r}\""));
        let labels = format!(
            "{family}{{direction=\"outbound\",dst=\"{EMOJI}\"{},status_code=\"{status}\"",
            route.as_deref().unwrap_or("")
        );
        let found = classes(&metrics, family, &[&labels]);
        assert_eq!(found.len(), 1, "{labels} in {metrics}");
        found.into_iter().next().unwrap()
    };
    let is = |class: &str, n: &str| (class.to_owned(), n.to_owned());

    // A 500 the route's class calls a success.
    assert_eq!(golden("Get /api/flaky", EMOJI, "500"), is("success", "2"));
    for family in ["route_response_total", "route_actual_response_total"] {
        assert_eq!(
            profile(family, Some("Get /api/flaky"), "500"),
            is("success", "2")
        );
    }
    // A 404 the route's class calls a failure.
    assert_eq!(golden("Get /api/missing", EMOJI, "404"), is("failure", "1"));
    for family in ["route_response_total", "route_actual_response_total"] {
        assert_eq!(
            profile(family, Some("Get /api/missing"), "404"),
            is("failure", "1")
        );
    }
    // A route without classes, and the profile's default route: 5xx fail.
    assert_eq!(golden("Get /api/plain", EMOJI, "500"), is("failure", "1"));
    assert_eq!(golden("Get /api/plain", EMOJI, "404"), is("success", "1"));
    assert_eq!(golden("default", EMOJI, "500"), is("failure", "1"));
    assert_eq!(
        profile("route_response_total", Some("Get /api/plain"), "500"),
        is("failure", "1")
    );
    assert_eq!(
        profile("route_response_total", Some("Get /api/plain"), "404"),
        is("success", "1")
    );
    assert_eq!(
        profile("route_response_total", None, "500"),
        is("failure", "1")
    );
    // Another service's route, not a profile's: the same paths, the
    // default rules.
    assert_eq!(golden("web-api", "web", "500"), is("failure", "1"));
    assert_eq!(golden("web-api", "web", "404"), is("success", "1"));
    stop(sidecar).await;
}
