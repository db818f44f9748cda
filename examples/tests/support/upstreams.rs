//! A sidecar with two named upstreams, the outbound services `emoji` and
//! `emoji-v2`, each a backend that answers with its name: the setup of
//! the tests that send `emoji`'s requests somewhere by routes, profiles
//! and splits, and count which backend answered.

use std::{
    fmt::Display,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode};
use mesh_examples::sidecar::Running;

use super::{body_bytes, full, http1, scrape, serve, sidecar, sidecar_cli};

/// A backend on 127.0.0.1:0 that answers every request with `name`, and
/// how many it got.
pub async fn named(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    serve(listener, move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok(Response::new(full(name))) }
    });
    (addr, hits)
}

/// A plaintext sidecar in `emojivoto` with the outbound services `emoji`
/// (at `v1`) and `emoji-v2` (at `v2`), and `routes` as its policy file,
/// written to `routes.yaml` in `dir` and read again every 50 ms.
pub fn sidecar_yaml(dir: &Path, v1: SocketAddr, v2: SocketAddr, routes: &str) -> String {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{v1}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{v2}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n  watch_interval: 50ms\n",
        file.display()
    )
}

/// The route `web` of `emoji`, which splits its requests 1:1 between the
/// services `emoji` and `emoji-v2`.
pub const SPLIT: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji, port: 80, weight: 1}, {name: emoji-v2, port: 80, weight: 1}]
";

/// A plaintext sidecar in `emojivoto` on `threads` runtimes (each with
/// balancers of its own) whose outbound `emoji` is at `v1` and `emoji-v2`
/// at `v2`, with `v2_settings` (YAML lines, such as its failure accrual)
/// below, split by [`SPLIT`] (written to `routes.yaml` in `dir`), and
/// with `failfast` as its HTTP fail-fast timeout.
pub fn split_sidecar(
    dir: &Path,
    failfast: &str,
    v1: impl Display,
    v2: impl Display,
    v2_settings: &str,
    threads: usize,
) -> Running {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, SPLIT).unwrap();
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  http_failfast_timeout: {failfast}\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{v1}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{v2}]\n{v2_settings}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: {threads}\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ))
}

/// [`sidecar_yaml`] written to `sidecar.yaml` in `dir`, for a test that
/// hands a path to the sidecar binary: the configuration's path and the
/// routes'.
pub fn write_config(
    dir: &Path,
    v1: SocketAddr,
    v2: SocketAddr,
    routes: &str,
) -> (PathBuf, PathBuf) {
    let yaml = sidecar_yaml(dir, v1, v2, routes);
    let config = dir.join("sidecar.yaml");
    std::fs::write(&config, yaml).unwrap();
    (config, dir.join("routes.yaml"))
}

/// GETs `path` of `emoji` through the sidecar at `outbound`, on a
/// connection of its own: the status, the `mesh-error` header and the
/// body.
pub async fn get(outbound: SocketAddr, path: &str) -> (StatusCode, Option<String>, String) {
    get_marked(outbound, path, "mesh-error").await
}

/// [`get`], with the response's header `header` in place of
/// `mesh-error`.
pub async fn get_marked(
    outbound: SocketAddr,
    path: &str,
    header: &str,
) -> (StatusCode, Option<String>, String) {
    exchange(outbound, "emoji", "GET", path, "", header).await
}

/// Sends `method` `path` for `host` to the sidecar at `outbound` over
/// HTTP/1.1 with `body`, on a connection of its own: the status, the
/// `mesh-error` header and the body.
pub async fn send(
    outbound: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    exchange(outbound, host, method, path, body, "mesh-error").await
}

/// [`send`], with the response's header `header` in place of
/// `mesh-error`.
async fn exchange(
    outbound: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: &str,
    header: &str,
) -> (StatusCode, Option<String>, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{outbound}{path}"))
        .header("host", host)
        .body(full(body.to_owned()))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    let value = res
        .headers()
        .get(header)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, value, body)
}

/// How many of `n` GETs of `path` each backend answered, `(v1, v2)`;
/// fails the test unless every answer is a 200 from one of them.
pub async fn count(outbound: SocketAddr, path: &str, n: usize) -> (usize, usize) {
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..n {
        match get(outbound, path).await {
            (StatusCode::OK, None, body) if body == "v1" => v1 += 1,
            (StatusCode::OK, None, body) if body == "v2" => v2 += 1,
            other => panic!("neither backend's answer: {other:?}"),
        }
    }
    (v1, v2)
}

/// Waits until the sidecar at `admin` has counted `n` route reloads that
/// ended in `result`.
pub async fn reloaded(admin: SocketAddr, result: &str, n: usize) {
    let line = format!("outbound_route_reloads_total{{result=\"{result}\"}} {n}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !scrape(admin).await.lines().any(|l| l == line) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {line}"));
}

/// What `sidecar check --pre -o short` writes for the configuration file
/// `config`, and whether it passed.
pub fn check(config: &Path) -> (String, bool) {
    let output = sidecar_cli(&[
        "check",
        "--pre",
        "-o",
        "short",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    (stdout, output.status.success())
}
