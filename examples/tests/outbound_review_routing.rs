//! The outbound side as a client application sees it, through the
//! sidecar: which rule of a service's `HTTPRoute`s takes a request (the
//! Gateway API's precedence, path kinds and the fields after the path
//! included), what the service's endpoint receives of the request's
//! hop-by-hop and destination-override headers, and what a reload of the
//! routes does to a request already in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_examples::sidecar::Running;
use support::{upstreams::reloaded, *};

/// A rule named `name` with `matches` (YAML flow) that marks its
/// responses with its name.
fn rule(name: &str, matches: &str) -> String {
    format!(
        "  - name: {name}
    matches: {matches}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// An `HTTPRoute` for `emoji` named `name` with `rules`.
fn route(name: &str, rules: &[String]) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{}",
        rules.concat()
    )
}

/// A plaintext sidecar whose outbound services are `services` (name and
/// endpoint), with `routes` as its policy file in `dir`, read again every
/// 50 ms.
fn start(dir: &tempfile::TempDir, services: &[(&str, SocketAddr)], routes: &str) -> Running {
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    let services: String = services
        .iter()
        .map(|(name, addr)| format!("    - name: {name}\n      endpoints: [{addr}]\n"))
        .collect();
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n{services}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n  watch_interval: 50ms\n",
        file.display()
    ))
}

/// The rule that answered a request for `emoji` with `method`, `path`
/// (and query) and `headers`: its `x-rule`, or `-`.
async fn rule_for(
    outbound: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{outbound}{path}"))
        .header("host", "emoji");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = http1().request(req.body(full("")).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{method} {path}");
    res.headers()
        .get("x-rule")
        .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_request_takes_the_rule_the_gateway_api_precedence_ranks_first() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = backend().await;
    let path = |kind: &str, value: &str| format!("path: {{type: {kind}, value: '{value}'}}");
    let rules = [
        // Written first, each less specific than a rule after it.
        rule("catch-all", "[{}]"),
        rule(
            "long-prefix",
            &format!("[{{{}}}]", path("PathPrefix", "/books/v1/list")),
        ),
        rule(
            "regex",
            &format!("[{{{}}}]", path("RegularExpression", "/books/.*")),
        ),
        rule(
            "exact",
            &format!("[{{{}}}]", path("Exact", "/books/v1/list/all")),
        ),
        rule(
            "get",
            &format!("[{{{}, method: GET}}]", path("PathPrefix", "/m")),
        ),
        rule(
            "one-header",
            &format!(
                "[{{{}, headers: [{{name: x-a, value: '1'}}]}}]",
                path("PathPrefix", "/m")
            ),
        ),
        rule(
            "one-query",
            &format!(
                "[{{{}, queryParams: [{{name: q, value: '1'}}]}}]",
                path("PathPrefix", "/q")
            ),
        ),
        rule(
            "two-queries",
            &format!(
                "[{{{}, queryParams: [{{name: q, value: '1'}}, {{name: r, value: '1'}}]}}]",
                path("PathPrefix", "/q")
            ),
        ),
        rule(
            "header-before-queries",
            &format!(
                "[{{{}, headers: [{{name: x-a, value: '1'}}]}}]",
                path("PathPrefix", "/q")
            ),
        ),
    ];
    let sidecar = start(&dir, &[("emoji", app)], &route("web", &rules));
    let out = sidecar.outbound;
    for (method, path, headers, expected) in [
        ("GET", "/books/v1/list/all", &[][..], "exact"),
        // A regular expression ranks above every prefix, however long
        // (Linkerd's choice for what the Gateway API leaves open).
        ("GET", "/books/v1/list/x", &[], "regex"),
        ("GET", "/books/other", &[], "regex"),
        ("GET", "/other", &[], "catch-all"),
        // A method ranks above header matches.
        ("GET", "/m", &[("x-a", "1")], "get"),
        ("POST", "/m", &[("x-a", "1")], "one-header"),
        ("POST", "/m", &[], "catch-all"),
        // More query matches win, and a header match ranks above them.
        ("GET", "/q?q=1&r=1", &[], "two-queries"),
        ("GET", "/q?q=1", &[], "one-query"),
        (
            "GET",
            "/q?q=1&r=1",
            &[("x-a", "1")],
            "header-before-queries",
        ),
    ] {
        assert_eq!(
            rule_for(out, method, path, headers).await,
            expected,
            "{method} {path} {headers:?}"
        );
    }
    stop(sidecar).await;
}

/// An application that answers `name`, its request's headers one a line
/// after it; `/hold` first waits for `gate`; `/hop` answers with
/// hop-by-hop headers of its own.
async fn app(name: &'static str) -> (SocketAddr, Arc<Gate>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Gate::default());
    let held = gate.clone();
    serve(listener, move |req: Request<Incoming>| {
        let gate = held.clone();
        async move {
            if req.uri().path() == "/hold" {
                gate.arrived.notify_one();
                gate.release.notified().await;
            }
            let mut text = format!("{name}\n");
            for (header, value) in req.headers() {
                text.push_str(&format!("{header}: {}\n", value.to_str().unwrap_or("?")));
            }
            let mut res = Response::builder();
            if req.uri().path() == "/hop" {
                res = res
                    .header("connection", "x-app-hop")
                    .header("x-app-hop", "1")
                    .header("keep-alive", "timeout=5")
                    .header("proxy-authenticate", "Basic")
                    .header("x-app-end", "1");
            }
            Ok(res.body(full(text)).unwrap())
        }
    });
    (addr, gate)
}

#[tokio::test]
async fn hop_by_hop_and_override_headers_do_not_cross_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, _) = app("emoji").await;
    let sidecar = start(&dir, &[("emoji", emoji)], "");
    let req = Request::get(format!("http://{}/hop", sidecar.outbound))
        .header("host", "emoji")
        .header("connection", "x-hop, keep-alive")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic dXNlcjpwYXNz")
        .header("te", "trailers, deflate")
        .header(
            "l5d-dst-override",
            "voting.emojivoto.svc.cluster.local:8080",
        )
        .header("mesh-dst-override", "voting")
        .header("x-end", "1")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for gone in ["x-app-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!res.headers().contains_key(gone), "{gone}: {res:?}");
    }
    assert_eq!(res.headers()["x-app-end"], "1");
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    let seen: Vec<&str> = body.lines().collect();
    assert_eq!(seen[0], "emoji");
    for gone in [
        "x-hop:",
        "keep-alive:",
        "proxy-connection:",
        "proxy-authorization:",
        "l5d-dst-override:",
        "mesh-dst-override:",
    ] {
        assert!(
            !seen.iter().any(|l| l.starts_with(gone)),
            "{gone} in {seen:?}"
        );
    }
    assert!(seen.contains(&"x-end: 1"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|l| !l.starts_with("te:") || *l == "te: trailers"),
        "{seen:?}"
    );

    // Over HTTP/2 too: the override headers are removed.
    let req = Request::get("http://emoji/")
        .header("l5d-dst-override", "voting")
        .header("mesh-dst-override", "voting")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.outbound, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert!(body.starts_with("emoji\n"), "{body}");
    assert!(!body.contains("dst-override"), "{body}");
    stop(sidecar).await;
}

