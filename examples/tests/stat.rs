//! `sidecar stat` and `sidecar routes` against live sidecars: two meshed
//! workloads behind sidecars that speak mutual TLS, fed by a third sidecar,
//! with applications that fail one request in ten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::Request;
use mesh_examples::sidecar::{certs, views};
use mesh_metrics::query::Format;
use support::*;

/// The window the views whose success ratios are read measure over. One
/// request in ten fails, and a ratio within 0.03 of 0.9 needs some 34
/// requests in the window, whichever of them fail: a busy machine may
/// send 20 a second.
const WINDOW: Duration = Duration::from_secs(3);

/// Sends requests for `host` through `outbound` one after another until
/// `stop`, at most 50,000.
async fn traffic(outbound: SocketAddr, host: &'static str, stop: Arc<AtomicBool>) -> u64 {
    let client = http1();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && sent < 50_000 {
        let req = Request::get(format!("http://{outbound}/api/list"))
            .header("host", host)
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        body_bytes(res).await;
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_shows_ninety_percent_success_all_on_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    let certs_for = |name: &str| {
        let out = dir.path().join(name);
        certs::issue(&ca, &identity(name), Duration::from_secs(3600), &out).unwrap();
        out
    };
    let mut workloads = Vec::new();
    for name in ["web", "vote"] {
        let app = ok_app(true).await;
        workloads.push(sidecar(&format!(
            "identity:\n  dir: {}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  tls: strict\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            certs_for(name).display()
        )));
    }
    let client = sidecar(&format!(
        "identity:\n  dir: {}\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: web\n      endpoints: [{}]\n      identity: {}\n\
         \x20   - name: vote\n      endpoints: [{}]\n      identity: {}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        certs_for("load").display(),
        workloads[0].inbound[0],
        identity("web"),
        workloads[1].inbound[0],
        identity("vote"),
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let load = [
        tokio::spawn(traffic(client.outbound, "web", stop.clone())),
        tokio::spawn(traffic(client.outbound, "vote", stop.clone())),
    ];
    let admin = format!("web={},vote={}", workloads[0].admin, workloads[1].admin);
    let json = views::stat(&admin, WINDOW, Format::Json).await.unwrap();
    let table = views::stat(&admin, Duration::from_millis(500), Format::Table)
        .await
        .unwrap();
    let routes = views::routes(&client.admin.to_string(), Some("web"), WINDOW, Format::Json)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() > 50, "too little traffic to measure");
    }

    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    for (row, name) in rows.iter().zip(["web", "vote"]) {
        assert_eq!(row["name"], name, "{json}");
        assert_eq!(row["meshed"].as_u64(), Some(1), "{json}");
        let success = row["success"].as_f64().unwrap();
        assert!((success - 0.9).abs() <= 0.03, "success {success}: {json}");
        assert!(row["rps"].as_f64().unwrap() > 10.0, "{json}");
        // Every request reached the workload over mutual TLS.
        assert_eq!(row["tls"].as_f64(), Some(1.0), "{json}");
    }
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    assert!(lines.any(|l| l.starts_with("web")), "{table}");

    // The client's outbound routes to web: one route, the same failures.
    let rows: serde_json::Value = serde_json::from_str(&routes).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{routes}");
    assert_eq!(rows[0]["service"], "web", "{routes}");
    assert_eq!(rows[0]["route"], "default", "{routes}");
    let success = rows[0]["success"].as_f64().unwrap();
    assert!((success - 0.9).abs() <= 0.03, "success {success}: {routes}");

    stop_all(client, workloads).await;
}

async fn stop_all(
    client: mesh_examples::sidecar::Running,
    workloads: Vec<mesh_examples::sidecar::Running>,
) {
    stop(client).await;
    for running in workloads {
        stop(running).await;
    }
}

#[tokio::test]
async fn the_views_refuse_a_bad_admin_list_and_unreachable_servers() {
    let error = views::stat("web=nowhere", Duration::from_millis(10), Format::Table)
        .await
        .unwrap_err();
    assert!(matches!(error, views::ViewError::Targets(_)), "{error:?}");
    let closed = refused_addr().await;
    let error = views::routes(
        &closed.to_string(),
        None,
        Duration::from_millis(10),
        Format::Json,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, views::ViewError::Query(_)), "{error:?}");
}

#[tokio::test]
async fn every_family_is_on_the_admin_registry() {
    let (app, _) = backend().await;
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    for (addr, host) in [
        (running.inbound[0], "app"),
        (running.outbound, "web"),
        (running.outbound, "nope"),
    ] {
        let req = Request::get(format!("http://{addr}/"))
            .header("host", host)
            .body(full(""))
            .unwrap();
        body_bytes(http1().request(req).await.unwrap()).await;
    }
    let metrics = scrape(running.admin).await;
    for family in [
        "request_total{direction=\"inbound\"",
        "request_total{direction=\"outbound\",dst_service=\"web\"",
        "response_latency_ms_bucket{",
        "tcp_open_total{direction=\"inbound\",peer=\"src\"",
        "tcp_open_total{direction=\"outbound\",peer=\"dst\"",
        "tcp_read_bytes_total{",
        "inbound_http_authz_allow_total{",
        "retry_requests_total{",
        "process_start_time_seconds",
        "proxy_build_info{",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    // The unknown authority's 404 is counted, with the mesh's error.
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("response_total{direction=\"outbound\"")
                && l.contains("status_code=\"404\"")
                && l.contains("error=\"no_route\"")),
        "{metrics}"
    );
    stop(running).await;
}
