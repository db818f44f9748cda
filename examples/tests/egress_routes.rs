//! The `HTTPRoute`s and `GRPCRoute`s attached to an `EgressNetwork`,
//! through a real sidecar: a captured request that one of the network's
//! routes takes is served by that route (its backends, filters, retries
//! and labels) whatever the network's `trafficPolicy`; one that none
//! takes goes to the network's default route, as in Linkerd's egress
//! walkthrough (<https://linkerd.io/2.17/tasks/managing-egress-traffic/>).
//! 127.0.0.1 is outside the default cluster networks, so a network
//! without `networks` captures a local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_examples::sidecar::Running;
use support::egress::{self, assert_lines, network, route_labels};
use support::upstreams::{named, reloaded, send};
use support::*;

/// The walkthrough's network's name.
const NETWORK: &str = "all-egress-traffic";

/// The `parentRefs` entry of the network, with `port: {port}` when given.
fn parent(port: Option<u16>) -> String {
    let port = port.map_or(String::new(), |p| format!(", port: {p}"));
    format!(
        "{{name: all-egress-traffic, kind: EgressNetwork, group: policy.linkerd.io, \
         namespace: emojivoto{port}}}"
    )
}

/// An `HTTPRoute` `name` on the network (on `port` only, when given)
/// whose one rule is `rule` (YAML lines, indented for a rule's fields).
fn http_route(name: &str, port: Option<u16>, rule: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\n\
         metadata:\n  name: {name}\n  namespace: emojivoto\n\
         spec:\n  parentRefs: [{}]\n  rules:\n  - {rule}\n",
        parent(port)
    )
}

/// The walkthrough's `httpbin-get`: `/get` to `port`, to the original
/// destination.
fn httpbin_get(port: u16) -> String {
    http_route(
        "httpbin-get",
        Some(port),
        "matches: [{path: {value: /get}}]",
    )
}

/// A plaintext sidecar in `emojivoto` whose outbound services are
/// `services` (YAML list entries, indented), with `policy` as its policy
/// file (read again every 50 ms).
fn egress_sidecar(dir: &Path, services: &str, policy: &str) -> (Running, PathBuf) {
    let services = if services.is_empty() {
        String::new()
    } else {
        format!("  services:\n{services}")
    };
    let config = format!(
        "outbound:\n  listen: 127.0.0.1:0\n{services}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    );
    egress::sidecar(dir, &config, policy)
}

/// Sends `GET path` for `host` to the outbound listener at `outbound`:
/// the status, the `mesh-error`, and the body.
async fn get(outbound: SocketAddr, host: &str, path: &str) -> (StatusCode, Option<String>, String) {
    send(outbound, host, "GET", path, "").await
}

#[tokio::test]
async fn the_walkthroughs_route_lets_its_path_out_of_a_deny_network_and_is_labelled_so() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("httpbin").await;
    let port = upstream.port();
    let policy = format!("{}---\n{}", network(NETWORK, "Deny", ""), httpbin_get(port));
    let (running, _) = egress_sidecar(dir.path(), "", &policy);
    let host = format!("localhost:{port}");

    let (status, error, body) = get(running.outbound, &host, "/get").await;
    assert_eq!(
        (status, error, body.as_str()),
        (StatusCode::OK, None, "httpbin")
    );
    let (status, error, _) = get(running.outbound, &host, "/ip").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.as_deref(), Some("egress denied"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let metrics = scrape(running.admin).await;
    let route = route_labels(NETWORK, port, "HTTPRoute", "httpbin-get");
    let deny = route_labels(NETWORK, port, "default", "http-egress-deny");
    assert_lines(
        &metrics,
        &[
            format!(
                "outbound_http_route_request_statuses_total{{{route},\
                 hostname=\"localhost\",http_status=\"200\",error=\"\"}} 1"
            ),
            format!(
                "outbound_http_route_backend_requests_total{{{route},\
                 backend_group=\"policy.linkerd.io\",backend_kind=\"EgressNetwork\",\
                 backend_namespace=\"emojivoto\",backend_name=\"all-egress-traffic\",\
                 backend_port=\"{port}\",backend_section_name=\"\"}} 1"
            ),
            format!(
                "outbound_http_route_request_statuses_total{{{deny},\
                 hostname=\"localhost\",http_status=\"403\",error=\"\"}} 1"
            ),
        ],
    );
    // The golden families, under the network and the route's name.
    assert_eq!(
        series(
            &metrics,
            "response_total",
            &[
                "dst_service=\"EgressNetwork/emojivoto/all-egress-traffic\"",
                "route_name=\"httpbin-get\"",
                "status_code=\"200\""
            ]
        ),
        1,
        "{metrics}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_route_attached_with_a_port_applies_to_that_port_only() {
    let dir = tempfile::tempdir().unwrap();
    let (on, on_hits) = named("on").await;
    let (off, off_hits) = named("off").await;
    let policy = format!(
        "{}---\n{}",
        network(NETWORK, "Deny", ""),
        httpbin_get(on.port())
    );
    let (running, _) = egress_sidecar(dir.path(), "", &policy);

    let (status, _, body) = get(running.outbound, &on.to_string(), "/get").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "on"));
    let (status, error, _) = get(running.outbound, &off.to_string(), "/get").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.as_deref(), Some("egress denied"));
    assert_eq!(on_hits.load(Ordering::SeqCst), 1);
    assert_eq!(off_hits.load(Ordering::SeqCst), 0);

    // Without a port, the route takes every port.
    let dir = tempfile::tempdir().unwrap();
    let every = http_route("any-get", None, "matches: [{path: {value: /get}}]");
    let (running_any, _) = egress_sidecar(
        dir.path(),
        "",
        &format!("{}---\n{every}", network(NETWORK, "Deny", "")),
    );
    let (status, _, body) = get(running_any.outbound, &off.to_string(), "/get").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "off"));
    stop(running).await;
    stop(running_any).await;
}

