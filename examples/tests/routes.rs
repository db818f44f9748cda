//! What an `HTTPRoute` rule does to the requests of its outbound route,
//! besides retries and timeouts: its weighted `backendRefs` send them to
//! other outbound services in proportion (a traffic split), and its
//! header filters edit requests and responses; each backend's requests
//! and responses are counted under it. A change to the routes'
//! file is in force for the next request, and a bad one changes nothing.
//! Under the routes, a service balances between its endpoints, avoiding
//! one that refuses connections and, with failure accrual, one that keeps
//! failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{collections::HashMap, net::SocketAddr};

use http::{Request, Response, StatusCode};
use support::{
    upstreams::{named, reloaded, sidecar_yaml},
    *,
};

/// A canary of `emoji`: of the requests under `/api`, one in four goes to
/// `emoji`'s own endpoints and three to `emoji-v2`'s.
const CANARY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {name: emoji, port: 8080, weight: 1}
    - {name: emoji-v2, port: 8080, weight: 3}
";

/// Sends `n` GETs for `path` to `emoji` and counts the answers by backend.
async fn shares(outbound: SocketAddr, path: &str, n: usize) -> HashMap<String, usize> {
    let client = http1();
    let mut shares = HashMap::new();
    for _ in 0..n {
        let req = Request::get(format!("http://{outbound}{path}"))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let name = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
        *shares.entry(name).or_default() += 1;
    }
    shares
}

#[tokio::test]
async fn a_routes_requests_are_split_between_its_backends_by_weight() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, CANARY));

    let split = shares(sidecar.outbound, "/api/list", 400).await;
    // 300 expected for v2, with a standard deviation of 8.7: the band is
    // six of them wide on each side.
    let v2_share = split.get("v2").copied().unwrap_or(0);
    assert!((248..=352).contains(&v2_share), "{split:?}");
    assert_eq!(split.values().sum::<usize>(), 400, "{split:?}");

    // A request off the route gets the mesh's 404, as Linkerd answers a
    // request none of a service's HTTPRoutes matches, and as the Gateway
    // API requires: the route replaces the service's own routing.
    let client = http1();
    for _ in 0..20 {
        let req = Request::get(format!("http://{}/other", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["mesh-error"], "no route");
    }

    // Addressed to `emoji`, they are counted under `emoji` and the route.
    let metrics = scrape(sidecar.admin).await;
    let counted = metrics.lines().any(|line| {
        line.starts_with("request_total{")
            && line.contains("dst_service=\"emoji\"")
            && line.contains("route_name=\"emoji-canary\"")
            && line.ends_with(" 400")
    });
    assert!(counted, "{metrics}");

    // The requests off the route are counted under `emoji`, on no route,
    // and reach no backend.
    let unrouted =
        "request_total{direction=\"outbound\",dst_service=\"emoji\",tls=\"disabled\"} 20\n";
    assert!(metrics.contains(unrouted), "{unrouted} in {metrics}");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("outbound_http_route_backend_")
                && l.contains("parent_name=\"emoji\"")
                && l.contains("route_name=\"default\"")),
        "a request off the route reached a backend: {metrics}"
    );

    // Each backend's share is counted under it, as Linkerd's per-backend
    // families count a split.
    let v1_share = 400 - v2_share;
    for (route, backend, n) in [
        ("emoji-canary", "emoji-v2", v2_share),
        ("emoji-canary", "emoji", v1_share),
    ] {
        let labels = format!(
            "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",\
             route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"emojivoto\",route_name=\"{route}\",\
             backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"{backend}\",backend_port=\"\",backend_section_name=\"\""
        );
        let requests = format!("outbound_http_route_backend_requests_total{{{labels}}} {n}\n");
        let statuses = format!(
            "outbound_http_route_backend_response_statuses_total{{{labels},http_status=\"200\",error=\"\"}} {n}\n"
        );
        assert!(metrics.contains(&requests), "{requests} in {metrics}");
        assert!(metrics.contains(&statuses), "{statuses} in {metrics}");
    }
    stop(sidecar).await;
}

/// Header filters on `emoji`'s route: the request gains `x-env` and loses
/// `x-debug`, the response gains `x-served-by`.
const HEADERS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-headers, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-env, value: canary}]
        remove: [x-debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-served-by, value: mesh}]
";

