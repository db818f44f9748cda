//! The admin server over real sockets, and its loopback check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Readiness},
    conn::ConnectionInfo,
    serve::{self, Server, ServerConfig},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tower::ServiceExt;

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn ready_waits_for_every_gate() {
    let readiness = Readiness::new();
    let mut identity = readiness.gate("identity");
    let mut policy = readiness.gate("policy");
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("demo_requests", "Requests seen", requests.clone());
    requests.inc();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let server = Server::new(ServerConfig::default());
    let task = tokio::spawn(server.serve_http(listener, Admin::new(registry, readiness), shutdown));

    assert_eq!(get(addr, "/live").await.0, StatusCode::OK);
    let (status, _, body) = get(addr, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: identity, policy\n");
    identity.open();
    let (status, _, body) = get(addr, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: policy\n");
    policy.open();
    assert_eq!(get(addr, "/ready").await.0, StatusCode::OK);

    // No `Accept`: the Prometheus text format 0.0.4, which every consumer reads.
    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        body,
        "# HELP demo_requests_total Requests seen.\n# TYPE demo_requests_total counter\ndemo_requests_total 1\n"
    );
    assert_eq!(get(addr, "/nope").await.0, StatusCode::NOT_FOUND);
    trigger.trigger();
    task.await.unwrap();
}

fn shutdown_request(peer: &str) -> Request<Empty<Bytes>> {
    let mut req = Request::post("/shutdown").body(Empty::new()).unwrap();
    req.extensions_mut().insert(ConnectionInfo::plaintext(
        "127.0.0.1:4191".parse().unwrap(),
        peer.parse().unwrap(),
    ));
    req
}

#[tokio::test]
async fn shutdown_is_refused_from_a_non_loopback_peer() {
    let (trigger, shutdown) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new()).with_shutdown(trigger);

    let res = admin
        .clone()
        .oneshot(shutdown_request("10.1.2.3:55555"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!shutdown.is_triggered());

    // No connection info at all is refused too.
    let res = admin
        .clone()
        .oneshot(
            Request::post("/shutdown")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!shutdown.is_triggered());

    let res = admin
        .oneshot(shutdown_request("127.0.0.1:55555"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(shutdown.is_triggered());
}

#[tokio::test]
async fn shutdown_over_a_real_loopback_connection_stops_the_server_unless_a_page_sent_it() {
    let (trigger, shutdown) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new()).with_shutdown(trigger);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // What a script on any page open on the host can send to loopback
    // without asking first: refused, and the server keeps serving.
    for (name, value) in [
        ("origin", "https://attacker.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let res = client
            .request(
                Request::post(format!("http://{addr}/shutdown"))
                    .header(name, value)
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("web page"),
            "{body:?}"
        );
    }
    assert!(!task.is_finished());
    let res = client
        .request(
            Request::post(format!("http://{addr}/shutdown"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    drop(client);
    task.await.unwrap();
}

/// A log filter that takes any word but `bogus`.
#[derive(Debug, Default)]
struct Filter(std::sync::Mutex<String>);

impl mesh_core::admin::LogLevel for Filter {
    fn get(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        if filter == "bogus" {
            return Err(format!("{filter:?} is not a filter"));
        }
        *self.0.lock().unwrap() = filter.to_owned();
        Ok(())
    }
}

#[tokio::test]
async fn the_log_level_is_read_and_replaced_from_loopback_only() {
    let filter = std::sync::Arc::new(Filter(std::sync::Mutex::new("info".into())));
    let admin = Admin::new(Registry::default(), Readiness::new()).with_log_level(filter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task = tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        listener,
        admin.clone(),
        shutdown,
    ));
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<Bytes>>();
    let put = |body: &'static str| {
        Request::put(format!("http://{addr}/proxy-log-level"))
            .body(http_body_util::Full::new(Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    };

    assert_eq!(get(addr, "/proxy-log-level").await.2, "info\n");
    let res = client.request(put("mesh_core=debug,warn\n")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(addr, "/proxy-log-level").await.2,
        "mesh_core=debug,warn\n"
    );
    // A filter that does not parse is refused, and the one in force stays.
    let res = client.request(put("bogus")).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let why = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(why, "\"bogus\" is not a filter\n");
    assert_eq!(filter.0.lock().unwrap().as_str(), "mesh_core=debug,warn");

    // Only loopback peers are served.
    let mut remote = Request::get("/proxy-log-level")
        .body(Empty::<Bytes>::new())
        .unwrap();
    remote.extensions_mut().insert(ConnectionInfo::plaintext(
        "10.0.0.1:4191".parse().unwrap(),
        "10.1.2.3:55555".parse().unwrap(),
    ));
    assert_eq!(
        admin.oneshot(remote).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Without a filter to serve, the path is not found.
    let plain = Admin::new(Registry::default(), Readiness::new());
    let req = Request::get("/proxy-log-level")
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(
        plain.oneshot(req).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_loopback_peer_on_a_dual_stack_socket_may_shut_down() {
    // A listener on `[::]` sees IPv4 peers as IPv4-mapped IPv6 addresses:
    // `127.0.0.1` arrives as `::ffff:127.0.0.1`.
    let (trigger, shutdown) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new()).with_shutdown(trigger);
    let res = admin
        .clone()
        .oneshot(shutdown_request("[::ffff:10.1.2.3]:55555"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!shutdown.is_triggered());
    let res = admin
        .oneshot(shutdown_request("[::ffff:127.0.0.1]:55555"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(shutdown.is_triggered());
}
