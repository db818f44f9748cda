//! Egress through a real sidecar: a request, or a `CONNECT`, for a name no
//! outbound service has goes where Linkerd's `EgressNetwork` says: sent
//! out of the mesh in plaintext (`Allow`), refused with a 403 (`Deny`),
//! or, when no network captures its address or the policy has none,
//! answered with the mesh's 404 as before. 127.0.0.1 is outside the
//! default cluster networks, so a network without `networks` captures a
//! local upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use http::{Request, StatusCode};
use mesh_examples::sidecar::Running;
use support::egress::{self, assert_lines, network, route_labels};
use support::upstreams::{named, reloaded, send};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plaintext sidecar in `emojivoto`, on two runtimes, without outbound
/// services, with `policy` as its policy file (read again every 50 ms).
fn egress_sidecar(dir: &Path, policy: &str) -> (Running, PathBuf) {
    egress::sidecar(
        dir,
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        policy,
    )
}

#[tokio::test]
async fn an_allowed_request_is_sent_out_of_the_mesh_with_its_host_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _) = backend().await;
    let (running, _) = egress_sidecar(dir.path(), &network("all", "Allow", ""));
    let port = upstream.port();

    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, error, body) = send(running.outbound, &host, "POST", "/echo", "ping").await;
        assert_eq!(
            (status, error, body.as_str()),
            (StatusCode::OK, None, "ping")
        );
        let (status, _, headers) = send(running.outbound, &host, "GET", "/headers", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers.lines().any(|l| l == format!("host: {host}")),
            "{host}: {headers}"
        );
    }
    stop(running).await;
}

#[tokio::test]
async fn a_denied_request_is_answered_403_and_sent_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let (running, _) = egress_sidecar(dir.path(), &network("closed", "Deny", ""));
    let host = format!("127.0.0.1:{}", upstream.port());

    let (status, error, _) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.as_deref(), Some("egress denied"));

    let call = emoji_call(&host, "ListAll").body(full("")).unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "7");
    assert_eq!(res.headers()["mesh-error"], "egress denied");

    assert_eq!(hits.load(Ordering::SeqCst), 0);
    stop(running).await;
}

#[tokio::test]
async fn an_address_no_network_captures_gets_the_404_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let port = upstream.port();
    // 127.0.0.2 is excepted, and in none of the other network's blocks.
    let policy = network(
        "local",
        "Allow",
        "[{cidr: 127.0.0.0/8, except: [127.0.0.2/32]}, {cidr: 10.0.0.0/8}]",
    );
    let (running, _) = egress_sidecar(dir.path(), &policy);
    let (status, error, _) = send(
        running.outbound,
        &format!("127.0.0.2:{port}"),
        "GET",
        "/",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error.as_deref(), Some("no route"));
    let (status, _, body) = send(
        running.outbound,
        &format!("127.0.0.1:{port}"),
        "GET",
        "/",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}

/// Without an `EgressNetwork`, nothing changes.
#[tokio::test]
async fn without_egress_networks_a_request_to_no_service_gets_the_404_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let (running, _) = egress_sidecar(dir.path(), "");
    let host = format!("127.0.0.1:{}", upstream.port());
    let (status, error, _) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error.as_deref(), Some("no route"));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    stop(running).await;
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_answered_502() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = egress_sidecar(dir.path(), &network("all", "Allow", ""));
    let (status, error, _) = send(running.outbound, "nowhere.invalid", "GET", "/", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error.as_deref(), Some("upstream connect error"));
    stop(running).await;
}

