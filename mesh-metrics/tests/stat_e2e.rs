//! `stat` and `routes` against two live servers on 127.0.0.1, each with
//! `MetricsLayer` and an admin server, carrying traffic that fails one time
//! in ten.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Readiness},
    route::RouteId,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::{
    HttpMetrics, MetricsLayer,
    query::{Format, Target, routes, stat},
};
use prometheus_client::registry::Registry;
use tower::{ServiceBuilder, service_fn};

/// Starts an app whose every tenth request fails with 500, and its admin
/// server; returns (app, admin) addresses.
async fn workload(trigger: &shutdown::Shutdown) -> (SocketAddr, SocketAddr) {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let seen = Arc::new(AtomicU64::new(0));
    let app = ServiceBuilder::new()
        .map_request(|mut req: Request<Incoming>| {
            req.extensions_mut().insert(RouteId::new("get-emoji"));
            req
        })
        .layer(MetricsLayer::inbound(&metrics))
        .service(service_fn(move |_req: Request<Incoming>| {
            let n = seen.fetch_add(1, Ordering::Relaxed);
            async move {
                let mut res = Response::new(Full::<Bytes>::from("ok"));
                if n % 10 == 9 {
                    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok::<_, Infallible>(res)
            }
        }));
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (
        app_listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        app_listener,
        app,
        trigger.clone(),
    ));
    let admin = Admin::new(registry, Readiness::new());
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        admin_listener,
        admin,
        trigger.clone(),
    ));
    addrs
}

/// Sends requests to `addr` one after another until `stop`, at most 50,000.
async fn traffic(addr: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && sent < 50_000 {
        let res = client
            .request(
                Request::get(format!("http://{addr}/api/list"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_reports_ninety_percent_success_for_traffic_failing_one_time_in_ten() {
    let (trigger, signal) = shutdown::channel();
    let (app_a, admin_a) = workload(&signal).await;
    let (app_b, admin_b) = workload(&signal).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = [
        tokio::spawn(traffic(app_a, stop.clone())),
        tokio::spawn(traffic(app_b, stop.clone())),
    ];

    let targets = Target::parse_list(&format!("web={admin_a},vote={admin_b}")).unwrap();
    let json = stat::run(&targets, Duration::from_secs(1), Format::Json)
        .await
        .unwrap();
    let routes_table = routes::run(
        &targets[..1],
        None,
        Duration::from_millis(500),
        Format::Table,
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() > 50, "too little traffic to measure");
    }
    trigger.trigger();

    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    for (row, name) in rows.iter().zip(["web", "vote"]) {
        assert_eq!(row["name"], name);
        assert_eq!(
            (row["meshed"].as_u64(), row["replicas"].as_u64()),
            (Some(1), Some(1))
        );
        let success = row["success"].as_f64().unwrap();
        assert!((success - 0.9).abs() <= 0.03, "success {success} in {json}");
        assert!(row["rps"].as_f64().unwrap() > 10.0, "{json}");
        let p50 = row["latency_ms_p50"].as_f64().unwrap();
        let p99 = row["latency_ms_p99"].as_f64().unwrap();
        assert!(p50 > 0.0 && p50 <= p99, "{json}");
        // Plaintext connections: none of the traffic is on mutual TLS.
        assert_eq!(row["tls"].as_f64(), Some(0.0));
    }
    let mut lines = routes_table.lines();
    assert!(lines.next().unwrap().starts_with("ROUTE"), "{routes_table}");
    let route = lines.next().unwrap();
    assert!(route.starts_with("get-emoji"), "{routes_table}");
    assert!(lines.next().is_none(), "{routes_table}");
}
