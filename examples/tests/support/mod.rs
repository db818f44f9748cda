//! Shared pieces of the sidecar's integration tests: a backend with a few
//! behaviours, a sidecar started from YAML, and real HTTP clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

pub mod config;
pub mod demo;
pub mod egress;
pub mod policy;
pub mod upstreams;
// One capture for every crate's tests: mesh-core's (its docs say why
// it is one global subscriber).
#[path = "../../../mesh-core/tests/support/log_capture.rs"]
pub mod log_capture;
#[path = "../../../mesh-core/tests/support/refused.rs"]
pub mod refused;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::serve::{
    Server, ServerConfig,
    shutdown::{self, ShutdownTrigger},
};
use mesh_examples::sidecar::{self, Running, config::SidecarConfig};
use tokio::sync::Notify;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Lets a test hold a backend request in flight: the backend signals
/// `arrived` and waits for `release`.
#[derive(Default)]
pub struct Gate {
    pub arrived: Notify,
    pub release: Notify,
}

/// A backend on 127.0.0.1:0 speaking HTTP/1.1 and HTTP/2:
/// - `/echo` streams the request body (and its trailers) back;
/// - `/headers` answers with the request headers, one `name: value` a line;
/// - `/download?bytes=N` streams N bytes in 16 KiB chunks;
/// - `/hold` waits on the gate, then answers `held`;
/// - `/upgrade` switches protocols and echoes bytes;
/// - anything else answers `hello`.
pub async fn backend() -> (SocketAddr, Arc<Gate>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    serve(listener, move |req| handle(req, g.clone()));
    (addr, gate)
}

/// Serves HTTP/1.1 and HTTP/2 (upgrades included) on `listener`, each
/// request answered by `handler`, for as long as the test's runtime runs.
pub fn serve<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<Body>, hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(handler.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
}

/// Serves the axum router `app` with mesh-core's `Server` on 127.0.0.1:0,
/// as an application hands its own router to the mesh: its address, what
/// stops it, and its task, which ends once the server has let go of `app`.
pub async fn serve_router(
    app: axum::Router,
) -> (SocketAddr, ShutdownTrigger, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, signal) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, app, signal));
    (addr, stop, server)
}

/// Serves `app` as [`serve_router`] does for one request, `req` (whose
/// URI is a path) with an empty body over HTTP/1.1, then stops the server and waits for it: the
/// answer's status and its body, read to its end before the server stops.
pub async fn serve_one(app: axum::Router, req: http::request::Builder) -> (StatusCode, Bytes) {
    let (addr, stop, server) = serve_router(app).await;
    let client = http1();
    let uri = format!("http://{addr}{}", req.uri_ref().unwrap());
    let req = req.uri(uri).body(full("")).unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let body = body_bytes(res).await;
    drop(client);
    stop.trigger();
    server.await.unwrap();
    (status, body)
}

async fn handle(
    mut req: Request<Incoming>,
    gate: Arc<Gate>,
) -> Result<Response<Body>, hyper::Error> {
    let path = req.uri().path().to_owned();
    let res = match path.as_str() {
        "/echo" => Response::new(req.into_body().map_err(Into::into).boxed()),
        "/headers" => {
            let mut text = String::new();
            for (name, value) in req.headers() {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        "/download" => {
            let n: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("bytes="))
                .unwrap()
                .parse()
                .unwrap();
            let chunks = (0..n).step_by(16 * 1024).map(move |start| {
                let len = (n - start).min(16 * 1024);
                let chunk: Vec<u8> = (start..start + len).map(|i| (i % 251) as u8).collect();
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from(chunk)))
            });
            Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                chunks,
            ))))
        }
        "/hold" => {
            gate.arrived.notify_one();
            gate.release.notified().await;
            Response::new(full("held"))
        }
        "/upgrade" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = TokioIo::new(on.await.unwrap());
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .body(full(""))
                .unwrap()
        }
        _ => Response::new(full("hello")),
    };
    Ok(res)
}

pub fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The byte pattern `/download` sends.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A sidecar started from YAML, on two threads.
pub fn sidecar(yaml: &str) -> Running {
    let config = SidecarConfig::from_yaml(yaml, "test.yaml").unwrap();
    sidecar::start(config).unwrap()
}

/// A sidecar on one server thread in front of `app`, as the inbound side
/// of workload `app: emoji` in `emojivoto`, with the policy `policy`
/// (YAML) read from a file in the returned directory.
pub fn emoji_inbound(app: SocketAddr, policy: &str) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    let running = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
         \x20   ports: {{http: {}}}\n  files: [{}]\n",
        app.port(),
        file.display()
    ));
    (dir, running)
}