#[tokio::test]
async fn egress_is_counted_in_the_route_families_under_its_network() {
    let dir = tempfile::tempdir().unwrap();
    let (open, _) = named("open").await;
    let (closed, closed_hits) = named("closed").await;
    // Two networks of one address each: the smaller block wins, so each
    // upstream's address has its own policy.
    let policy = format!(
        "{}---\n{}",
        network("open", "Allow", "[{cidr: 127.0.0.1/32}]"),
        network("closed", "Deny", "[{cidr: 127.0.0.0/8}]")
    );
    let (running, _) = egress_sidecar(dir.path(), &policy);
    let open_host = format!("127.0.0.1:{}", open.port());
    let (status, _, body) = send(running.outbound, &open_host, "GET", "/", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "open"));
    let closed_host = format!("127.0.0.2:{}", closed.port());
    let (status, _, _) = send(running.outbound, &closed_host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(closed_hits.load(Ordering::SeqCst), 0);

    let metrics = scrape(running.admin).await;
    let allow = route_labels("open", open.port(), "default", "http-egress-allow");
    let deny = route_labels("closed", closed.port(), "default", "http-egress-deny");
    assert_lines(
        &metrics,
        &[
            format!(
                "outbound_http_route_request_statuses_total{{{allow},hostname=\"\",\
                 http_status=\"200\",error=\"\"}} 1"
            ),
            format!(
                "outbound_http_route_backend_requests_total{{{allow},\
                 backend_group=\"policy.linkerd.io\",backend_kind=\"EgressNetwork\",\
                 backend_namespace=\"emojivoto\",backend_name=\"open\",\
                 backend_port=\"{}\",backend_section_name=\"\"}} 1",
                open.port()
            ),
            format!(
                "outbound_http_route_request_statuses_total{{{deny},hostname=\"\",\
                 http_status=\"403\",error=\"\"}} 1"
            ),
        ],
    );
    // The golden families, one series per network.
    assert_eq!(
        series(
            &metrics,
            "response_total",
            &[
                "dst_service=\"EgressNetwork/emojivoto/open\"",
                "route_name=\"http-egress-allow\"",
                "status_code=\"200\""
            ]
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            "response_total",
            &[
                "dst_service=\"EgressNetwork/emojivoto/closed\"",
                "route_name=\"http-egress-deny\"",
                "status_code=\"403\""
            ]
        ),
        1,
        "{metrics}"
    );
    stop(running).await;
}

/// A refusal is a failure the route injects: linkerd2-proxy labels such
/// a failure by its status alone (its route metrics' `Error::new_or_status`
/// returns the status of an `HttpRouteInjectedFailure` or
/// `GrpcRouteInjectedFailure`), and Linkerd's egress walkthrough reads the
/// refused line as `http_status="403", error=""`. The golden families keep
/// the mesh's own name for the answer.
#[tokio::test]
async fn a_refusal_is_labelled_by_its_status_alone_and_keeps_its_error_in_the_golden_family() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = egress_sidecar(dir.path(), &network("closed", "Deny", ""));
    let (status, error, _) = send(running.outbound, "localhost:8080", "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.as_deref(), Some("egress denied"));
    let call = emoji_call("localhost:8080", "ListAll")
        .body(full(""))
        .unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "7");

    let metrics = scrape(running.admin).await;
    let http = route_labels("closed", 8080, "default", "http-egress-deny");
    let grpc = route_labels("closed", 8080, "default", "grpc-egress-deny");
    assert_lines(
        &metrics,
        &[
            format!(
                "outbound_http_route_request_statuses_total{{{http},hostname=\"localhost\",\
                 http_status=\"403\",error=\"\"}} 1"
            ),
            format!(
                "outbound_grpc_route_request_statuses_total{{{grpc},hostname=\"localhost\",\
                 grpc_status=\"PERMISSION_DENIED\",error=\"\"}} 1"
            ),
        ],
    );
    // As they count it whatever the route families say.
    for (route, status, class) in [
        ("http-egress-deny", "status_code=\"403\"", "success"),
        ("grpc-egress-deny", "grpc_status=\"7\"", "failure"),
    ] {
        let route = format!("route_name=\"{route}\"");
        let class = format!("classification=\"{class}\"");
        let labels = [
            "dst_service=\"EgressNetwork/emojivoto/closed\"",
            route.as_str(),
            status,
            class.as_str(),
            "error=\"denied\"",
        ];
        assert_eq!(
            series(&metrics, "response_total", &labels),
            1,
            "{labels:?} {metrics}"
        );
    }
    stop(running).await;
}