#[tokio::test]
async fn a_service_backend_takes_the_captured_traffic_to_the_outbound_service() {
    let dir = tempfile::tempdir().unwrap();
    let (outside, outside_hits) = named("outside").await;
    let (internal, internal_hits) = named("internal").await;
    let route = http_route(
        "unencrypted-http",
        Some(outside.port()),
        "backendRefs: [{kind: Service, name: internal-egress, port: 80}]",
    );
    let policy = format!("{}---\n{route}", network(NETWORK, "Allow", ""));
    let services = format!("    - name: internal-egress\n      endpoints: [{internal}]\n");
    let (running, _) = egress_sidecar(dir.path(), &services, &policy);

    let (status, _, body) = get(running.outbound, &outside.to_string(), "/post").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "internal"));
    assert_eq!(internal_hits.load(Ordering::SeqCst), 1);
    assert_eq!(outside_hits.load(Ordering::SeqCst), 0);

    let metrics = scrape(running.admin).await;
    let expected = format!(
        "outbound_http_route_backend_requests_total{{{},\
         backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"emojivoto\",\
         backend_name=\"internal-egress\",backend_port=\"\",backend_section_name=\"\"}} 1",
        route_labels(NETWORK, outside.port(), "HTTPRoute", "unencrypted-http")
    );
    assert_lines(&metrics, &[expected]);
    stop(running).await;
}

