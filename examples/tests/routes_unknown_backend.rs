//! A route's `backendRefs` entry that names a service the sidecar does not
//! know (not in `outbound.services`): in Kubernetes a route and the
//! services it names are applied independently, so a route may name one
//! not created yet. The Gateway API has the requests that would have gone
//! to such a backend answered 500 (a `GRPCRoute`'s `UNAVAILABLE`), the
//! others served as usual; the sidecar starts, and reloads, with a warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use http::{Request, StatusCode};
use support::{
    upstreams::{get, named, reloaded, sidecar_yaml},
    *,
};

/// The answer the sidecar gives a request drawn to `emoji-v3`.
const MISSING: &str = "backend service emoji-v3.emojivoto is not in outbound.services";

/// `emoji`'s requests split 1:1 between `emoji` and `emoji-v3`, which is
/// no outbound service, retried up to three times on a 5xx.
const HALF_MISSING: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: emoji-canary
  namespace: emojivoto
  annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: \"3\"}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs:
    - {name: emoji, port: 8080, weight: 1}
    - {name: emoji-v3, port: 8080, weight: 1}
";

#[tokio::test]
async fn the_share_of_an_unknown_backend_is_answered_500_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, HALF_MISSING));

    let (mut ok, mut missing) = (0, 0);
    for _ in 0..200 {
        match get(sidecar.outbound, "/").await {
            (StatusCode::OK, None, body) if body == "v1" => ok += 1,
            (StatusCode::INTERNAL_SERVER_ERROR, Some(error), body)
                if error == MISSING && body.is_empty() =>
            {
                missing += 1;
            }
            other => panic!("neither emoji's answer nor the missing backend's: {other:?}"),
        }
    }
    // 100 of each expected, with a standard deviation of 7: the band is
    // six of them wide on each side. Were the 500s retried, a new draw
    // each, about one in sixteen would be left.
    assert!((58..=142).contains(&missing), "{ok} 200s, {missing} 500s");
    assert_eq!(ok + missing, 200);
    // Every 200 came from emoji, in one attempt; emoji-v2 got nothing.
    assert_eq!(v1_hits.load(Ordering::SeqCst), ok);
    assert_eq!(v2_hits.load(Ordering::SeqCst), 0);

    // Each backend's attempts are counted under it: one per request, no
    // retry in between.
    let metrics = scrape(sidecar.admin).await;
    let labels = |backend: &str| {
        format!(
            "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"emojivoto\",route_name=\"emoji-canary\",\
             backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"{backend}\",backend_port=\"\",backend_section_name=\"\""
        )
    };
    for (backend, n) in [("emoji", ok), ("emoji-v3.emojivoto", missing)] {
        let requests = format!(
            "outbound_http_route_backend_requests_total{{{}}} {n}\n",
            labels(backend)
        );
        assert!(metrics.contains(&requests), "{requests} in {metrics}");
    }
    let failed = format!(
        "outbound_http_route_backend_response_statuses_total{{{},http_status=\"\",error=\"FAIL_FAST\"}} {missing}\n",
        labels("emoji-v3.emojivoto")
    );
    assert!(metrics.contains(&failed), "{failed} in {metrics}");
    stop(sidecar).await;
}

/// `emoji`'s requests all to `emoji-v2`.
const TO_V2: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-moved, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji-v2, port: 8080}]
";

#[tokio::test]
async fn a_reload_to_an_unknown_backend_alone_is_in_force_and_answers_500_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, TO_V2));
    assert_eq!(get(sidecar.outbound, "/").await.2, "v2");

    // The route now names a service not created yet: the file is taken,
    // and every request is the sidecar's 500, sent neither to the route's
    // parent nor to the backend it had.
    let routes = dir.path().join("routes.yaml");
    replace_file(&routes, TO_V2.replace("emoji-v2", "emoji-v3"));
    reloaded(sidecar.admin, "ok", 1).await;
    until_in_force(
        || get(sidecar.outbound, "/"),
        |(status, ..)| *status == StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    // Until every runtime had the new routes, some went to emoji-v2.
    let v2_before = v2_hits.load(Ordering::SeqCst);
    for _ in 0..20 {
        let (status, error, body) = get(sidecar.outbound, "/").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.as_deref(), Some(MISSING));
        assert_eq!(body, "");
    }
    assert_eq!(v1_hits.load(Ordering::SeqCst), 0);
    assert_eq!(v2_hits.load(Ordering::SeqCst), v2_before);
    stop(sidecar).await;
}

#[tokio::test]
async fn a_grpc_call_drawn_to_an_unknown_backend_is_answered_unavailable() {
    let grpc = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-rpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {service: emojivoto.v1.EmojiService}}]
    backendRefs: [{name: emoji-v3, port: 8080}]
";
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, grpc));
    for _ in 0..5 {
        let req = Request::post("http://emoji/emojivoto.v1.EmojiService/ListAll")
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(""))
            .unwrap();
        let res = h2_via(sidecar.outbound, req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], MISSING);
        assert_eq!(res.headers()["mesh-error"], MISSING);
    }
    assert_eq!(v1_hits.load(Ordering::SeqCst), 0);
    assert_eq!(v2_hits.load(Ordering::SeqCst), 0);
    let metrics = scrape(sidecar.admin).await;
    let failed = "outbound_grpc_route_backend_response_statuses_total{parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"emojivoto\",parent_name=\"emoji\",parent_port=\"\",parent_section_name=\"\",\
                  route_group=\"gateway.networking.k8s.io\",route_kind=\"GRPCRoute\",route_namespace=\"emojivoto\",route_name=\"emoji-rpc\",\
                  backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",backend_name=\"emoji-v3.emojivoto\",backend_port=\"\",backend_section_name=\"\",\
                  grpc_status=\"UNKNOWN\",error=\"FAIL_FAST\"} 5\n";
    assert!(metrics.contains(failed), "{failed} in {metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn the_sidecar_binary_starts_with_a_warning_naming_where_the_backend_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let yaml = sidecar_yaml(dir.path(), v1, v2, HALF_MISSING).replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: {admin}"),
    );
    let config_path = dir.path().join("sidecar.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let (mut child, lines) = run_logging(&config_path, "warn");
    let field = format!(
        "{}: document 1 (HTTPRoute emojivoto/emoji-canary): spec.rules[0].backendRefs[1]",
        dir.path().join("routes.yaml").display()
    );
    let warning = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no warning naming {field}"));
        if line.contains(&field) {
            break line;
        }
    };
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("emoji-v3.emojivoto"), "{warning}");
    // Started, not refused: its admin server answers.
    let started = tokio::time::Instant::now();
    loop {
        let req = Request::get(format!("http://{admin}/metrics"))
            .body(full(""))
            .unwrap();
        match http1().request(req).await {
            Ok(res) => {
                assert_eq!(res.status(), StatusCode::OK);
                break;
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                assert!(child.try_wait().unwrap().is_none(), "the sidecar stopped");
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("the sidecar did not come up: {error}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