/// linkerd2-proxy exports a request's host as `hostname` only when it is
/// a DNS name (its route labels parse it as a `dns::Name`, which an IP
/// address is not): a request for an IP literal is labelled
/// `hostname=""`, on a default route and an attached one alike.
#[tokio::test]
async fn a_request_for_an_ip_literal_is_labelled_without_a_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _) = named("upstream").await;
    let (running, _) = egress_sidecar(dir.path(), &network("all", "Allow", ""));
    let port = upstream.port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, _, body) = send(running.outbound, &host, "GET", "/", "").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "upstream"),
            "{host}"
        );
    }
    let metrics = scrape(running.admin).await;
    let allow = route_labels("all", port, "default", "http-egress-allow");
    for hostname in ["", "localhost"] {
        let expected = format!(
            "outbound_http_route_request_statuses_total{{{allow},hostname=\"{hostname}\",\
             http_status=\"200\",error=\"\"}} 1"
        );
        assert_lines(&metrics, &[expected]);
    }
    assert!(!metrics.contains("hostname=\"127.0.0.1\""), "{metrics}");
    stop(running).await;
}

/// IP literals are counted under `hostname=""`, and take none of the
/// places a route has for names: after a hundred and five of them, a name
/// is still labelled. (The bound on names is the unit tests' of
/// `Hostnames`: only `localhost` resolves here.)
#[tokio::test]
async fn ip_literals_are_counted_unnamed_and_take_no_place_under_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = egress_sidecar(dir.path(), &network("closed", "Deny", ""));
    // 105 addresses of 127.0.0.0/8, all refused: none is reached.
    for n in 1..=105 {
        let host = format!("127.0.0.{n}:8080");
        let (status, _, _) = send(running.outbound, &host, "GET", "/", "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
    }
    let (status, _, _) = send(running.outbound, "localhost:8080", "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let metrics = scrape(running.admin).await;
    let deny = route_labels("closed", 8080, "default", "http-egress-deny");
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "outbound_http_route_request_statuses_total{{{deny}"
            ))
        })
        .collect();
    let line = |hostname: &str, n: u32| {
        format!(
            "outbound_http_route_request_statuses_total{{{deny},hostname=\"{hostname}\",\
             http_status=\"403\",error=\"\"}} {n}"
        )
    };
    assert_eq!(counted.len(), 2, "{counted:#?}");
    for expected in [line("", 105), line("localhost", 1)] {
        assert!(counted.contains(&expected.as_str()), "{counted:#?}");
    }
    stop(running).await;
}

#[tokio::test]
async fn a_reload_flips_egress_and_a_bad_one_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let (running, file) = egress_sidecar(dir.path(), &network("all", "Allow", ""));
    let host = format!("127.0.0.1:{}", upstream.port());
    let (status, _, _) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::OK);

    replace_file(&file, network("all", "Deny", ""));
    reloaded(running.admin, "ok", 1).await;
    let (status, error, _) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error.as_deref(), Some("egress denied"));

    // A trafficPolicy that is neither Allow nor Deny: refused whole.
    replace_file(&file, network("all", "Maybe", ""));
    reloaded(running.admin, "error", 1).await;
    let (status, _, _) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}

#[tokio::test]
async fn an_allowed_connect_is_tunnelled_and_a_denied_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, accepted) = tcp_echo().await;
    let (running, file) = egress_sidecar(dir.path(), &network("all", "Allow", ""));

    for authority in [
        format!("127.0.0.1:{}", echo.port()),
        format!("localhost:{}", echo.port()),
    ] {
        let (mut tunnel, head) = connect_head(running.outbound, &authority).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{authority}: {head}");
        tunnel.write_all(b"ping").await.unwrap();
        let mut got = [0; 4];
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping", "{authority}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    replace_file(&file, network("all", "Deny", ""));
    reloaded(running.admin, "ok", 1).await;
    for authority in [
        format!("127.0.0.1:{}", echo.port()),
        format!("localhost:{}", echo.port()),
    ] {
        let (_conn, head) = connect_head(running.outbound, &authority).await;
        assert!(head.starts_with("HTTP/1.1 403 "), "{authority}: {head}");
        assert!(head.contains("mesh-error: egress denied\r\n"), "{head}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    stop(running).await;
}

#[tokio::test]
async fn a_connect_without_egress_networks_gets_the_404_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, accepted) = tcp_echo().await;
    let (running, _) = egress_sidecar(dir.path(), "");
    let (_conn, head) = connect_head(running.outbound, &format!("127.0.0.1:{}", echo.port())).await;
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    stop(running).await;
}