#[tokio::test]
async fn an_egress_network_backend_is_the_original_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("outside").await;
    let route = http_route(
        "to-the-network",
        None,
        "backendRefs: [{group: policy.linkerd.io, kind: EgressNetwork, \
         name: all-egress-traffic}]",
    );
    let policy = format!("{}---\n{route}", network(NETWORK, "Deny", ""));
    let (running, _) = egress_sidecar(dir.path(), "", &policy);
    let (status, _, body) = get(running.outbound, &upstream.to_string(), "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "outside"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}

/// An upstream on 127.0.0.1:0 that answers its first request 503 and
/// every other `ok`, and how many it got.
async fn fails_once() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    serve(listener, move |_: Request<Incoming>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut res = Response::new(full("ok"));
            if n == 0 {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok(res)
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn a_routes_retries_retry_a_503_from_the_original_destination() {
    for (name, annotations, rule) in [
        (
            "annotated",
            "  annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: '2'}\n",
            "matches: [{path: {value: /}}]",
        ),
        (
            "field",
            "",
            "matches: [{path: {value: /}}]\n    retry: {attempts: 2, codes: [503]}",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (upstream, hits) = fails_once().await;
        let route = http_route(name, None, rule).replace(
            "  namespace: emojivoto\n",
            &format!("  namespace: emojivoto\n{annotations}"),
        );
        let policy = format!("{}---\n{route}", network(NETWORK, "Allow", ""));
        let (running, _) = egress_sidecar(dir.path(), "", &policy);
        let (status, _, body) = get(running.outbound, &upstream.to_string(), "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "{name}");
        assert_eq!(hits.load(Ordering::SeqCst), 2, "{name}");
        stop(running).await;
    }
}

#[tokio::test]
async fn a_request_header_modifier_edits_the_request_sent_out() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _) = backend().await;
    let route = http_route(
        "tagged",
        None,
        "filters:\n    - type: RequestHeaderModifier\n      \
         requestHeaderModifier: {set: [{name: x-egress, value: tagged}], remove: [x-secret]}",
    );
    let policy = format!("{}---\n{route}", network(NETWORK, "Allow", ""));
    let (running, _) = egress_sidecar(dir.path(), "", &policy);
    let req = Request::get(format!("http://{}/headers", running.outbound))
        .header("host", upstream.to_string())
        .header("x-secret", "hush")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(
        headers.lines().any(|l| l == "x-egress: tagged"),
        "{headers}"
    );
    assert!(!headers.contains("x-secret"), "{headers}");
    stop(running).await;
}

#[tokio::test]
async fn a_grpc_route_lets_its_method_out_of_a_deny_network() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("emoji").await;
    let route = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n\
         metadata: {{name: list-all, namespace: emojivoto}}\n\
         spec:\n  parentRefs: [{}]\n  rules:\n  - matches:\n    \
         - method: {{service: emojivoto.v1.EmojiService, method: ListAll}}\n",
        parent(None)
    );
    let policy = format!("{}---\n{route}", network(NETWORK, "Deny", ""));
    let (running, _) = egress_sidecar(dir.path(), "", &policy);
    let host = upstream.to_string();

    let call = emoji_call(&host, "ListAll").body(full("")).unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("grpc-status").is_none(), "{res:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let call = emoji_call(&host, "FindByShortcode").body(full("")).unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "7");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let metrics = scrape(running.admin).await;
    let labels = format!(
        "{},hostname=\"\"",
        route_labels(NETWORK, upstream.port(), "GRPCRoute", "list-all")
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("outbound_grpc_route_request_statuses_total{") && l.contains(&labels)
        ),
        "{labels} not in {metrics}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_reload_that_adds_a_route_takes_effect_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("httpbin").await;
    let (running, file) = egress_sidecar(dir.path(), "", &network(NETWORK, "Deny", ""));
    let host = upstream.to_string();
    let (status, _, _) = get(running.outbound, &host, "/get").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    replace_file(
        &file,
        format!(
            "{}---\n{}",
            network(NETWORK, "Deny", ""),
            httpbin_get(upstream.port())
        ),
    );
    reloaded(running.admin, "ok", 1).await;
    let (status, _, body) = get(running.outbound, &host, "/get").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "httpbin"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A refused reload keeps the route.
    replace_file(
        &file,
        format!(
            "{}---\n{}",
            network(NETWORK, "Maybe", ""),
            httpbin_get(upstream.port())
        ),
    );
    reloaded(running.admin, "error", 1).await;
    let (status, _, _) = get(running.outbound, &host, "/get").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    stop(running).await;
}

/// Nothing is sent: without the route, the request would go to port 80.
#[tokio::test]
async fn a_request_redirect_answers_the_captured_request_itself() {
    let dir = tempfile::tempdir().unwrap();
    let route = http_route(
        "to-https",
        None,
        "filters:\n    - type: RequestRedirect\n      \
         requestRedirect: {scheme: https, statusCode: 301}",
    );
    let policy = format!("{}---\n{route}", network(NETWORK, "Allow", ""));
    let (running, _) = egress_sidecar(dir.path(), "", &policy);
    let req = Request::get(format!("http://{}/get", running.outbound))
        .header("host", "localhost")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()["location"], "https://localhost/get");
    stop(running).await;
}
