//! Mutual TLS in process: a hyper server behind the mesh's TLS acceptor and
//! a client through the mesh's connector, with no sidecar.
//!
//! The server runs on `mesh_core::serve::Server` with `TlsAccept` in strict
//! mode; its handler reads the caller's identity from the `ConnectionInfo`
//! request extension. The client is `mesh_core::client::Client` over
//! `TlsConnector`, expecting the server's identity (not its hostname), with
//! the `RetireLayer` that retires pooled connections when credentials
//! rotate.
//!
//! ```text
//! cargo run --example inprocess_mtls
//! ```
//!
//! prints what each side saw and exits:
//!
//! ```text
//! server spiffe://example.org/ns/shop/sa/api listening on 127.0.0.1:PORT (strict mtls)
//! request 1: 200 "hello spiffe://example.org/ns/shop/sa/web" from spiffe://example.org/ns/shop/sa/api
//! ...
//! ```
//!
//! Subcommands mint certificates and run a strict server from files, for
//! testing against other TLS tools (`.ci/interop-tls.sh` does exactly this):
//!
//! ```text
//! cargo run --example inprocess_mtls -- ca --trust-domain example.org --out /tmp/ca
//! cargo run --example inprocess_mtls -- issue --ca /tmp/ca --out /tmp/api \
//!     --identity spiffe://example.org/ns/shop/sa/api --dns localhost --ttl 24h
//! cargo run --example inprocess_mtls -- serve-strict --certs /tmp/api --listen 127.0.0.1:8443
//! ```
//!
//! `serve-strict` prints `listening on ADDR`, reloads the files when they
//! change, and answers `hello <caller identity>` until Ctrl-C or SIGTERM.
//! A client needs a certificate of its own; without one the handshake fails:
//!
//! ```text
//! cargo run --example inprocess_mtls -- issue --ca /tmp/ca --out /tmp/web \
//!     --identity spiffe://example.org/ns/shop/sa/web
//! curl --cacert /tmp/api/ca.crt --cert /tmp/web/tls.crt --key /tmp/web/tls.key \
//!     https://localhost:8443/    # hello spiffe://example.org/ns/shop/sa/web
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, time::Duration};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::{
    ConnectionInfo, Identity,
    body::BoxBody,
    client::{Client, ClientConfig},
    serve::{Server, ServerConfig, shutdown},
};
use mesh_tls::{
    AcceptConfig, CredentialFiles, CredentialStore, InboundMode, OutboundTls, ServerTls,
    StoreConfig, TlsAccept, TlsConnector, TlsTargets,
    ca::{self, CertificateAuthority, IssueRequest},
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[derive(Parser)]
#[command(about = "Mutual TLS in process, and certificate tooling")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a trust anchor and an issuer.
    Ca {
        #[arg(long)]
        trust_domain: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a workload certificate from a CA directory.
    Issue {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        identity: String,
        /// Lifetime: a number with s, m, h or d.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// An extra DNS SAN, for tools that check hostnames: a single
        /// label such as `localhost`. A name with dots could pass for
        /// another workload's identity, so the CA refuses it.
        #[arg(long)]
        dns: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve strict mutual TLS with the credentials in a directory.
    ServeStrict {
        #[arg(long)]
        certs: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match Args::parse().command {
        None => demo().await,
        Some(Command::Ca { trust_domain, out }) => {
            let ca = ca::write_ca(&out, &trust_domain.parse()?)?;
            println!("wrote a ca for {} to {}", ca.trust_domain(), out.display());
            Ok(())
        }
        Some(Command::Issue {
            ca: ca_dir,
            identity,
            ttl,
            dns,
            out,
        }) => {
            let mut request = IssueRequest::new(identity.parse()?).with_ttl(ttl);
            for name in dns {
                request = request.with_dns_name(name);
            }
            let issued = ca::issue_with(&ca_dir, &request, &out)?;
            println!("issued {} to {}", issued.identity(), out.display());
            Ok(())
        }
        Some(Command::ServeStrict { certs, listen }) => serve_strict(certs, listen).await,
    }
}

/// Answers `hello <caller>`, reading the caller from the connection.
async fn hello(req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let caller = req
        .extensions()
        .get::<ConnectionInfo>()
        .and_then(ConnectionInfo::peer_identity)
        .map_or_else(|| "stranger".to_owned(), Identity::to_string);
    Ok(Response::new(mesh_core::body::full(format!(
        "hello {caller}"
    ))))
}

async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let ca = CertificateAuthority::generate("example.org".parse()?)?;
    let api: Identity = "spiffe://example.org/ns/shop/sa/api".parse()?;
    let web: Identity = "spiffe://example.org/ns/shop/sa/web".parse()?;
    let ttl = Duration::from_secs(3600);
    let store =
        |id: &Identity| -> Result<CredentialStore, Box<dyn std::error::Error + Send + Sync>> {
            let creds = ca.issue(id, ttl)?.credentials()?;
            Ok(CredentialStore::with_credentials(
                StoreConfig::default(),
                creds,
            )?)
        };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, signal) = shutdown::channel();
    let accept = TlsAccept::new(store(&api)?, AcceptConfig::with_mode(InboundMode::Strict));
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    let server = tokio::spawn(server.serve_http(listener, service_fn(hello), signal));
    println!("server {api} listening on {addr} (strict mtls)");

    let config = ClientConfig::default();
    let targets =
        TlsTargets::new(OutboundTls::Plaintext).with_endpoint(addr, OutboundTls::Mtls(api));
    let connector = TlsConnector::new(&config, store(&web)?, targets)?;
    let client = ServiceBuilder::new()
        .layer(connector.retire_layer())
        .service(Client::<Empty<Bytes>, _>::with_connector(
            &config, connector,
        ));
    for n in 1..=3 {
        let req = Request::get(format!("http://{addr}/")).body(Empty::new())?;
        let res = client.clone().oneshot(req).await?;
        let status = res.status();
        let server_id = res
            .extensions()
            .get::<ServerTls>()
            .map(|t| t.server_identity().clone());
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "request {n}: {} {:?} from {}",
            status.as_u16(),
            String::from_utf8_lossy(&body),
            server_id.map_or_else(|| "?".to_owned(), |id| id.to_string()),
        );
    }
    stop.trigger();
    server.await?;
    Ok(())
}

async fn serve_strict(
    certs: PathBuf,
    listen: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let files = CredentialFiles::in_dir(&certs);
    let store = CredentialStore::default();
    store.load_files(&files)?;
    tokio::spawn(
        store
            .clone()
            .watch_files(files, mesh_tls::DEFAULT_WATCH_INTERVAL),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let (stop, signal) = shutdown::channel();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.trigger();
    });
    let accept = TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict));
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    Server::new(config)
        .with_accept(accept)
        .serve_http(listener, service_fn(hello), signal)
        .await;
    Ok(())
}

/// Parses `90s`, `15m`, `24h` or `7d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {s}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}