/// Stops a sidecar and waits until it has drained.
pub async fn stop(running: Running) {
    running.shutdown();
    tokio::task::spawn_blocking(move || running.join())
        .await
        .unwrap();
}

pub fn http1() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn http2() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn body_bytes(res: Response<Incoming>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

/// The admin server's `/metrics` text.
pub async fn scrape(admin: SocketAddr) -> String {
    let res = http1()
        .request(
            Request::get(format!("http://{admin}/metrics"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    String::from_utf8(body_bytes(res).await.to_vec()).unwrap()
}

/// A gRPC call of `emojivoto.v1.EmojiService/<method>` to `host`, over
/// HTTP/2, with gRPC's content type and `te: trailers`: the body and any
/// other header are the caller's.
pub fn emoji_call(host: &str, method: &str) -> http::request::Builder {
    Request::post(format!("http://{host}/emojivoto.v1.EmojiService/{method}"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// Sends `req` over a new HTTP/2 connection to `addr`, whatever authority
/// its URI names: the way to reach the outbound listener with
/// `:authority: emoji`.
pub async fn h2_via(addr: SocketAddr, req: Request<Body>) -> hyper::Result<Response<Incoming>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    h2.send_request(req).await
}

/// An application on 127.0.0.1:0 answering `ok`: `/slow` answers after
/// 400 ms; with `flaky`, every tenth other request is a 500.
pub async fn ok_app(flaky: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    serve(listener, move |req: Request<Incoming>| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut res = Response::new(full("ok"));
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_millis(400)).await;
            } else if flaky && n % 10 == 9 {
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok(res)
        }
    });
    addr
}

/// An h2c (and HTTP/1.1) server that answers with the version, the
/// URI's authority (`:authority` over HTTP/2), the `Host` and the
/// `mesh-orig-proto` it got, one a line: what the sidecar sent on, as the
/// application sees it.
pub async fn recording() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<Incoming>| async move {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
        };
        let authority = req.uri().authority().map_or("-", |a| a.as_str());
        let seen = format!(
            "{:?}\n{authority}\n{}\n{}",
            req.version(),
            header("host"),
            header("mesh-orig-proto")
        );
        Ok(Response::new(full(seen)))
    });
    addr
}

/// The SPIFFE identity of service account `name` in `emojivoto`.
pub fn identity(name: &str) -> String {
    format!("spiffe://example.org/ns/emojivoto/sa/{name}")
}

/// The `sidecar` example binary, built beside this test's binary: `cargo
/// test` builds every example before it runs a test (a run limited to
/// this test target with `--test inject` does not, and then needs
/// `cargo build -p mesh-examples --example sidecar` first).
pub fn sidecar_binary() -> std::path::PathBuf {
    example_binary("sidecar")
}

/// The example binary `name` of this package (`sidecar`, `demo`), where
/// cargo builds it: beside this test's binary.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// A development CA for `example.org` in `dir`, and a function that issues
/// the certificate of service account `name` ([`identity`]) into
/// `dir/name`, valid for an hour, and returns that directory.
pub fn issuer(dir: &std::path::Path) -> impl Fn(&str) -> std::path::PathBuf + '_ {
    let ca = dir.join("ca");
    sidecar::certs::create_ca("example.org", &ca).unwrap();
    move |name| {
        let out = dir.join(name);
        sidecar::certs::issue(&ca, &identity(name), Duration::from_secs(3600), &out).unwrap();
        out
    }
}

/// Starts the `sidecar` binary ([`sidecar_binary`]) with `run --config
/// config` and `RUST_LOG` set to `rust_log`, and returns it with its
/// standard error, a line at a time.
pub fn run_logging(
    config: &std::path::Path,
    rust_log: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(sidecar_binary())
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", rust_log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sidecar example is built: run `cargo test` without `--test`");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, received)
}

