//! The admin server over real sockets: `HEAD` is answered as `GET` is,
//! without the body, and a shutdown the user asked for in their browser's
//! address bar is not taken for a web page's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Readiness},
    serve::{self, Server, ServerConfig},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn head_answers_what_get_does_without_the_body() {
    let readiness = Readiness::new();
    let _gate = readiness.gate("identity");
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("demo_requests", "Requests seen", requests.clone());
    requests.inc();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task = tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        listener,
        Admin::new(registry, readiness),
        shutdown,
    ));

    for path in ["/live", "/ready", "/metrics"] {
        let (status, get_headers, body) = send(addr, Method::GET, path, &[]).await;
        assert!(!body.is_empty(), "{path}");
        let (head_status, head_headers, head_body) = send(addr, Method::HEAD, path, &[]).await;
        assert_eq!(head_status, status, "{path}");
        assert!(head_body.is_empty(), "{path}: {head_body:?}");
        assert_eq!(
            head_headers.get(header::CONTENT_TYPE),
            get_headers.get(header::CONTENT_TYPE),
            "{path}"
        );
        assert_eq!(
            head_headers.get(header::CONTENT_LENGTH),
            Some(&body.len().into()),
            "{path}"
        );
    }
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_shutdown_the_user_typed_in_is_not_a_web_pages() {
    let (stop, stopping) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new()).with_shutdown(stop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    // `Sec-Fetch-Site: none`: no page started it.
    let (status, _, body) = send(
        addr,
        Method::POST,
        "/shutdown",
        &[("sec-fetch-site", "none")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(stopping.is_triggered());
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_loopback_client_refused_for_the_host_it_named_is_told_so() {
    #[derive(Debug)]
    struct Info;
    impl mesh_core::admin::LogLevel for Info {
        fn get(&self) -> String {
            "info".into()
        }
        fn set(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }
    let (stop, stopping) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new())
        .with_env(mesh_core::admin::Environment::fixed([("TOKEN", "secret")]))
        .with_log_level(std::sync::Arc::new(Info))
        .with_shutdown(stop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    // A tool on the host that names the proxy by a name of its own: it is
    // on loopback, and "only from loopback" would not tell it what to change.
    let named = format!("proxy.internal:{}", addr.port());
    for (method, path) in [
        (Method::GET, "/env.json"),
        (Method::GET, "/proxy-log-level"),
        (Method::POST, "/shutdown"),
    ] {
        let (status, _, body) = send(addr, method, path, &[("host", &named)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("localhost"), "{path}: {body}");
        assert!(body.contains("host"), "{path}: {body}");
    }
    assert!(!stopping.is_triggered());
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test]
async fn a_log_level_put_without_a_filter_is_refused_and_the_filter_stays() {
    // `curl -X PUT` without `-d` sends no body: a mistake, not a request
    // to turn every log off.
    #[derive(Debug, Default)]
    struct Kept(std::sync::Mutex<Vec<String>>);
    impl mesh_core::admin::LogLevel for Kept {
        fn get(&self) -> String {
            "info".into()
        }
        fn set(&self, filter: &str) -> Result<(), String> {
            self.0.lock().unwrap().push(filter.to_owned());
            Ok(())
        }
    }
    let level = std::sync::Arc::new(Kept::default());
    let admin = Admin::new(Registry::default(), Readiness::new()).with_log_level(level.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    let (status, _, body) = send(addr, Method::PUT, "/proxy-log-level", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("empty"), "{body}");
    assert!(level.0.lock().unwrap().is_empty());
    trigger.trigger();
    task.await.unwrap();
}

#[test]
fn an_extension_can_tell_a_refused_client_why() {
    use mesh_core::{admin::not_local_reason, conn::ConnectionInfo};
    let req = |peer: &str, host: &str| {
        let mut req = Request::get("/tap").header("host", host).body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo::plaintext(
            "127.0.0.1:4191".parse().unwrap(),
            peer.parse().unwrap(),
        ));
        req
    };
    let remote = not_local_reason(&req("10.1.2.3:5000", "localhost:4191")).unwrap();
    assert!(remote.contains("loopback address"), "{remote}");
    let rebound = not_local_reason(&req("127.0.0.1:5000", "evil.example:4191")).unwrap();
    assert!(rebound.contains("name localhost"), "{rebound}");
    assert_eq!(
        not_local_reason(&req("127.0.0.1:5000", "localhost:4191")),
        None
    );
    let unknown = Request::get("/tap").body(()).unwrap();
    assert!(not_local_reason(&unknown).is_some());
}
