//! A 429 says which limit refused the request and at what rate, in its
//! `mesh-error` header (and a gRPC caller's `grpc-message`), as
//! linkerd2-proxy's `l5d-proxy-error` carries its `RateLimitError`
//! (`total rate limit exceeded: …`). Over real connections, on tokio's
//! paused clock, with names that are valid but unusual, to show that no
//! name can make the header invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use mesh_core::{
    body::{BoxBody, full},
    error::{GRPC_MESSAGE, GRPC_STATUS, MESH_ERROR},
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;

/// A Server and its limit, named with every character a name may have
/// (digits first, dots, doubled dashes) and at a name's greatest length.
fn policy(port: u16, spec: &str) -> String {
    let long = format!("{}.limit", "9-x".repeat(80));
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: 0web--http.v2 }}
spec:
  podSelector: {{ matchLabels: {{ app: web }} }}
  port: {port}
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{ name: {long} }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: 0web--http.v2 }}
{spec}"#
    )
}

/// Holds tokio's paused clock still until dropped. A paused clock jumps to
/// the next timer (a connection's keep-alive, say) whenever the runtime
/// waits, which would refill the limit mid-test; tokio does not advance it
/// while a blocking task runs, so one waits here for the returned sender
/// to be dropped. Time then moves only as the test moves it.
fn hold_clock() -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    release
}

async fn backend(_req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    Ok(Response::new(full("served")))
}

async fn serve(spec: &str) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = PolicyStore::new(
        Workload::new("default").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut Registry::default()),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", &policy(addr.port(), spec))])
        .unwrap();
    let (trigger, signal) = shutdown::channel();
    let svc = AuthorizeLayer::new(store).layer(tower::service_fn(backend));
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));
    (addr, trigger)
}

/// `n` HTTP/1.1 requests on one connection; the last response.
async fn http1_burst(addr: SocketAddr, n: usize) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut last = None;
    for _ in 0..n {
        sender.ready().await.unwrap();
        let req = Request::get("/")
            .header("host", "web")
            .body(Empty::<Bytes>::new())
            .unwrap();
        last = Some(sender.send_request(req).await.unwrap());
    }
    last.unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_total_limits_429_names_the_limit_and_its_rate() {
    let _clock = hold_clock();
    let (addr, trigger) = serve("  total: { requestsPerSecond: 2 }\n").await;
    let rsp = http1_burst(addr, 3).await;
    assert_eq!(rsp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rsp.headers()[MESH_ERROR], "total rate limit exceeded: 2rps");
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn a_clients_own_limit_is_named_as_such() {
    let _clock = hold_clock();
    let (addr, trigger) = serve("  identity: { requestsPerSecond: 1 }\n").await;
    let rsp = http1_burst(addr, 2).await;
    assert_eq!(rsp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rsp.headers()[MESH_ERROR],
        "per-identity rate limit exceeded: 1rps"
    );
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn a_grpc_caller_reads_the_same_in_grpc_message() {
    let _clock = hold_clock();
    let (addr, trigger) = serve("  total: { requestsPerSecond: 1 }\n").await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let call = || {
        Request::post(format!("http://{addr}/books.Api/List"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Empty::new())
            .unwrap()
    };
    let first = client.request(call()).await.unwrap();
    assert!(first.headers().get(GRPC_STATUS).is_none());
    let rsp = client.request(call()).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()[GRPC_STATUS], "8");
    let message = "total rate limit exceeded: 1rps";
    assert_eq!(rsp.headers()[GRPC_MESSAGE], message);
    assert_eq!(rsp.headers()[MESH_ERROR], message);
    trigger.trigger();
}
