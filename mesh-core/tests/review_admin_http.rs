//! The admin server over real sockets, as the clients that talk to it
//! behave: `HEAD` over HTTP/2 is answered with the head alone (curl and
//! hyper reset a `HEAD` stream that carries data, RFC 9113 §8.1.1), and a
//! `PUT /proxy-log-level` whose body stops arriving is answered, not held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Environment, LogLevel, Readiness},
    body::{self, BoxBody},
    serve::{self, Server, ServerConfig, shutdown::ShutdownTrigger},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};
use tower::service_fn;

#[derive(Debug)]
struct Filter(Mutex<String>);

impl LogLevel for Filter {
    fn get(&self) -> String {
        self.0.lock().unwrap().clone()
    }
    fn set(&self, filter: &str) -> Result<(), String> {
        *self.0.lock().unwrap() = filter.to_owned();
        Ok(())
    }
}

/// An admin with every path on, a counter in its registry and an
/// extension at `/page`, served on 127.0.0.1.
async fn admin() -> (SocketAddr, Arc<Filter>, ShutdownTrigger, JoinHandle<()>) {
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("demo_requests", "Requests seen", requests.clone());
    requests.inc();
    let filter = Arc::new(Filter(Mutex::new("info".into())));
    let page = service_fn(|req: Request<BoxBody>| async move {
        let mut res = Response::new(body::full("<html>a page</html>\n"));
        if req.uri().path() != "/page" {
            *res.status_mut() = StatusCode::NOT_FOUND;
        }
        Ok::<_, Infallible>(res)
    });
    let admin = Admin::new(registry, Readiness::new())
        .with_log_level(filter.clone())
        .with_env(Environment::fixed([("MESH_LOG", "info")]))
        .with_extension(page);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = serve::shutdown::channel();
    let task =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, shutdown));
    (addr, filter, trigger, task)
}

#[tokio::test]
async fn head_over_http2_is_the_head_alone_with_get_s_length() {
    let (addr, _filter, trigger, task) = admin().await;
    let h1 = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    for path in [
        "/live",
        "/ready",
        "/metrics",
        "/proxy-log-level",
        "/env.json",
        "/page",
    ] {
        let uri = format!("http://{addr}{path}");
        let get = h1
            .request(Request::get(&uri).body(Empty::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::OK, "{path}");
        let length = get.into_body().collect().await.unwrap().to_bytes().len();
        assert!(length > 0, "{path}");

        let head = h2
            .request(
                Request::builder()
                    .method(Method::HEAD)
                    .uri(&uri)
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "{path}");
        assert_eq!(
            head.headers().get(header::CONTENT_LENGTH),
            Some(&length.into()),
            "{path}"
        );
        // Before, the answer's body went out as DATA frames, and the
        // client reset the stream: PROTOCOL_ERROR.
        let body = head.into_body().collect().await;
        let body = body.unwrap_or_else(|e| panic!("HEAD {path} over HTTP/2: {e:?}"));
        assert!(body.to_bytes().is_empty(), "{path}");
    }
    trigger.trigger();
    task.await.unwrap();
}

/// Reads what the server sends until it closes the connection.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_log_filter_whose_body_stops_arriving_is_answered_408_and_kept() {
    let (addr, filter, trigger, task) = admin().await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // Ten bytes announced, three sent, and then nothing: the client
    // holds the connection open.
    tcp.write_all(
        b"PUT /proxy-log-level HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10\r\n\r\ndeb",
    )
    .await
    .unwrap();
    // Before, no answer came at all: the admin waited for the body for
    // ever (an hour of the paused clock here), holding the connection
    // and, at shutdown, the drain.
    let answer = tokio::time::timeout(Duration::from_secs(3600), read_to_close(&mut tcp))
        .await
        .expect("the admin answers a filter that stops arriving");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("the filter did not arrive within 10s"),
        "{answer}"
    );
    assert_eq!(filter.get(), "info");

    // A filter sent whole is taken as before.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"PUT /proxy-log-level HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\nconnection: close\r\n\r\ndebug",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    assert_eq!(filter.get(), "debug");
    trigger.trigger();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_http2_log_filter_that_stops_arriving_is_answered_408_on_its_stream() {
    let (addr, filter, trigger, task) = admin().await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<BoxBody>();
    // Three bytes, and then a body that never ends.
    let stalled = futures_util::stream::iter([Ok::<_, mesh_core::BoxError>(
        http_body::Frame::data(Bytes::from_static(b"deb")),
    )])
    .chain(futures_util::stream::pending());
    let put = Request::put(format!("http://{addr}/proxy-log-level"))
        .body(body::boxed(http_body_util::StreamBody::new(stalled)))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(3600), h2.request(put))
        .await
        .expect("the admin answers a filter that stops arriving")
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(filter.get(), "info");
    // The connection serves the next request.
    let res = h2
        .request(
            Request::get(format!("http://{addr}/proxy-log-level"))
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    trigger.trigger();
    task.await.unwrap();
}