/// Replaces the routes file of [`start`] with `routes` in one step, so
/// that the watcher never reads it half written: each replacement is one
/// reload.
fn replace_routes(dir: &tempfile::TempDir, routes: &str) {
    let next = dir.path().join("routes.yaml.next");
    std::fs::write(&next, routes).unwrap();
    std::fs::rename(&next, dir.path().join("routes.yaml")).unwrap();
}

/// The first line of the answer to a GET for `emoji` at `path`.
async fn answered_by(outbound: SocketAddr, path: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, body.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_backend_a_reload_takes_away() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, _) = app("emoji").await;
    let (v2, gate) = app("emoji-v2").await;
    let to = |backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 80}}]
"
        )
    };
    let sidecar = start(&dir, &[("emoji", emoji), ("emoji-v2", v2)], &to("emoji-v2"));
    let out = sidecar.outbound;
    // A connection opened before the reload, and used on both sides of it.
    let tcp = tokio::net::TcpStream::connect(out).await.unwrap();
    let (mut kept, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let on_kept = async |kept: &mut hyper::client::conn::http1::SendRequest<Body>| {
        let req = Request::get("/")
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = kept.send_request(req).await.unwrap();
        let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
        body.lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(on_kept(&mut kept).await, "emoji-v2");
    let held = tokio::spawn(answered_by(out, "/hold"));
    gate.arrived.notified().await;
    // The route now sends everything to `emoji`; the held request started
    // on `emoji-v2`.
    replace_routes(&dir, &to("emoji"));
    reloaded(sidecar.admin, "ok", 1).await;
    until_in_force(
        || answered_by(out, "/"),
        |answer| *answer == (StatusCode::OK, "emoji".to_owned()),
    )
    .await;
    // The kept connection's runtime, too, in its own time.
    let mut on_kept_now = on_kept(&mut kept).await;
    let start = tokio::time::Instant::now();
    while on_kept_now != "emoji" && start.elapsed() < WAIT_BOUND {
        tokio::time::sleep(Duration::from_millis(10)).await;
        on_kept_now = on_kept(&mut kept).await;
    }
    assert_eq!(on_kept_now, "emoji");
    gate.release.notify_one();
    assert_eq!(held.await.unwrap(), (StatusCode::OK, "emoji-v2".to_owned()));
    stop(sidecar).await;
}

/// Sends an HTTP/1.1 upgrade for `emoji` at `path` to `outbound`, then
/// bytes through the tunnel; what came back through it.
async fn through_upgrade(outbound: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(outbound).await.unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        got.push(tcp.read_u8().await.map_err(|e| e.to_string())?);
    }
    let got = String::from_utf8(got).unwrap();
    if !got.starts_with("HTTP/1.1 101") {
        return Err(got);
    }
    tcp.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut echoed))
        .await
        .map_err(|_| "no echo".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(echoed.to_vec())
}

