//! `AuthorizeLayer::on_rate_limited`: a request its Server's rate limit
//! refused is told of, once, with an `Authorized` naming the Server and
//! the head of its answer, so that an embedder can count what a metrics
//! layer inside never sees. An allowed request and one that matched no
//! route are not. Over real connections, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ConnectionInfo, ProxyErrorKind,
    body::{BoxBody, full},
    error::{GRPC_STATUS, MESH_ERROR},
    labels::Authorized,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;

/// What the hook was told of one request.
#[derive(Debug)]
struct Told {
    path: String,
    authorized: Option<Authorized>,
    client: Option<SocketAddr>,
    status: StatusCode,
    grpc_status: Option<String>,
    kind: Option<ProxyErrorKind>,
    mesh_error: Option<String>,
}

/// A Server on `port` open to every client, with a limit of one request
/// per second in all, and a route that admits `/` only.
fn policy(port: u16) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: web-http }}
spec:
  podSelector: {{ matchLabels: {{ app: web }} }}
  port: {port}
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{ name: web-limit }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: web-http }}
  total: {{ requestsPerSecond: 1 }}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{ name: root }}
spec:
  parentRefs: [{{ group: policy.linkerd.io, kind: Server, name: web-http }}]
  rules:
    - matches: [{{ path: {{ type: Exact, value: / }} }}]
"#
    )
}

/// Holds tokio's paused clock still until dropped (see
/// `ratelimit_error_header.rs`): the limit refills only as the test says.
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

/// Serves the policy behind a hook that records what it is told.
async fn serve() -> (SocketAddr, Arc<Mutex<Vec<Told>>>, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = PolicyStore::new(
        Workload::new("default").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut Registry::default()),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", &policy(addr.port()))])
        .unwrap();
    let told = Arc::new(Mutex::new(Vec::new()));
    let record = told.clone();
    let layer = AuthorizeLayer::new(store).on_rate_limited(move |req, answer| {
        record.lock().unwrap().push(Told {
            path: req.uri.path().to_owned(),
            authorized: req.extensions.get::<Authorized>().cloned(),
            client: req
                .extensions
                .get::<ConnectionInfo>()
                .map(|info| info.remote_addr),
            status: answer.status,
            grpc_status: answer
                .headers
                .get(GRPC_STATUS)
                .map(|v| v.to_str().unwrap().to_owned()),
            kind: answer.extensions.get::<ProxyErrorKind>().copied(),
            mesh_error: answer
                .headers
                .get(MESH_ERROR)
                .map(|v| v.to_str().unwrap().to_owned()),
        });
    });
    let (trigger, signal) = shutdown::channel();
    let svc = layer.layer(tower::service_fn(backend));
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));
    (addr, told, trigger)
}

/// Sends `paths` in turn on one HTTP/1.1 connection, each with
/// `content-type` if given: the statuses, and the client's address.
async fn send(
    addr: SocketAddr,
    paths: &[&str],
    content_type: Option<&str>,
) -> (Vec<StatusCode>, SocketAddr) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut statuses = Vec::new();
    for path in paths {
        sender.ready().await.unwrap();
        let mut req = Request::post(*path).header("host", "web");
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let rsp = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        statuses.push(rsp.status());
    }
    (statuses, client)
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_request_is_told_of_with_its_server_and_answer() {
    let clock = hold_clock();
    let (addr, told, trigger) = serve().await;

    // One request a second: the first of the burst is served, the two
    // after it refused. A path no route matches is answered 404 before
    // the limit is consulted.
    let (statuses, client) = send(addr, &["/", "/", "/", "/nowhere"], None).await;
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::NOT_FOUND,
        ]
    );
    {
        let told = told.lock().unwrap();
        assert_eq!(told.len(), 2, "{told:?}");
        for told in told.iter() {
            assert_eq!(told.path, "/");
            assert_eq!(told.client, Some(client));
            assert_eq!(told.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(told.kind, Some(ProxyErrorKind::RateLimited));
            assert_eq!(
                told.mesh_error.as_deref(),
                Some("total rate limit exceeded: 1rps")
            );
            let authorized = told.authorized.as_ref().unwrap();
            assert_eq!(&*authorized.server, "web-http");
            assert_eq!(authorized.server_kind.kind, "server");
            assert_eq!(authorized.server_port, Some(addr.port()));
            assert_eq!(&*authorized.route, "root");
        }
    }

    // A gRPC caller's refusal (`RESOURCE_EXHAUSTED`) is told of too.
    let (statuses, _) = send(addr, &["/"], Some("application/grpc")).await;
    assert_eq!(statuses, [StatusCode::OK]);
    let told = told.lock().unwrap();
    assert_eq!(told.len(), 3, "{told:?}");
    assert_eq!(told[2].grpc_status.as_deref(), Some("8"));
    assert_eq!(told[2].kind, Some(ProxyErrorKind::RateLimited));
    drop(told);
    drop(clock);
    trigger.trigger();
}
