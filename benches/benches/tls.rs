//! Mutual TLS through mesh-tls versus raw tokio-rustls, with the same
//! certificates, provider, key exchange groups and ALPN on both sides:
//!
//! - `tls_handshake`: a full mutual TLS 1.3 handshake over a new loopback
//!   TCP connection, then a one-byte round trip so the client also waits
//!   for the server to verify its certificate. `mesh` runs `TlsConnector`
//!   (over hyper-util's `HttpConnector`) against `TlsAccept` in strict
//!   mode; `raw` runs tokio-rustls's connector and acceptor with rustls's
//!   WebPKI verifiers.
//! - `tls_bulk`: a 1 MiB upload over one warm connection, acknowledged by
//!   one byte, through the same two stacks.
//!
//! ```text
//! cargo bench -p mesh-benches --bench tls -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The servers run on a thread and runtime of their own, as a peer process
//! would. After the criterion groups, `tls_paired` runs both stacks in
//! interleaved rounds and prints the median ratio of their times: on a
//! shared 2-core machine that ratio is steadier than two medians taken one
//! after the other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use hyper_util::rt::TokioIo;
use mesh_benches::{median, wants_paired};
use mesh_core::{client::ClientConfig, serve::Accept};
use mesh_tls::{
    AcceptConfig, CredentialStore, InboundMode, OutboundTls, StoreConfig, TlsAccept, TlsConnector,
    TlsTargets,
    ca::{CertificateAuthority, IssueRequest, IssuedCertificate},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;

const BULK: usize = 1 << 20;
const API: &str = "spiffe://example.org/ns/bench/sa/api";
const WEB: &str = "spiffe://example.org/ns/bench/sa/web";

struct Certs {
    server: IssuedCertificate,
    client: IssuedCertificate,
}

impl Certs {
    fn new() -> Self {
        let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
        let hour = Duration::from_secs(3600);
        let issue = |id: &str| {
            ca.issue_with(
                &IssueRequest::new(id.parse().unwrap())
                    .with_ttl(hour)
                    .with_dns_name("localhost"),
            )
            .unwrap()
        };
        Self {
            server: issue(API),
            client: issue(WEB),
        }
    }

    fn store(issued: &IssuedCertificate) -> CredentialStore {
        CredentialStore::with_credentials(StoreConfig::default(), issued.credentials().unwrap())
            .unwrap()
    }
}

fn chain(issued: &IssuedCertificate) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(issued.chain_pem().as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(issued: &IssuedCertificate) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(issued.key_pem().as_bytes()).unwrap()
}

fn roots(issued: &IssuedCertificate) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(issued.bundle_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

fn alpn() -> Vec<Vec<u8>> {
    vec![mesh_tls::ALPN_H2.to_vec(), mesh_tls::ALPN_HTTP1.to_vec()]
}

/// rustls's own server config: the same provider, versions, key, ALPN, and
/// no resumption, with the stock WebPKI client verifier.
fn raw_server(certs: &Certs) -> tokio_rustls::TlsAcceptor {
    let provider = mesh_tls::provider();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&certs.server),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(&certs.server), key(&certs.server))
        .unwrap();
    config.alpn_protocols = alpn();
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// rustls's own client config, verifying the server by hostname.
fn raw_client(certs: &Certs) -> tokio_rustls::TlsConnector {
    let provider = mesh_tls::provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(mesh_tls::PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots(&certs.client))
        .with_client_auth_cert(chain(&certs.client), key(&certs.client))
        .unwrap();
    config.alpn_protocols = alpn();
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// What a server does with each connection once TLS is up.
#[derive(Clone, Copy)]
enum Work {
    /// Echo one byte, once.
    Ping,
    /// Read 1 MiB, answer one byte; repeat until the peer closes.
    Bulk,
}

async fn work<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, work: Work) {
    match work {
        Work::Ping => {
            let mut byte = [0u8; 1];
            if io.read_exact(&mut byte).await.is_ok() {
                let _ = io.write_all(&byte).await;
                let _ = io.flush().await;
            }
        }
        Work::Bulk => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let mut left = BULK;
                while left > 0 {
                    match io.read(&mut buf[..left.min(64 * 1024)]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => left -= n,
                    }
                }
                if io.write_all(b"k").await.is_err() || io.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Binds a listener on the server thread's runtime and serves each
/// connection through the mesh acceptor or raw tokio-rustls.
async fn listen(mesh: Option<TlsAccept>, raw: tokio_rustls::TlsAcceptor, w: Work) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mesh, raw) = (mesh.clone(), raw.clone());
            tokio::spawn(async move {
                match mesh {
                    Some(mesh) => {
                        if let Ok(accepted) = mesh.accept(tcp).await {
                            work(accepted.io, w).await;
                        }
                    }
                    None => {
                        if let Ok(tls) = raw.accept(tcp).await {
                            work(tls, w).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

struct Servers {
    mesh_ping: SocketAddr,
    raw_ping: SocketAddr,
    mesh_bulk: SocketAddr,
    raw_bulk: SocketAddr,
}

fn servers(certs: &Certs) -> Servers {
    let strict = TlsAccept::new(
        Certs::store(&certs.server),
        AcceptConfig::with_mode(InboundMode::Strict),
    );
    let raw = raw_server(certs);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let servers = Servers {
                mesh_ping: listen(Some(strict.clone()), raw.clone(), Work::Ping).await,
                raw_ping: listen(None, raw.clone(), Work::Ping).await,
                mesh_bulk: listen(Some(strict), raw.clone(), Work::Bulk).await,
                raw_bulk: listen(None, raw, Work::Bulk).await,
            };
            tx.send(servers).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

fn mesh_connector(certs: &Certs, addrs: &[SocketAddr]) -> TlsConnector {
    let targets = addrs
        .iter()
        .fold(TlsTargets::new(OutboundTls::Plaintext), |t, addr| {
            t.with_endpoint(*addr, OutboundTls::Mtls(API.parse().unwrap()))
        });
    TlsConnector::new(
        &ClientConfig::default(),
        Certs::store(&certs.client),
        targets,
    )
    .unwrap()
}

async fn mesh_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> TokioIo<mesh_tls::ClientIo<TokioIo<TcpStream>>> {
    let uri = format!("http://{addr}/").parse().unwrap();
    TokioIo::new(connector.clone().oneshot(uri).await.unwrap())
}

async fn raw_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

async fn ping<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    io.write_all(b"p").await.unwrap();
    io.flush().await.unwrap();
    let mut byte = [0u8; 1];
    io.read_exact(&mut byte).await.unwrap();
}

/// Untimed, before timing: a connection of each stack agrees on the same
/// TLS (version 1.3, cipher suite, key exchange group and ALPN protocol)
/// and answers a ping, so that the two are compared doing the same work.
async fn check_same_tls(mesh: &TlsConnector, raw: &tokio_rustls::TlsConnector, servers: &Servers) {
    let agreed = |c: &rustls::ClientConnection| {
        (
            c.protocol_version(),
            c.negotiated_cipher_suite().map(|suite| suite.suite()),
            c.negotiated_key_exchange_group().map(|group| group.name()),
            c.alpn_protocol().map(<[u8]>::to_vec),
        )
    };
    let mesh_io = mesh_connect(mesh, servers.mesh_ping).await;
    let raw_io = raw_connect(raw, servers.raw_ping).await;
    let mesh_tls = agreed(mesh_io.inner().tls().expect("the mesh connection is TLS"));
    let raw_tls = agreed(raw_io.get_ref().1);
    assert_eq!(mesh_tls, raw_tls, "mesh and raw agree on the same TLS");
    assert_eq!(mesh_tls.0, Some(rustls::ProtocolVersion::TLSv1_3));
    ping(mesh_io).await;
    ping(raw_io).await;
}

async fn upload<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, body: &[u8]) {
    io.write_all(body).await.unwrap();
    io.flush().await.unwrap();
    let mut ack = [0u8; 1];
    io.read_exact(&mut ack).await.unwrap();
}

fn tls(c: &mut Criterion) {
    let certs = Certs::new();
    let servers = servers(&certs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mesh = mesh_connector(&certs, &[servers.mesh_ping, servers.mesh_bulk]);
    let raw = raw_client(&certs);
    rt.block_on(check_same_tls(&mesh, &raw, &servers));

    let mut group = c.benchmark_group("tls_handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("mesh", "mtls"), |b| {
        b.to_async(&rt)
            .iter(|| async { ping(mesh_connect(&mesh, servers.mesh_ping).await).await });
    });
    group.bench_function(BenchmarkId::new("raw", "mtls"), |b| {
        b.to_async(&rt)
            .iter(|| async { ping(raw_connect(&raw, servers.raw_ping).await).await });
    });
    group.finish();

    let body = vec![b'x'; BULK];
    let mut mesh_io = rt.block_on(mesh_connect(&mesh, servers.mesh_bulk));
    let mut raw_io = rt.block_on(raw_connect(&raw, servers.raw_bulk));
    let mut group = c.benchmark_group("tls_bulk");
    group.throughput(Throughput::Bytes(BULK as u64));
    group.bench_function(BenchmarkId::new("mesh", "1MiB"), |b| {
        b.iter(|| rt.block_on(upload(&mut mesh_io, &body)));
    });
    group.bench_function(BenchmarkId::new("raw", "1MiB"), |b| {
        b.iter(|| rt.block_on(upload(&mut raw_io, &body)));
    });
    group.finish();
}

/// Interleaved rounds of both stacks, alternating which goes first: on a
/// machine with noisy neighbours, conditions change between criterion's
/// back-to-back groups, but hardly within one round. Each round measures
/// wall time and the CPU time of the whole process (client and server
/// threads, from `/proc/self/task/*/schedstat`), which time stolen by other
/// processes does not inflate. Prints the median per-round ratio of mesh to
/// raw for each (1.00 means no overhead).
fn paired() {
    const ROUNDS: usize = 41;
    const HANDSHAKES: usize = 20;
    const UPLOADS: usize = 5;
    let certs = Certs::new();
    let servers = servers(&certs);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mesh = mesh_connector(&certs, &[servers.mesh_ping, servers.mesh_bulk]);
    let raw = raw_client(&certs);
    let body = vec![b'x'; BULK];
    rt.block_on(async {
        check_same_tls(&mesh, &raw, &servers).await;
        let mut mesh_io = mesh_connect(&mesh, servers.mesh_bulk).await;
        let mut raw_io = raw_connect(&raw, servers.raw_bulk).await;
        let mut handshake = Ratios::default();
        let mut bulk = Ratios::default();
        for round in 0..ROUNDS {
            let mut sample = [Sample::default(); 2];
            for turn in [round % 2, (round + 1) % 2] {
                let start = Sample::now();
                for _ in 0..HANDSHAKES {
                    if turn == 0 {
                        ping(mesh_connect(&mesh, servers.mesh_ping).await).await;
                    } else {
                        ping(raw_connect(&raw, servers.raw_ping).await).await;
                    }
                }
                sample[turn] = start.elapsed();
            }
            handshake.push(sample);
            for turn in [round % 2, (round + 1) % 2] {
                let start = Sample::now();
                for _ in 0..UPLOADS {
                    if turn == 0 {
                        upload(&mut mesh_io, &body).await;
                    } else {
                        upload(&mut raw_io, &body).await;
                    }
                }
                sample[turn] = start.elapsed();
            }
            bulk.push(sample);
        }
        println!(
            "tls_paired (mesh/raw, median of {ROUNDS} interleaved rounds): \
             handshake wall {:.3} cpu {:.3}; bulk 1MiB wall {:.3} cpu {:.3}",
            median(&mut handshake.wall),
            median(&mut handshake.cpu),
            median(&mut bulk.wall),
            median(&mut bulk.cpu),
        );
    });
}

/// Wall and process CPU time, in seconds.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: f64,
    cpu: f64,
}

impl Sample {
    fn now() -> (tokio::time::Instant, f64) {
        (tokio::time::Instant::now(), process_cpu())
    }
}

trait Elapsed {
    fn elapsed(&self) -> Sample;
}

impl Elapsed for (tokio::time::Instant, f64) {
    fn elapsed(&self) -> Sample {
        Sample {
            wall: self.0.elapsed().as_secs_f64(),
            cpu: process_cpu() - self.1,
        }
    }
}

#[derive(Default)]
struct Ratios {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Ratios {
    fn push(&mut self, [mesh, raw]: [Sample; 2]) {
        self.wall.push(mesh.wall / raw.wall);
        self.cpu.push(mesh.cpu / raw.cpu);
    }
}

/// CPU time of every thread of this process, in seconds: the first field
/// of each thread's `schedstat` is its time on a CPU, in nanoseconds.
fn process_cpu() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

criterion_group!(benches, tls);

fn main() {
    benches();
    if wants_paired("tls") {
        paired();
    }
    Criterion::default().configure_from_args().final_summary();
}
