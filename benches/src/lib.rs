//! Helpers the benches share: a backend to measure against and clients to
//! drive it. Setup lives here so that the timed loops hold only the request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

/// Starts an HTTP/1.1 backend on 127.0.0.1:0 on a thread and runtime of its
/// own, as a separate process would be. It echoes the request body back.
pub fn echo_backend() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(serve_echo(listener));
    });
    addr
}

async fn serve_echo(listener: std::net::TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>(Response::new(Full::new(body)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }
}

/// An HTTP/1.1 client whose pool keeps connections warm between requests.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends `body` to `addr` and reads the whole response.
pub async fn round_trip(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    body: Bytes,
) -> usize {
    let req = Request::post(format!("http://{addr}/echo"))
        .body(Full::new(body))
        .unwrap();
    let res = client.request(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes().len()
}

/// Untimed, before a bench times [`round_trip`]: the same request is
/// answered `200` with `body` echoed back, so the timed ones travel the
/// whole way to the backend and back rather than being answered on the
/// way (a refusal, a `502`).
pub async fn check_round_trip(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    body: Bytes,
) {
    let req = Request::post(format!("http://{addr}/echo"))
        .body(Full::new(body.clone()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, hyper::StatusCode::OK, "{addr} answered {echoed:?}");
    assert!(
        echoed == body,
        "{addr} echoed {} bytes of {}",
        echoed.len(),
        body.len()
    );
}

/// The median of `values`, which it sorts.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Whether the command line asks a bench target for its paired rounds
/// (timed side by side outside criterion): a `cargo bench` run (`--bench`)
/// that neither lists benches, profiles one, nor filters for benches other
/// than `group`'s.
pub fn wants_paired(group: &str) -> bool {
    /// Criterion's options that take a value, which is not a filter.
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--profile-time",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paired = format!("{group}_paired");
    let mut bench = false;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        match arg.as_str() {
            "--list" | "--profile-time" => return false,
            "--bench" => bench = true,
            option if WITH_VALUE.contains(&option) => i += 1,
            filter
                if !filter.starts_with('-')
                    && !paired.contains(filter)
                    && !filter.starts_with(group) =>
            {
                return false;
            }
            _ => {}
        }
        i += 1;
    }
    bench
}

/// A bench binary's counting mode, for instruction counts that load on the
/// machine cannot disturb. With `MESH_BENCH_COUNT=<n>` in the environment
/// the binary runs each variant named in `MESH_BENCH_ONLY` (a comma
/// separated list; every variant when unset) `n` times outside criterion,
/// on one current-thread runtime, and exits. Run it under callgrind with
/// two values of `n` and divide the difference in instructions by the
/// difference in `n`.
#[derive(Debug)]
pub struct Counting {
    /// How many times each variant runs.
    pub n: u64,
    only: String,
}

impl Counting {
    /// The counting mode the environment asks for, if any.
    pub fn from_env() -> Option<Self> {
        let n = std::env::var("MESH_BENCH_COUNT").ok()?.parse().ok()?;
        let only = std::env::var("MESH_BENCH_ONLY").unwrap_or_default();
        Some(Self { n, only })
    }

    /// Whether `variant` is to run.
    pub fn wants(&self, variant: &str) -> bool {
        self.only.is_empty() || self.only.split(',').any(|o| o == variant)
    }

    /// The runtime the variants run on.
    pub fn runtime(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}
