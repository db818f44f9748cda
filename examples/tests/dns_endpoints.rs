//! Outbound endpoints given by DNS name: how the file takes them, the
//! sidecar reaching an application by name, and `sidecar check` saying
//! which names resolve. Names here resolve through `/etc/hosts`
//! (`localhost`) or never (`.invalid`, RFC 6761): no test needs a DNS
//! server. How a changed or failed answer moves requests is tested beside
//! the resolver loop (`sidecar::outbound::endpoints`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use http::{Request, StatusCode};
use mesh_core::proxy::resolve::EndpointAddr;
use mesh_examples::sidecar::check::{self, CheckOptions, Status};
use mesh_examples::sidecar::config::ConfigErrorKind;
use support::config::{assert_error, parse, reject};
use support::*;

fn service(endpoints: &str) -> String {
    format!("outbound:\n  services:\n    - name: emoji\n      endpoints: {endpoints}\n")
}

#[test]
fn endpoints_take_addresses_and_names_with_ports_in_file_order() {
    let yaml = "\
outbound:
  services:
    - name: emoji
      endpoints:
        - emoji.emojivoto.svc.cluster.local:8080
        - 10.0.0.1:8080
        - '[::1]:8080'
        - web-0.web:80
      resolve_interval: 30s
";
    let config = parse(yaml).unwrap();
    let emoji = &config.outbound.services[0];
    let name = |host: &str, port| EndpointAddr::Name {
        host: host.into(),
        port,
    };
    let addr = |text: &str| EndpointAddr::Socket(text.parse().unwrap());
    assert_eq!(
        emoji.endpoints,
        [
            name("emoji.emojivoto.svc.cluster.local", 8080),
            addr("10.0.0.1:8080"),
            addr("[::1]:8080"),
            name("web-0.web", 80),
        ]
    );
    assert_eq!(emoji.resolve_interval, Duration::from_secs(30));
    let config = parse(&service("[emoji:8080]")).unwrap();
    assert_eq!(
        config.outbound.services[0].resolve_interval,
        Duration::from_secs(5)
    );
}

#[test]
fn a_name_without_a_port_is_refused_at_its_line() {
    let error = reject(&service("\n        - 10.0.0.1:80\n        - emoji"));
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].endpoints[1]",
        6,
    );
    assert!(
        error
            .to_string()
            .contains("invalid endpoint \"emoji\" (expected ip:port or host:port"),
        "{error}"
    );
}

#[test]
fn a_name_with_a_bad_port_or_host_is_refused_saying_why() {
    let cases = [
        ("emoji:0", "a port from 1 to 65535"),
        ("emoji:65536", "a port from 1 to 65535"),
        ("emoji:+80", "a port from 1 to 65535"),
        ("emoji:", "a port from 1 to 65535"),
        ("Emoji:80", "service names are lowercase"),
        ("emoji_v2:80", "holds only lowercase letters"),
        ("emoji..svc:80", "cannot start or end with '.'"),
        ("-emoji:80", "cannot start or end with '-'"),
    ];
    for (endpoint, why) in cases {
        let error = reject(&service(&format!("['{endpoint}']")));
        assert_error(
            &error,
            ConfigErrorKind::InvalidValue,
            "outbound.services[0].endpoints[0]",
            4,
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("invalid endpoint {endpoint:?}")),
            "{text}"
        );
        assert!(text.contains(why), "{endpoint}: {text}");
    }
}

#[test]
fn something_that_looks_like_an_ip_is_refused_as_a_socket_address() {
    for endpoint in ["10.0.0.1", "10.0.0.1:99999", "[::1]", "[::1]:x"] {
        let error = reject(&service(&format!("['{endpoint}']")));
        let text = error.to_string();
        assert!(
            text.contains(&format!("invalid socket address {endpoint:?}")),
            "{text}"
        );
    }
}

#[test]
fn a_resolve_interval_of_zero_is_refused() {
    let yaml = service("[emoji:80]") + "      resolve_interval: 0s\n";
    let error = reject(&yaml);
    assert_error(
        &error,
        ConfigErrorKind::InvalidValue,
        "outbound.services[0].resolve_interval",
        5,
    );
}

