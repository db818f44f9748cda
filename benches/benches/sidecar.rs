//! What mutual TLS adds to a request through a sidecar pair, on warm
//! connections: the application's request goes to one sidecar's outbound
//! listener, which forwards it to a second sidecar's inbound listener, which
//! forwards it to the backend. The same pair runs twice, in one process and
//! one run, on real sockets:
//!
//! - `sidecar_hop/plaintext_pair`: outbound → inbound in plaintext;
//! - `sidecar_hop/mtls_pair`: outbound → inbound over mutual TLS 1.3, with
//!   certificates from `sidecar certs` (the inbound side in `strict` mode, the
//!   outbound side checking the server's identity);
//! - `sidecar_hop/direct`: the backend alone, for scale.
//!
//! Both pairs carry the client's HTTP/1.1 requests between the sidecars as
//! HTTP/2 (`http2_upgrade`: on by default for a service with an
//! `identity`, and set here for the plaintext one too), so that TLS is the
//! only difference between them.
//!
//! Every connection is opened during warm-up, so the timed requests never
//! handshake: what remains is record encryption, decryption and the extra
//! buffering on both sides of the hop.
//!
//! ```text
//! cargo bench -p mesh-benches --bench sidecar -- --warm-up-time 2 --measurement-time 5
//! ```
//!
//! After criterion's groups, `sidecar_paired` sends requests through both
//! pairs in interleaved rounds and prints each pair's p50 and the added p50
//! of the mTLS hop: on a shared 2-core machine, two medians taken in the same
//! rounds compare better than two taken one after the other.
//!
//! Each sidecar runs one runtime thread, as does the backend; the client
//! runs on the bench's thread.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, StatusCode, header::HOST};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use mesh_benches::{client, echo_backend, median, wants_paired};
use mesh_examples::sidecar::{self, Running, certs, config::SidecarConfig};
use tokio::time::Instant;

const CLIENT_ID: &str = "spiffe://bench.local/ns/bench/sa/client";
const BACKEND_ID: &str = "spiffe://bench.local/ns/bench/sa/backend";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Certificates for both sides, in a directory removed on drop.
struct CertDir(PathBuf);

impl CertDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-bench-sidecar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        certs::create_ca("bench.local", &dir.join("ca")).unwrap();
        let day = Duration::from_secs(24 * 3600);
        certs::issue(&dir.join("ca"), CLIENT_ID, day, &dir.join("client")).unwrap();
        certs::issue(&dir.join("ca"), BACKEND_ID, day, &dir.join("backend")).unwrap();
        Self(dir)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two sidecars in a row, outbound → inbound → `backend`.
struct Pair {
    outbound: Running,
    inbound: Running,
}

impl Pair {
    /// Mutual TLS between the two when `certs` is given, plaintext otherwise.
    fn start(backend: SocketAddr, certs: Option<&Path>) -> Self {
        let identity = |name: &str| match certs {
            Some(dir) => format!("identity:\n  dir: {}\n", dir.join(name).display()),
            None => String::new(),
        };
        let inbound = format!(
            "{}inbound:\n  listen: 127.0.0.1:0\n  app: {backend}\n  protocol: http\n  tls: {}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            identity("backend"),
            if certs.is_some() {
                "strict"
            } else {
                "disabled"
            },
        );
        let inbound =
            sidecar::start(SidecarConfig::from_yaml(&inbound, "in.yaml").unwrap()).unwrap();
        let outbound = format!(
            "{}outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: backend\n      \
             endpoints: [{}]\n{}admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            identity("client"),
            inbound.inbound[0],
            // Both pairs carry the hop as HTTP/2, as a service with an
            // `identity` does by default, so that TLS is all they differ in.
            match certs {
                Some(_) => format!("      identity: {BACKEND_ID}\n      http2_upgrade: true\n"),
                None => "      http2_upgrade: true\n".to_owned(),
            },
        );
        let outbound =
            sidecar::start(SidecarConfig::from_yaml(&outbound, "out.yaml").unwrap()).unwrap();
        Self { outbound, inbound }
    }