#[tokio::test]
async fn a_routes_header_filters_edit_its_requests_and_responses() {
    let dir = tempfile::tempdir().unwrap();
    // The support backend answers `/headers` with the headers it got.
    let (app, _) = backend().await;
    let sidecar = sidecar(&sidecar_yaml(dir.path(), app, app, HEADERS));
    let req = Request::get(format!("http://{}/headers", sidecar.outbound))
        .header("host", "emoji")
        .header("x-env", "prod")
        .header("x-debug", "1")
        .header("x-kept", "1")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-served-by"], "mesh");
    let seen = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    let seen: Vec<&str> = seen.lines().collect();
    assert!(seen.contains(&"x-env: canary"), "{seen:?}");
    assert!(seen.contains(&"x-kept: 1"), "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with("x-debug")), "{seen:?}");
    assert!(!seen.contains(&"x-env: prod"), "{seen:?}");
    stop(sidecar).await;
}

/// The header a route sets reaches the service even when the
/// application named it in `Connection`: the application's copy belongs
/// to its hop to the sidecar, not the route's.
#[tokio::test]
async fn naming_a_header_in_connection_does_not_drop_the_one_the_route_sets() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = backend().await;
    let sidecar = sidecar(&sidecar_yaml(dir.path(), app, app, HEADERS));
    let req = Request::get(format!("http://{}/headers", sidecar.outbound))
        .header("host", "emoji")
        .header("connection", "x-env, x-hop")
        .header("x-env", "prod")
        .header("x-hop", "1")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    let seen: Vec<&str> = seen.lines().collect();
    assert!(seen.contains(&"x-env: canary"), "{seen:?}");
    assert!(!seen.contains(&"x-env: prod"), "{seen:?}");
    assert!(!seen.iter().any(|l| l.starts_with("x-hop")), "{seen:?}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_changed_routes_file_is_in_force_for_the_next_request_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let yaml = sidecar_yaml(dir.path(), v1, v2, CANARY);
    let sidecar = sidecar(&yaml);
    let routes = dir.path().join("routes.yaml");
    assert!(
        shares(sidecar.outbound, "/api/list", 40)
            .await
            .contains_key("v2")
    );

    // The canary is promoted: every request to the new version.
    let promoted = CANARY.replace("weight: 1}", "weight: 0}");
    assert_ne!(promoted, CANARY);
    replace_file(&routes, &promoted);
    reloaded(sidecar.admin, "ok", 1).await;
    // Twenty requests on a connection of their own, a quarter of which
    // the canary would have sent to v1.
    until_in_force(
        || shares(sidecar.outbound, "/api/list", 20),
        |shares| !shares.contains_key("v1"),
    )
    .await;
    let after = shares(sidecar.outbound, "/api/list", 20).await;
    assert_eq!(after, HashMap::from([("v2".to_owned(), 20)]));

    // A route with a negative weight: the last good routes stay, and so
    // does the budget in force, though the file also asks for another.
    let profile = "---\napiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\n\
                   metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}\n\
                   spec:\n  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}\n";
    let broken = promoted.replace("weight: 3}", "weight: -3}") + profile;
    assert_ne!(broken, promoted.clone() + profile);
    replace_file(&routes, broken);
    reloaded(sidecar.admin, "error", 1).await;
    let after = shares(sidecar.outbound, "/api/list", 20).await;
    assert_eq!(after, HashMap::from([("v2".to_owned(), 20)]));
    let metrics = scrape(sidecar.admin).await;
    assert!(
        metrics.contains("retry_budget_balance{service=\"emoji\"} 100.0\n"),
        "{metrics}"
    );
    stop(sidecar).await;
}

/// An address nothing listens on.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], refused_port()))
}

#[tokio::test]
async fn a_service_balances_between_its_endpoints_and_avoids_a_dead_one() {
    let ((a, _), (b, _)) = (named("a").await, named("b").await);
    let yaml = |endpoints: String| {
        format!(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: emoji\n      endpoints: [{endpoints}]\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
        )
    };
    // Two live endpoints: both serve.
    let live = sidecar(&yaml(format!("{a}, {b}")));
    let both = shares(live.outbound, "/", 100).await;
    assert!(both.get("a").is_some_and(|&n| n > 0), "{both:?}");
    assert!(both.get("b").is_some_and(|&n| n > 0), "{both:?}");
    stop(live).await;

    // One refuses connections: it costs at most the one request that finds
    // out, whose caller gets the mesh's 502; the rest go to the live one.
    let sidecar = sidecar(&yaml(format!("{}, {a}", closed_port())));
    let client = http1();
    let mut failed = 0;
    for _ in 0..50 {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        match res.status() {
            StatusCode::OK => assert_eq!(body_bytes(res).await, "a"),
            StatusCode::BAD_GATEWAY => failed += 1,
            other => panic!("{other}"),
        }
    }
    assert!(failed <= 1, "{failed} requests went to the dead endpoint");
    stop(sidecar).await;
}

