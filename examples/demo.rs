//! The demo mesh: a backend behind a sidecar, called through a second
//! sidecar's outbound listener, all on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example demo              # until Ctrl-C
//! cargo run --release --example demo -- --duration 10s
//! ```
//!
//! It starts an application called `web`, an inbound sidecar in front of it,
//! and a client-side sidecar whose outbound listener routes `Host: web` to
//! that inbound listener. Once a second it sends a request along the whole
//! path (client → outbound → inbound → web) and prints the answer, then
//! reads the inbound sidecar's `/ready`. With `--duration` it exits by
//! itself, non-zero if any request failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response, body::Incoming};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_examples::sidecar::{
    self,
    config::{SidecarConfig, parse_duration},
};

/// Runs a small mesh on this machine and sends traffic through it.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Stop after this long (for example `30s`) instead of at Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(demo(args))
}

async fn demo(args: Args) -> ExitCode {
    let web = app("web").await;
    let inbound = sidecar::start(
        SidecarConfig::from_yaml(
            &format!(
                "inbound: {{listen: 127.0.0.1:0, app: {web}}}\n\
                 outbound: {{listen: 127.0.0.1:0}}\n\
                 admin: {{listen: 127.0.0.1:0}}\n\
                 server: {{threads: 1}}\n"
            ),
            "web-sidecar",
        )
        .unwrap(),
    )
    .unwrap();
    let client_side = sidecar::start(
        SidecarConfig::from_yaml(
            &format!(
                "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: web\n      endpoints: [{}]\n\
                 admin: {{listen: 127.0.0.1:0}}\n\
                 server: {{threads: 1}}\n",
                inbound.inbound[0]
            ),
            "client-sidecar",
        )
        .unwrap(),
    )
    .unwrap();
    println!("web app           {web}");
    println!(
        "web sidecar       inbound {} -> {web}, admin http://{}",
        inbound.inbound[0], inbound.admin
    );
    println!(
        "client sidecar    outbound {}, admin http://{}",
        client_side.outbound, client_side.admin
    );
    println!(
        "try: curl -H 'host: web' http://{}/hello\n",
        client_side.outbound
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let (mut sent, mut failed) = (0u64, 0u64);
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
        let req = Request::get(format!("http://{}/hello", client_side.outbound))
            .header("host", "web")
            .body(Empty::new())
            .unwrap();
        sent += 1;
        match client.request(req).await {
            Ok(res) => {
                let status = res.status();
                let body = res
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if !status.is_success() {
                    failed += 1;
                }
                let ready = client
                    .get(format!("http://{}/ready", inbound.admin).parse().unwrap())
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                println!(
                    "client -> outbound -> inbound -> web: {status} {:?}   web sidecar /ready: {ready}",
                    String::from_utf8_lossy(&body).trim_end()
                );
            }
            Err(error) => {
                failed += 1;
                println!("request failed: {error}");
            }
        }
    }
    client_side.shutdown();
    inbound.shutdown();
    tokio::task::spawn_blocking(move || {
        client_side.join();
        inbound.join();
    })
    .await
    .unwrap();
    println!("\n{sent} requests, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A tiny application that greets callers by path.
async fn app(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let text = format!("hello from {name}: {} {}", req.method(), req.uri().path());
                    Ok::<_, hyper::Error>(Response::new(http_body_util::Full::new(Bytes::from(
                        text,
                    ))))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}