#[tokio::test]
async fn an_upgrade_goes_through_a_split_route_with_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = backend().await;
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: emojivoto
  annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: '2'}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /upgrade}}]
    backendRefs: [{name: emoji, port: 80, weight: 1}, {name: emoji-v2, port: 80, weight: 1}]
  - matches: [{path: {type: PathPrefix, value: /}}]
";
    let sidecar = start(&dir, &[("emoji", app), ("emoji-v2", app)], routes);
    for _ in 0..8 {
        assert_eq!(
            through_upgrade(sidecar.outbound, "/upgrade").await,
            Ok(b"ping".to_vec())
        );
    }
    stop(sidecar).await;
}

/// The answers to `n` GETs for `emoji` at `path`, each over a connection
/// of its own, so that every runtime of the sidecar takes some, by the
/// first line of their bodies.
/// Waits until a reload the counter has announced is in force on every
/// runtime: the counter moves when the new routes are published, and each
/// runtime then applies them on a task of its own, so a request on a new
/// connection may still meet the old routes for a moment. Done when 20
/// requests in a row over new connections look as `settled` says.
async fn applied_everywhere(
    outbound: SocketAddr,
    settled: impl Fn(&std::collections::BTreeMap<String, usize>) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !settled(&over_new_connections(outbound, "/", 20).await) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every runtime applies the reload");
}