    fn stop(self) {
        for running in [self.outbound, self.inbound] {
            running.shutdown();
            running.join();
        }
    }
}

/// One GET to `addr` for the service `backend`, read to its end.
async fn get(client: &HttpClient, addr: SocketAddr) -> StatusCode {
    let req = Request::get(format!("http://{addr}/"))
        .header(HOST, "backend")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

/// Sends requests until one gets a 200: the sidecars have loaded their
/// certificates and every connection on the way is open.
async fn warm(client: &HttpClient, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(client, addr).await != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "no 200 through {addr} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..100 {
        assert_eq!(get(client, addr).await, StatusCode::OK);
    }
}

struct Setup {
    rt: tokio::runtime::Runtime,
    backend: SocketAddr,
    plaintext: Pair,
    mtls: Pair,
    client: HttpClient,
    _certs: CertDir,
}

impl Setup {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let backend = echo_backend();
        let certs = CertDir::new();
        let plaintext = Pair::start(backend, None);
        let mtls = Pair::start(backend, Some(&certs.0));
        let client = rt.block_on(async { client() });
        rt.block_on(async {
            warm(&client, backend).await;
            warm(&client, plaintext.outbound.outbound).await;
            warm(&client, mtls.outbound.outbound).await;
        });
        Self {
            rt,
            backend,
            plaintext,
            mtls,
            client,
            _certs: certs,
        }
    }

    fn stop(self) {
        self.plaintext.stop();
        self.mtls.stop();
    }
}

fn sidecar_hop(c: &mut Criterion) {
    let setup = Setup::new();
    let mut group = c.benchmark_group("sidecar_hop");
    for (name, addr) in [
        ("direct", setup.backend),
        ("plaintext_pair", setup.plaintext.outbound.outbound),
        ("mtls_pair", setup.mtls.outbound.outbound),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&setup.rt).iter(|| get(&setup.client, addr));
        });
    }
    group.finish();
    setup.stop();
}

criterion_group!(benches, sidecar_hop);

/// Requests a pair per round of `sidecar_paired`.
const PER_ROUND: usize = 200;

/// `sidecar_paired`: `ROUNDS` rounds of `PER_ROUND` requests through each
/// pair, the order alternating, each request timed on its own.
fn paired() {
    const ROUNDS: usize = 41;
    let setup = Setup::new();
    let (mut plain, mut mtls) = (Vec::new(), Vec::new());
    let mut round_added = Vec::new();
    setup.rt.block_on(async {
        for round in 0..ROUNDS {
            let (p, m) = if round % 2 == 0 {
                let p = timed(&setup.client, setup.plaintext.outbound.outbound, &mut plain).await;
                let m = timed(&setup.client, setup.mtls.outbound.outbound, &mut mtls).await;
                (p, m)
            } else {
                let m = timed(&setup.client, setup.mtls.outbound.outbound, &mut mtls).await;
                let p = timed(&setup.client, setup.plaintext.outbound.outbound, &mut plain).await;
                (p, m)
            };
            round_added.push(m - p);
        }
    });
    let (p, m) = (median(&mut plain), median(&mut mtls));
    println!(
        "sidecar_paired: {ROUNDS} rounds x {PER_ROUND} requests a pair: p50 plaintext pair {p:.1} µs, \
         mTLS pair {m:.1} µs, added by the mTLS hop {:.1} µs (median of per-round differences {:.1} µs)",
        m - p,
        median(&mut round_added),
    );
    setup.stop();
}

/// Sends `PER_ROUND` requests to `addr`, appends each one's time in
/// microseconds to `into`, and returns their median.
async fn timed(client: &HttpClient, addr: SocketAddr, into: &mut Vec<f64>) -> f64 {
    let start = into.len();
    for _ in 0..PER_ROUND {
        let t = Instant::now();
        get(client, addr).await;
        into.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(&mut into[start..].to_vec())
}

fn main() {
    benches();
    if wants_paired("sidecar") {
        paired();
    }
    Criterion::default().configure_from_args().final_summary();
}