/// The next line of `lines` ([`run_logging`]) that holds `needle`, the
/// lines before it included, read off the test's runtime (which must be
/// multi-threaded). A minute without it fails the test: the bound of a
/// hang, not a measure of speed.
pub fn wait_for(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match tokio::task::block_in_place(|| lines.recv_timeout(Duration::from_secs(60))) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen.join("\n");
                }
            }
            Err(error) => panic!(
                "no line with {needle:?} ({error}); read:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// Sends `signal` (`-HUP`, `-TERM`) to `child`.
pub fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Runs the `sidecar` binary ([`sidecar_binary`]) with `args` to its end.
pub fn sidecar_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(sidecar_binary())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Runs the `sidecar` binary ([`sidecar_binary`]) with `args` to its end,
/// `input` on its standard input. A binary that refuses the input may
/// stop reading it: what it wrote, and its exit status, say whether it did.
pub fn sidecar_cli_with_input(args: &[&str], input: &str) -> std::process::Output {
    use std::{io::Write as _, process::Stdio};
    let mut child = std::process::Command::new(sidecar_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "the sidecar example is built: run `cargo test` without `--test`, \
             or `cargo build -p mesh-examples --example sidecar`",
        );
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// An address on loopback where nothing listens: connections to it are
/// refused. See [`refused_port`].
pub async fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], refused_port()))
}

/// A port on loopback where nothing listens, for connections to be
/// refused at.
///
/// A port the kernel picked for a `bind` to port 0, let go, can be picked
/// again for another test's listener while this one still counts on it
/// being closed: the connection would then be taken. This one is drawn
/// below Linux's ephemeral range (32768–60999), where only an explicit
/// `bind` takes a port, and below [`free_port`]'s, which sidecars bind.
pub fn refused_port() -> u16 {
    refused::refused_port()
}

/// A TCP application on 127.0.0.1:0 that echoes what it reads, and the
/// count of the connections it has accepted.
pub async fn tcp_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, accepted)
}

/// A port nothing listens on now, for a configuration file that must name
/// one before the sidecar binary binds it.
///
/// Drawn below Linux's ephemeral range (32768–60999): a port the kernel
/// picked for a `bind` to port 0 is also the kind it hands out as the
/// source port of every outgoing connection, and other tests running at
/// the same time make thousands, so one of them could take it before the
/// sidecar binds it. Below that range only an explicit `bind` can.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new();
    (0_u64..)
        .map(|attempt| 20_000 + (random.hash_one(attempt) % 12_000) as u16)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap()
}

/// Sends `request` as raw bytes to `addr`; the whole answer, read until
/// the peer closes the connection.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `CONNECT authority` on a new connection to `addr`: the
/// connection, and the response's head as it came.
pub async fn connect_head(addr: SocketAddr, authority: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (tcp, String::from_utf8(head).unwrap())
}

/// A plaintext sidecar on one runtime whose one inbound port serves HTTP
/// to `app`.
pub fn plain_inbound(app: SocketAddr) -> Running {
    sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ))
}

/// An HTTP/1.1 and HTTP/2 application that answers each request with its
/// version and its number on its connection (`HTTP/1.1` then `1` for the
/// first), and counts the connections it accepted.
pub async fn per_connection_app() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            let on_conn = Arc::new(AtomicUsize::new(0));
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let n = on_conn.fetch_add(1, Ordering::Relaxed) + 1;
                    async move {
                        Ok::<_, hyper::Error>(http::Response::new(full(format!(
                            "{:?}\n{n}",
                            req.version()
                        ))))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
            });
        }
    });
    (addr, accepted)
}

/// What [`greeting_app`] sends first on each connection, before it reads:
/// its server speaks first, as SMTP's and MySQL's do.
pub const GREETING: &[u8] = b"220 db ready\r\n";

/// A bound on each wait of [`read_greeting`] and [`read_to_close`], far
/// above the detection timeouts the tests set (200 ms): the tests wait for
/// events, and this only keeps a broken one from hanging.
pub const WAIT_BOUND: Duration = Duration::from_secs(10);

/// An application whose server speaks first: it sends [`GREETING`] on each
/// connection, then echoes what it reads until the client's end.
pub struct GreetingApp {
    pub addr: SocketAddr,
    /// The connections it accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Every byte it read, from all its connections.
    pub read: Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Starts a [`GreetingApp`] on a port of its own.
pub async fn greeting_app() -> GreetingApp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let read = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, all) = (accepted.clone(), read.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            let all = all.clone();
            tokio::spawn(async move {
                if tcp.write_all(GREETING).await.is_err() {
                    return;
                }
                let mut buf = [0; 1024];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    all.lock().unwrap().extend_from_slice(&buf[..n]);
                    if tcp.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    GreetingApp {
        addr,
        accepted,
        read,
    }
}

/// Reads a [`GreetingApp`]'s greeting from `tcp`; fails the test if another
/// or none arrives.
pub async fn read_greeting(tcp: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;

    let mut got = [0; GREETING.len()];
    tokio::time::timeout(WAIT_BOUND, tcp.read_exact(&mut got))
        .await
        .expect("no greeting")
        .unwrap();
    assert_eq!(got, GREETING);
}

/// Everything `tcp` reads until the peer's end (or a reset); fails the test
/// if the connection stays open.
pub async fn read_to_close(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;

    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT_BOUND, tcp.read_to_end(&mut got))
        .await
        .expect("the connection was not closed");
    got
}

/// The sum of the samples of `family` in the Prometheus text `metrics`
/// whose labels include every one of `labels` (each `name="value"`).
pub fn series(metrics: &str, family: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The count of the Linkerd-named route family `family` for route `route`
/// whose line ends with `{labels}}}`, if there is one (absent is not 0).
pub fn route_sample(metrics: &str, family: &str, route: &str, labels: &str) -> Option<u64> {
    let route = format!("route_name=\"{route}\",");
    let end = format!("{labels}}} ");
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(family)?.strip_prefix('{')?;
        if !rest.contains(&route) {
            return None;
        }
        let at = rest.find(&end)?;
        rest[at + end.len()..].parse().ok()
    })
}