#[test]
fn the_global_egress_namespace_is_configured_and_checked_like_a_namespace() {
    use mesh_examples::sidecar::config::ConfigErrorKind;
    use support::config::{assert_error, parse, reject};

    let default = parse("").unwrap().policy.config;
    assert_eq!(default.egress_namespace, "linkerd-egress");
    let config = parse("policy:\n  egress_namespace: mesh-egress\n").unwrap();
    assert_eq!(config.policy.config.egress_namespace, "mesh-egress");
    let error = reject("policy:\n  egress_namespace: Mesh_Egress\n");
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "policy.egress_namespace",
        2,
    );
}

/// An `EgressNetwork` of the configured global egress namespace applies to
/// a workload of another namespace that has none of its own.
#[tokio::test]
async fn a_network_of_the_global_egress_namespace_applies_to_every_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _) = named("upstream").await;
    let file = dir.path().join("policy.yaml");
    let global =
        network("all", "Allow", "").replace("namespace: emojivoto", "namespace: mesh-egress");
    std::fs::write(&file, global).unwrap();
    let running = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  egress_namespace: mesh-egress\n\
         \x20 files: [{}]\n",
        file.display()
    ));
    let host = format!("127.0.0.1:{}", upstream.port());
    let (status, _, body) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream"));
    let metrics = scrape(running.admin).await;
    let allow = route_labels("all", upstream.port(), "default", "http-egress-allow").replace(
        "parent_namespace=\"emojivoto\"",
        "parent_namespace=\"mesh-egress\"",
    );
    assert!(metrics.contains(&allow), "{metrics}");
    stop(running).await;
}

/// The sidecar's own outbound listener is never a destination: a request
/// sent there would come back as egress, again and again.
#[tokio::test]
async fn the_sidecars_own_listener_is_never_egress() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = egress_sidecar(dir.path(), &network("all", "Allow", ""));
    let own = running.outbound.to_string();
    let answer = tokio::time::timeout(WAIT_BOUND, send(running.outbound, &own, "GET", "/", ""));
    let (status, error, _) = answer.await.expect("the request looped");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error.as_deref(), Some("no route"));
    let connect = tokio::time::timeout(WAIT_BOUND, connect_head(running.outbound, &own));
    let (_conn, head) = connect.await.expect("the CONNECT looped");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    stop(running).await;
}

#[tokio::test]
async fn a_refused_grpc_call_is_counted_on_the_grpc_egress_route() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = egress_sidecar(dir.path(), &network("closed", "Deny", ""));
    let call = emoji_call("127.0.0.1:8080", "ListAll")
        .body(full(""))
        .unwrap();
    let res = h2_via(running.outbound, call).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "7");
    let metrics = scrape(running.admin).await;
    let deny = route_labels("closed", 8080, "default", "grpc-egress-deny");
    let expected = format!(
        "outbound_grpc_route_request_statuses_total{{{deny},hostname=\"\",\
         grpc_status=\"PERMISSION_DENIED\",error=\"\"}} 1"
    );
    assert_lines(&metrics, &[expected]);
    stop(running).await;
}

/// In ingress mode, a request without a destination override is egress
/// as any other; one whose override names no service keeps its 404: the
/// override names a service, never a destination outside the mesh.
#[tokio::test]
async fn in_ingress_mode_an_override_that_names_no_service_keeps_its_404() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, hits) = named("upstream").await;
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, network("all", "Allow", "")).unwrap();
    let running = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: true\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    let host = format!("127.0.0.1:{}", upstream.port());
    let req = Request::get(format!("http://{}/", running.outbound))
        .header("host", "emoji.example.com")
        .header("l5d-dst-override", &host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let (status, _, body) = send(running.outbound, &host, "GET", "/", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "upstream"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    stop(running).await;
}
