//! `stat` and `routes` against two live servers on 127.0.0.1, each with
//! `MetricsLayer` and an admin server, carrying traffic that fails one time
//! in ten.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
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
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// When a workload's admin server answers: each even-numbered scrape
/// (from 0) at once, saying so on `scraped`, and each odd-numbered one
/// only once the test has sent a round of traffic and added a permit to
/// `go`. A view's two scrapes then have exactly that round between them,
/// however long it took.
struct Rounds {
    scraped: tokio::sync::mpsc::UnboundedSender<()>,
    go: Arc<tokio::sync::Semaphore>,
}

/// Starts an app whose every tenth request fails with 500, and its admin
/// server, whose scrapes `rounds` holds; returns (app, admin) addresses.
async fn workload(trigger: &shutdown::Shutdown, rounds: Rounds) -> (SocketAddr, SocketAddr) {
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
    let scrapes = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(rounds);
    let held = service_fn(move |req: Request<Incoming>| {
        let (admin, scrapes, rounds) = (admin.clone(), scrapes.clone(), rounds.clone());
        async move {
            let n = scrapes.fetch_add(1, Ordering::SeqCst);
            if n % 2 == 1 {
                rounds.go.acquire().await.unwrap().forget();
            }
            let (head, body) = admin.oneshot(req).await.unwrap().into_parts();
            // Read whole before saying so: the counters are as they were.
            let body = body.collect().await.unwrap().to_bytes();
            if n % 2 == 0 {
                rounds.scraped.send(()).unwrap();
            }
            Ok::<_, Infallible>(Response::from_parts(head, Full::new(body)))
        }
    });
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        admin_listener,
        held,
        trigger.clone(),
    ));
    addrs
}

/// Sends `n` requests to `addr` one after another.
async fn traffic(addr: SocketAddr, n: u64) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..n {
        let res = client
            .request(
                Request::get(format!("http://{addr}/api/list"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
}

/// Per workload: waits for the first scrape of a view, sends it `n`
/// requests, and lets the view's second scrape through.
async fn round(
    workloads: &mut [(
        SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<()>,
        Arc<tokio::sync::Semaphore>,
    )],
    n: u64,
) {
    for (app, scraped, go) in workloads.iter_mut() {
        scraped.recv().await.unwrap();
        traffic(*app, n).await;
        go.add_permits(1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_reports_ninety_percent_success_for_traffic_failing_one_time_in_ten() {
    const REQUESTS: u64 = 100;
    const WINDOW: Duration = Duration::from_millis(50);
    let (trigger, signal) = shutdown::channel();
    let mut workloads = Vec::new();
    let mut admins = Vec::new();
    for _ in 0..2 {
        let (scraped, scrapes) = tokio::sync::mpsc::unbounded_channel();
        let go = Arc::new(tokio::sync::Semaphore::new(0));
        let rounds = Rounds {
            scraped,
            go: go.clone(),
        };
        let (app, admin) = workload(&signal, rounds).await;
        workloads.push((app, scrapes, go));
        admins.push(admin);
    }

    let targets = Target::parse_list(&format!("web={},vote={}", admins[0], admins[1])).unwrap();
    let stat = tokio::spawn({
        let targets = targets.clone();
        async move { stat::run(&targets, WINDOW, Format::Json).await.unwrap() }
    });
    round(&mut workloads, REQUESTS).await;
    let json = stat.await.unwrap();
    let routes = tokio::spawn({
        let targets = targets.clone();
        async move {
            routes::run(&targets[..1], None, WINDOW, Format::Table)
                .await
                .unwrap()
        }
    });
    round(&mut workloads[..1], REQUESTS).await;
    let routes_table = routes.await.unwrap();
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
        // Exactly the round's requests: 90 answered 200, 10 answered 500.
        assert_eq!(row["success"].as_f64(), Some(0.9), "{json}");
        // Over at least the window.
        let rps = row["rps"].as_f64().unwrap();
        assert!(
            rps > 0.0 && rps <= REQUESTS as f64 / WINDOW.as_secs_f64(),
            "{json}"
        );
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
    assert!(route.contains(" 90.00% "), "{routes_table}");
    assert!(lines.next().is_none(), "{routes_table}");
}