#[tokio::test]
async fn with_failure_accrual_an_endpoint_that_keeps_failing_is_taken_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing = listener.local_addr().unwrap();
    serve(listener, |_| async {
        let mut res = Response::new(full("overloaded"));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok(res)
    });
    let (live, _) = named("live").await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{failing}, {live}]\n\
         \x20     failure_accrual: {{max_failures: 2, min_penalty: 1m}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let client = http1();
    let mut failed = 0;
    for _ in 0..60 {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        } else {
            assert_eq!(body_bytes(res).await, "live");
        }
    }
    // Its two failures in a row take it out for a minute: the rest go to
    // the live endpoint.
    assert!(
        failed <= 2,
        "{failed} requests got the failing endpoint's 503"
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn with_every_endpoint_out_requests_fail_fast_with_the_mesh_503() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing = listener.local_addr().unwrap();
    serve(listener, |_| async {
        let mut res = Response::new(full("overloaded"));
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        Ok(res)
    });
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{failing}]\n\
         \x20     failure_accrual: {{max_failures: 1, min_penalty: 1m}}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let get = || {
        Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap()
    };
    let client = http1();
    // The endpoint's own failure, which takes it out.
    let res = client.request(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body_bytes(res).await, "overloaded");
    // Then the mesh answers, without sending it on: the next request waits
    // for an endpoint (the queue's 3 s, as Linkerd's balancer queue), then
    // the service is in fail-fast, and the one after it is shed at once,
    // as Linkerd sheds it at its shut gate.
    for error in ["service in fail-fast", "service unavailable"] {
        let res = client.request(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["mesh-error"], error);
    }
    stop(sidecar).await;
}

/// A GRPCRoute on `emoji`: its `ListAll` calls are retried on
/// `UNAVAILABLE`, as Linkerd's annotations ask.
const GRPC: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: emoji-list
  namespace: emojivoto
  annotations: {retry.linkerd.io/grpc: unavailable}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService, method: ListAll}}]
";

#[tokio::test]
async fn a_grpc_routes_method_is_retried_as_its_annotations_say() {
    // A gRPC server whose first answer to each method is UNAVAILABLE, in a
    // trailers-only response.
    let (app, calls) = unavailable_first().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&sidecar_yaml(dir.path(), app, app, GRPC));
    let call = |method: &str| {
        let req = emoji_call("emoji", method).body(full("")).unwrap();
        h2_via(sidecar.outbound, req)
    };
    let res = call("ListAll").await.unwrap();
    assert_eq!(
        res.headers()["grpc-status"],
        "0",
        "retried after UNAVAILABLE"
    );
    // Another method is on no route: the mesh answers NOT_FOUND, as
    // Linkerd's proxy answers a call none of the GRPCRoutes matches, and
    // the call never reaches the service.
    let res = call("FindByShortcode").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "5");
    assert_eq!(res.headers()["mesh-error"], "no route");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls["/emojivoto.v1.EmojiService/ListAll"], 2);
    assert_eq!(calls.len(), 1, "{calls:?}");
    drop(dir);
    stop(sidecar).await;
}

/// A gRPC server whose first answer on each path is `UNAVAILABLE`, in a
/// trailers-only response, and the calls it got, by path.
async fn unavailable_first() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<HashMap<String, u32>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let calls = std::sync::Arc::new(std::sync::Mutex::new(HashMap::<String, u32>::new()));
    let seen = calls.clone();
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(req.uri().path().to_owned()).or_default();
                *n += 1;
                *n
            };
            let mut res = Response::new(full(""));
            res.headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            let status = if n == 1 { "14" } else { "0" };
            res.headers_mut()
                .insert("grpc-status", status.parse().unwrap());
            Ok(res)
        }
    });
    (app, calls)
}

#[tokio::test]
async fn a_get_to_a_grpc_routes_method_is_not_on_the_route() {
    // A gRPC call is a POST, and Linkerd's proxy takes a GRPCRoute match
    // only for one: a GET to the method's path is on no route, and the
    // service, served its GRPCRoute alone, answers it with the mesh's 404.
    let (app, calls) = unavailable_first().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = sidecar(&sidecar_yaml(dir.path(), app, app, GRPC));
    let req = Request::get("http://emoji/emojivoto.v1.EmojiService/ListAll")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "5");
    assert_eq!(res.headers()["mesh-error"], "no route");
    assert!(calls.lock().unwrap().is_empty());
    drop(dir);
    stop(sidecar).await;
}

/// A ServiceProfile with a route for `emoji`'s `/list`.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: '/list'}
";

#[tokio::test]
async fn a_service_with_profile_routes_still_sends_what_no_route_matches_to_itself() {
    // Linkerd serves such a service its profile, whose default route takes
    // the requests its routes leave; here the HTTPRoute is tried first,
    // and neither takes the request away from the service.
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let routes = format!("{PROFILE}---\n{CANARY}");
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, &routes));
    let off_route = shares(sidecar.outbound, "/other", 5).await;
    assert_eq!(off_route, HashMap::from([("v1".to_owned(), 5)]));
    stop(sidecar).await;
}