async fn over_new_connections(
    outbound: SocketAddr,
    path: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..n {
        let tcp = tokio::net::TcpStream::connect(outbound).await.unwrap();
        let (mut h1, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = h1.send_request(req).await.unwrap();
        let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
        let first = body.lines().next().unwrap_or_default().to_owned();
        *answers.entry(first).or_default() += 1;
    }
    answers
}

#[tokio::test]
async fn a_reload_is_in_force_on_every_runtime_and_a_split_skips_weight_0() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["emoji", "emoji-v2", "emoji-v3", "emoji-v4"];
    let mut services = Vec::new();
    for name in names {
        services.push((name, app(name).await.0));
    }
    let split = |weights: [u32; 4]| {
        let refs: Vec<String> = names
            .iter()
            .zip(weights)
            .map(|(name, weight)| format!("{{name: {name}, port: 80, weight: {weight}}}"))
            .collect();
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - backendRefs: [{}]
",
            refs.join(", ")
        )
    };
    let sidecar = start(&dir, &services, &split([1, 0, 0, 0]));
    let out = sidecar.outbound;
    let only = |name: &str, n| std::collections::BTreeMap::from([(name.to_owned(), n)]);
    assert_eq!(over_new_connections(out, "/", 20).await, only("emoji", 20));

    // Three backends share the requests, the parent at weight 0 gets none.
    replace_routes(&dir, &split([0, 1, 1, 2]));
    reloaded(sidecar.admin, "ok", 1).await;
    applied_everywhere(out, |shares| !shares.contains_key("emoji")).await;
    let shares = over_new_connections(out, "/", 400).await;
    assert_eq!(shares.get("emoji"), None, "{shares:?}");
    assert_eq!(shares.values().sum::<usize>(), 400, "{shares:?}");
    // v4 expects 200, v2 and v3 100 each, with standard deviations of 10
    // and 8.7: each band is six of them wide on either side.
    let share = |name: &str| shares.get(name).copied().unwrap_or(0);
    assert!((140..=260).contains(&share("emoji-v4")), "{shares:?}");
    assert!((48..=152).contains(&share("emoji-v2")), "{shares:?}");
    assert!((48..=152).contains(&share("emoji-v3")), "{shares:?}");

    // Every runtime follows the next reload too.
    replace_routes(&dir, &split([0, 0, 5, 0]));
    reloaded(sidecar.admin, "ok", 2).await;
    applied_everywhere(out, |shares| shares.keys().all(|k| k == "emoji-v3")).await;
    assert_eq!(
        over_new_connections(out, "/", 20).await,
        only("emoji-v3", 20)
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_split_backend_without_endpoints_fails_its_share_fast_and_names_the_backend_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, _) = app("emoji").await;
    // `emoji-v2`'s one endpoint is a name that never resolves.
    let sidecar = upstreams::split_sidecar(dir.path(), "0s", emoji, "emoji-v2.invalid:80", "", 2);
    let client = http1();
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let req = Request::get(format!("http://{}/", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        let error = res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let first = String::from_utf8(body_bytes(res).await.to_vec())
            .unwrap()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        *answers.entry((first, error)).or_insert(0_usize) += 1;
    }
    let failed = answers
        .get(&(String::new(), Some("service in fail-fast".to_owned())))
        .copied()
        .unwrap_or(0);
    let served = answers
        .get(&("emoji".to_owned(), None))
        .copied()
        .unwrap_or(0);
    // The zero timeout has passed for the first request drawn to
    // `emoji-v2` on each runtime: it fails fast, and puts `emoji-v2` in
    // fail-fast, which the split then passes over, as Linkerd's
    // `RandomAvailable` passes over a backend whose gate is shut.
    assert!((1..=2).contains(&failed), "{answers:?}");
    assert_eq!(failed + served, 200, "{answers:?}");
    let metrics = scrape(sidecar.admin).await;
    let labels = [
        "parent_name=\"emoji\"",
        "backend_name=\"emoji-v2\"",
        "http_status=\"503\"",
        "error=\"FAIL_FAST\"",
    ];
    assert_eq!(
        series(
            &metrics,
            "outbound_http_route_backend_response_statuses_total",
            &labels
        ),
        failed as u64,
        "{metrics}"
    );
    stop(sidecar).await;
}

/// An application that reads each request's body whole, then answers
/// `503`.
async fn unavailable_app() -> SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<Incoming>| async move {
        let _ = req.into_body().collect().await;
        let mut res = Response::new(full("unavailable"));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Ok(res)
    });
    addr
}

#[tokio::test]
async fn a_retry_drawn_to_another_backend_replays_the_whole_body_once() {
    let dir = tempfile::tempdir().unwrap();
    let (echo, _) = backend().await;
    let failing = unavailable_app().await;
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: emojivoto
  annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: '4'}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - backendRefs: [{name: emoji, port: 80, weight: 1}, {name: emoji-v2, port: 80, weight: 1}]
";
    let sidecar = start(&dir, &[("emoji", echo), ("emoji-v2", failing)], routes);
    let body = pattern(40 * 1024);
    let (mut echoed, mut failed) = (0, 0);
    for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
        for _ in 0..30 {
            let req = Request::put("http://emoji/echo")
                .version(version)
                .body(full(body.clone()))
                .unwrap();
            let res = if version == http::Version::HTTP_2 {
                h2_via(sidecar.outbound, req).await.unwrap()
            } else {
                let req = Request::put(format!("http://{}/echo", sidecar.outbound))
                    .header("host", "emoji")
                    .body(full(body.clone()))
                    .unwrap();
                http1().request(req).await.unwrap()
            };
            match res.status() {
                StatusCode::OK => {
                    assert_eq!(body_bytes(res).await, body, "{version:?}");
                    echoed += 1;
                }
                // Every attempt drawn to the failing backend: 1 in 32.
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(body_bytes(res).await, "unavailable");
                    failed += 1;
                }
                other => panic!("{other} {version:?}"),
            }
        }
    }
    assert!(echoed > failed, "{echoed} echoed, {failed} failed");
    stop(sidecar).await;
}
