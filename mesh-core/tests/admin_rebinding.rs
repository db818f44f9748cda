//! The admin's loopback-only paths over real sockets, asked for by a web
//! page that reached the port through DNS rebinding: a loopback peer whose
//! requests name the page's own site in `Host`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Environment, LogLevel, Readiness},
    serve::{self, Server, ServerConfig},
};
use prometheus_client::registry::Registry;

#[derive(Debug)]
struct Filter(std::sync::Mutex<String>);

impl LogLevel for Filter {
    fn get(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        *self.0.lock().unwrap() = filter.to_owned();
        Ok(())
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    host: &str,
    body: &'static str,
) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(header::HOST, host)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_rebound_web_page_on_loopback_is_refused_what_local_tools_get() {
    let filter = Arc::new(Filter(std::sync::Mutex::new("info".into())));
    let (stop, stopping) = serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new())
        .with_env(Environment::fixed([("TOKEN", "secret")]))
        .with_log_level(filter.clone())
        .with_shutdown(stop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    let rebound = format!("evil.example:{}", addr.port());

    // The page's origin is `http://evil.example:<port>`, now on 127.0.0.1.
    let (status, body) = send(addr, Method::GET, "/env.json", &rebound, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.contains("secret"));
    let (status, _) = send(addr, Method::GET, "/proxy-log-level", &rebound, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(addr, Method::PUT, "/proxy-log-level", &rebound, "trace").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(filter.get(), "info");
    let (status, _) = send(addr, Method::POST, "/shutdown", &rebound, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!stopping.is_triggered());
    // What anyone may see stays open, whatever the host.
    assert_eq!(
        send(addr, Method::GET, "/ready", &rebound, "").await.0,
        StatusCode::OK
    );

    // Local tools name an address or localhost.
    let localhost = format!("localhost:{}", addr.port());
    let (status, body) = send(addr, Method::GET, "/env.json", &localhost, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("secret"));
    let (status, _) = send(
        addr,
        Method::PUT,
        "/proxy-log-level",
        &addr.to_string(),
        "debug",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(filter.get(), "debug");
    let (status, _) = send(addr, Method::POST, "/shutdown", &addr.to_string(), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(stopping.is_triggered());

    trigger.trigger();
    task.await.unwrap();
}
