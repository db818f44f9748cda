//! A service that records its own golden metrics, in process, and serves
//! them on an admin port.
//!
//! The app answers on one port through `MetricsLayer` (inbound) and
//! `TcpAccept`; it calls itself through a mesh-core client with
//! `MetricsLayer` (outbound) and `TcpConnect`; `/metrics` on the admin port
//! serves all of it, with the process metrics, as OpenMetrics text. One
//! request in ten goes to a route that fails with 500.
//!
//! ```text
//! cargo run --example inprocess_metrics              # 50 requests, then print /metrics
//! cargo run --example inprocess_metrics -- --serve   # keep serving and calling until killed
//! ```
//!
//! It first prints `app=ADDR admin=ADDR`. Without `--serve` it then prints
//! the `/metrics` body, with a few lines on how to read it, and exits:
//!
//! ```text
//! request_total{direction="inbound",target_addr="127.0.0.1:PORT",target_ip="127.0.0.1",target_port="PORT",tls="no_identity",no_tls_reason="no_tls_from_remote",route_name="list"} 45
//! request_total{direction="inbound",target_addr="127.0.0.1:PORT",target_ip="127.0.0.1",target_port="PORT",tls="no_identity",no_tls_reason="no_tls_from_remote",route_name="vote"} 5
//! ...
//! response_total{direction="outbound",dst_service="self",route_name="vote",tls="disabled",status_code="500",classification="failure"} 5
//! ```
//!
//! With `--serve` it sends about 50 requests a second until Ctrl-C, SIGTERM
//! or `curl -X POST http://ADMIN/shutdown`, and `/metrics` on the admin
//! address shows the counts growing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, io::Write, net::SocketAddr, time::Duration};

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use mesh_core::{
    admin::{Admin, Readiness},
    client::{Client, ClientConfig},
    conn::{NoTlsReason, Tls},
    labels::DstService,
    route::RouteId,
    serve::{PlaintextAccept, Server, ServerConfig, shutdown},
};
use mesh_metrics::{
    BuildInfo, HttpMetrics, MetricsLayer, TcpAccept, TcpConnect, TcpMetrics,
    register_process_metrics,
};
use prometheus_client::registry::Registry;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[derive(Parser)]
struct Args {
    /// Where the app listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    app: SocketAddr,
    /// Where the admin server (`/metrics`) listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// Keep serving and calling until killed.
    #[arg(long)]
    serve: bool,
}

/// Names the route of a request by its path, as a router would.
fn route_of<B>(mut req: Request<B>) -> Request<B> {
    let route = if req.uri().path() == "/api/vote" {
        "vote"
    } else {
        "list"
    };
    req.extensions_mut().insert(RouteId::new(route));
    req
}

async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::from("ok\n"));
    if req.uri().path() == "/api/vote" {
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(res)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let tcp = TcpMetrics::register(&mut registry);
    register_process_metrics(&mut registry, &BuildInfo::new(env!("CARGO_PKG_VERSION")));

    let (trigger, signal) = shutdown::channel();
    let app_listener = tokio::net::TcpListener::bind(args.app).await?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin).await?;
    let app_addr = app_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let inbound = ServiceBuilder::new()
        .map_request(route_of)
        .layer(MetricsLayer::inbound(&http))
        .service(service_fn(app));
    let server = Server::new(ServerConfig::default())
        .with_accept(TcpAccept::inbound(&tcp, PlaintextAccept))
        .serve_http(app_listener, inbound, signal.clone());
    let app_task = tokio::spawn(server);
    let admin = Admin::new(registry, Readiness::new()).with_shutdown(trigger.clone());
    let admin_task = tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        admin_listener,
        admin,
        signal.clone(),
    ));
    println!("app={app_addr} admin={admin_addr}");
    if args.serve {
        println!("calling the app until Ctrl-C; scrape it with: curl http://{admin_addr}/metrics");
    }
    std::io::stdout().flush()?;

    // The client side: the app calling itself as the service `self`.
    let config = ClientConfig::default();
    let plaintext = Tls::Plaintext(NoTlsReason::Disabled);
    let connector = TcpConnect::outbound(&tcp, &plaintext, config.http_connector());
    let client: Client<Empty<Bytes>, _> = Client::with_connector(&config, connector);
    let outbound = ServiceBuilder::new()
        .map_request(|mut req: Request<Empty<Bytes>>| {
            req.extensions_mut().insert(DstService("self".into()));
            route_of(req)
        })
        .layer(MetricsLayer::outbound(&http).with_server_tls(&plaintext))
        .service(client);

    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let stop = stop_signal(signal.clone());
    tokio::pin!(stop);
    while args.serve || sent < 50 {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {}
        }
        let path = if sent % 10 == 9 {
            "/api/vote"
        } else {
            "/api/list"
        };
        let req = Request::get(format!("http://{app_addr}{path}"))
            .body(Empty::new())
            .unwrap();
        match outbound.clone().oneshot(req).await {
            Ok(res) => drop(res.into_body().collect().await),
            Err(error) => eprintln!("request failed: {error}"),
        }
        sent += 1;
    }

    if !args.serve {
        let res = fetch_metrics(admin_addr).await;
        println!("GET http://{admin_addr}/metrics after {sent} requests:\n");
        print!("{res}");
        println!("{GUIDE}");
    }
    trigger.trigger();
    let _ = app_task.await;
    let _ = admin_task.await;
    Ok(())
}

/// How to read the `/metrics` text, printed after it.
const GUIDE: &str = "
How to read it: each request is counted twice, once by the app's server
(direction=\"inbound\") and once by its client (direction=\"outbound\",
dst_service=\"self\"). request_total and response_total count them by route;
classification=\"failure\" marks the 500s of route \"vote\", so the success rate
is the success share of response_total. response_latency_ms is a histogram in
milliseconds, tcp_* count the connections and their bytes, and process_* the
process. Run with --serve to keep it going and scrape it yourself.";

/// Fires on Ctrl-C, SIGTERM or an admin `POST /shutdown`.
async fn stop_signal(shutdown: shutdown::Shutdown) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = shutdown.wait() => {}
    }
}

/// GETs the admin server's `/metrics`.
async fn fetch_metrics(admin: SocketAddr) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let res = client
        .get(format!("http://{admin}/metrics").parse().unwrap())
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}