/// An application answering `ok` on `localhost:PORT`: on 127.0.0.1, and
/// on ::1 too where the host has it, since `localhost` may name both.
async fn localhost_app() -> u16 {
    let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    let ok = |_: Request<hyper::body::Incoming>| async { Ok(http::Response::new(full("ok"))) };
    serve(v4, ok);
    if let Ok(v6) = tokio::net::TcpListener::bind(("::1", port)).await {
        serve(v6, ok);
    }
    port
}

#[tokio::test]
async fn a_sidecar_reaches_an_app_by_name() {
    let port = localhost_app().await;
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji\n      \
         endpoints: [localhost:{port}]\n      resolve_interval: 1s\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    );
    let sidecar = sidecar(&yaml);
    let client = http1();
    for _ in 0..4 {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji:8080")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_bytes(res).await, "ok");
    }
    let metrics = scrape(sidecar.admin).await;
    let resolved = "outbound_endpoint_resolutions_total{service=\"emoji\",result=\"success\"} ";
    assert!(metrics.contains(resolved), "{metrics}");
    assert!(
        metrics.lines().any(
            |line| line.starts_with("outbound_endpoints{service=\"emoji\"} ")
                && !line.ends_with(" 0")
        ),
        "{metrics}"
    );
    stop(sidecar).await;
}

/// An endpoint that is the sidecar's own outbound listener would send
/// each request round the sidecar again, on a new connection each time,
/// until the connection limit left every one of them waiting: it is left
/// out. A service left with none has its requests wait for an endpoint,
/// for the fail-fast timeout (3 s), then answers `503`: the service is in
/// fail-fast.
#[tokio::test]
async fn the_sidecars_own_outbound_listener_is_left_out_of_the_endpoints() {
    let app = localhost_app().await;
    // Known before the sidecar binds it: below the ephemeral range, where
    // another test's bind to port 0 cannot take it meanwhile.
    let port = support::free_port();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:{port}\n  services:\n\
         \x20   - name: emoji\n      endpoints: [127.0.0.1:{port}, 127.0.0.1:{app}]\n\
         \x20   - name: web\n      endpoints: ['0.0.0.0:{port}']\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n  max_connections: 64\n"
    );
    let sidecar = sidecar(&yaml);
    let client = http1();
    let send = |host: &'static str| {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", host)
            .body(full(""))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), client.request(req))
    };
    for _ in 0..8 {
        let res = send("emoji").await.expect("the request looped").unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_bytes(res).await, "ok");
    }
    let res = send("web").await.expect("the request looped").unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], "service in fail-fast");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_sidecar_starts_when_a_name_does_not_resolve_and_answers_503() {
    let yaml = "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji\n      \
         endpoints: [emoji.invalid:8080]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n";
    let sidecar = sidecar(yaml);
    let req = Request::get(format!("http://{}/", sidecar.outbound))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    // The request waits for an answer from DNS, for the fail-fast timeout
    // (3 s), and none that resolves comes.
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["mesh-error"], "service in fail-fast");
    let metrics = scrape(sidecar.admin).await;
    let failed = "outbound_endpoint_resolutions_total{service=\"emoji\",result=\"failure\"} 1";
    assert!(metrics.contains(failed), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn check_warns_about_a_name_that_does_not_resolve() {
    let dir = std::env::temp_dir().join(format!("dns-endpoints-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.yaml");
    let yaml = "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: emoji\n      \
         endpoints: [localhost:8080, emoji.invalid:8080, 127.0.0.1:9]\n\
         admin:\n  listen: 127.0.0.1:0\n";
    std::fs::write(&path, yaml).unwrap();
    let options = CheckOptions::default()
        .with_pre(true)
        .with_timeout(Duration::from_secs(10));
    let report = check::run(&path, &options).await;
    std::fs::remove_dir_all(&dir).unwrap();

    let group = report.group("sidecar-outbound").expect("an outbound group");
    let titles: Vec<(&str, Status)> = group
        .checks
        .iter()
        .map(|check| (check.title.as_str(), check.status))
        .collect();
    assert_eq!(
        titles,
        [
            (
                "endpoint localhost:8080 of service emoji resolves",
                Status::Pass
            ),
            (
                "endpoint emoji.invalid:8080 of service emoji resolves",
                Status::Warn
            ),
        ],
        "{report}"
    );
    let warned = report
        .find("endpoint emoji.invalid:8080 of service emoji resolves")
        .unwrap();
    let detail = warned.detail.as_deref().unwrap();
    assert!(detail.contains("requests to emoji get 503"), "{detail}");
}