/// The Linkerd-named route families with the status each counts a
/// timeout with: the route's and the backend's, HTTP then gRPC.
pub const TIMEOUT_FAMILIES: [(&str, &str); 4] = [
    (
        "outbound_http_route_request_statuses_total",
        "http_status=\"504\"",
    ),
    (
        "outbound_http_route_backend_response_statuses_total",
        "http_status=\"\"",
    ),
    (
        "outbound_grpc_route_request_statuses_total",
        "grpc_status=\"DEADLINE_EXCEEDED\"",
    ),
    (
        "outbound_grpc_route_backend_response_statuses_total",
        "grpc_status=\"UNKNOWN\"",
    ),
];

/// What each of [`TIMEOUT_FAMILIES`] counted for route `route` with the
/// error `error`, in their order.
pub fn timeouts_counted(metrics: &str, route: &str, error: &str) -> [Option<u64>; 4] {
    TIMEOUT_FAMILIES.map(|(family, status)| {
        let labels = format!("{status},error=\"{error}\"");
        route_sample(metrics, family, route, &labels)
    })
}

/// The YAML of a plaintext sidecar in `emojivoto` on `threads` runtimes
/// whose one outbound service, `emoji`, is `backend`, with `routes` as its
/// policy file (written to `routes.yaml` in `dir`).
pub fn emoji_routes_yaml(
    dir: &std::path::Path,
    backend: SocketAddr,
    routes: &str,
    threads: usize,
) -> String {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{backend}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: {threads}\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    )
}

/// Replaces the file at `path` with `contents` in one step: written to a
/// file of its own, then renamed over `path`, as Kubernetes' atomic
/// writer does. A watcher polling `path` reads the old contents or the
/// new, never the empty file a rewrite in place leaves between its
/// truncation and its write, however long a busy machine takes between
/// the two; nor a file it would read in a watched directory.
pub fn replace_file(path: &std::path::Path, contents: impl AsRef<[u8]>) {
    use std::io::Write as _;
    // In the system's temporary directory, where the tests' directories
    // are too: a rename does not cross file systems.
    let mut next = tempfile::NamedTempFile::new().unwrap();
    next.write_all(contents.as_ref()).unwrap();
    next.persist(path).unwrap();
}

/// The admin server's `/metrics` text once `done` holds for it, or the
/// last one read after [`WAIT_BOUND`]: for a count the sidecar takes on
/// its own threads after the client has seen its part end (a TLS
/// handshake the client finished first, a connection it closed), which
/// a busy machine may take a while over.
pub async fn scrape_until(admin: SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let mut metrics = scrape(admin).await;
    let start = tokio::time::Instant::now();
    while !done(&metrics) && start.elapsed() < WAIT_BOUND {
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = scrape(admin).await;
    }
    metrics
}

/// Waits until `answer` gives what `settled` accepts ten times in a row,
/// for up to [`WAIT_BOUND`]; fails the test with the last answer if not.
///
/// A route reload is counted when the new routes are published, and each
/// runtime of the sidecar then puts them in force on a task of its own: a
/// test that waited for the count may meet the old routes for a moment,
/// longer on a busy machine. `answer` should send its request on a
/// connection of its own, so that every runtime answers some.
pub async fn until_in_force<T: std::fmt::Debug, F: Future<Output = T>>(
    answer: impl Fn() -> F,
    settled: impl Fn(&T) -> bool,
) {
    let start = tokio::time::Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 10 {
        let got = answer().await;
        if settled(&got) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            assert!(
                start.elapsed() < WAIT_BOUND,
                "the reload is not in force on every runtime: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
