//! End to end over real sockets: the mesh's server sets `ConnectionInfo`
//! (plaintext here), the authorization layers sit in front of a backend,
//! and real clients see 200, 403, `grpc-status: 7`, closed connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use mesh_core::{
    BoxError,
    body::{BoxBody, full},
    error::GRPC_STATUS,
    labels::Authorized,
    serve::{OpaqueConnection, Protocol, Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, AuthorizeOpaqueLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{Layer, service_fn};

/// An HTTP Server on `port` with a public route, a route that needs an
/// identity, and a gRPC service that needs one too.
fn http_policy(port: u16) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  port: {port}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: public}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /public}}}}]}}]
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {{name: private}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /private}}
        - path: {{type: PathPrefix, value: /books.Api}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback}}
spec:
  networks: [{{cidr: 127.0.0.0/8}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{name: admins}}
spec:
  identities: ["*.admins.example"]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: public-from-loopback}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: HTTPRoute, name: public}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: private-admins}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: HTTPRoute, name: private}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admins}}]
"#
    )
}

/// An opaque Server on `port`, open to clients from `cidr`.
fn opaque_policy(port: u16, cidr: &str) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: db}}
spec:
  podSelector: {{}}
  port: {port}
  proxyProtocol: opaque
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {{name: db-clients}}
spec:
  server: {{name: db}}
  client:
    unauthenticated: true
    networks: [{{cidr: "{cidr}"}}]
"#
    )
}

fn store(text: &str, registry: &mut Registry) -> PolicyStore {
    let workload = Workload::new("default").with_label("app", "web");
    let store = PolicyStore::new(
        workload,
        PolicyConfig::default(),
        PolicyMetrics::register(registry),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", text)])
        .unwrap();
    store
}

async fn backend(req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let authz = req
        .extensions()
        .get::<Authorized>()
        .map_or("none".to_owned(), |a| a.authz.to_string());
    Ok(Response::new(full(authz)))
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test]
async fn http_requests_are_allowed_denied_and_not_found_over_real_connections() {
    let (listener, addr) = listener().await;
    let store = store(&http_policy(addr.port()), &mut Registry::default());
    let (trigger, signal) = shutdown::channel();
    let svc = AuthorizeLayer::new(store).layer(service_fn(backend));
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));

    // One HTTP/1.1 connection for every request: refusals keep it open.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for (path, status, body) in [
        ("/public/page", StatusCode::OK, "public-from-loopback"),
        ("/private/page", StatusCode::FORBIDDEN, ""),
        ("/elsewhere", StatusCode::NOT_FOUND, ""),
        ("/public/again", StatusCode::OK, "public-from-loopback"),
    ] {
        sender.ready().await.unwrap();
        let req = Request::get(path)
            .header("host", "web")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let rsp = sender.send_request(req).await.unwrap();
        assert_eq!(rsp.status(), status, "{path}");
        let got = rsp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, body.as_bytes(), "{path}");
    }

    // A gRPC client over HTTP/2 gets PERMISSION_DENIED in a trailers-only response.
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = Request::post(format!("http://{addr}/books.Api/Delete"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Empty::new())
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()[GRPC_STATUS], "7");

    trigger.trigger();
    server.await.unwrap();
}

/// An opaque handler that echoes bytes back and counts connections.
fn echo(
    handled: Arc<AtomicUsize>,
) -> impl tower::Service<OpaqueConnection, Response = (), Error = BoxError, Future = impl Send> + Clone
{
    service_fn(move |conn: OpaqueConnection| {
        let handled = handled.clone();
        async move {
            handled.fetch_add(1, Ordering::SeqCst);
            let (mut read, mut write) = tokio::io::split(conn.io);
            tokio::io::copy(&mut read, &mut write).await?;
            Ok::<_, BoxError>(())
        }
    })
}

async fn serve_opaque(
    text: &str,
    listener: TcpListener,
    registry: &mut Registry,
) -> (PolicyStore, Arc<AtomicUsize>, shutdown::ShutdownTrigger) {
    let store = store(text, registry);
    let handled = Arc::new(AtomicUsize::new(0));
    let (trigger, signal) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        shutdown_grace: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let opaque = AuthorizeOpaqueLayer::new(store.clone()).layer(echo(handled.clone()));
    let http = service_fn(backend);
    tokio::spawn(Server::new(config).serve(listener, http, opaque, signal));
    (store, handled, trigger)
}

/// Reads until the peer closes; panics if it does not within 5 seconds.
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the connection was not closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn an_opaque_port_closes_an_unauthorized_connection() {
    let (listener, addr) = listener().await;
    let mut registry = Registry::default();
    let (_store, handled, trigger) = serve_opaque(
        &opaque_policy(addr.port(), "10.0.0.0/8"),
        listener,
        &mut registry,
    )
    .await;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The write may succeed or fail; no byte reaches the handler either way.
    let _ = stream.write_all(b"select 1").await;
    closed_by_peer(&mut stream).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0);

    let port = addr.port();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            &format!(r#"inbound_tcp_authz_deny_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="db",srv_port="{port}",tls="no_identity"}} 1"#)
        ),
        "{text}"
    );
    trigger.trigger();
}

#[tokio::test]
async fn a_reload_to_a_stricter_policy_closes_an_open_opaque_connection() {
    let (listener, addr) = listener().await;
    let mut registry = Registry::default();
    let (store, handled, trigger) = serve_opaque(
        &opaque_policy(addr.port(), "127.0.0.0/8"),
        listener,
        &mut registry,
    )
    .await;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    // A change that still allows the connection leaves it open.
    store
        .reload(&[PolicySource::new(
            "policy.yaml",
            &opaque_policy(addr.port(), "127.0.0.1/32"),
        )])
        .unwrap();
    stream.write_all(b"pong").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");

    // A change that denies it closes it.
    store
        .reload(&[PolicySource::new(
            "policy.yaml",
            &opaque_policy(addr.port(), "10.0.0.0/8"),
        )])
        .unwrap();
    closed_by_peer(&mut stream).await;

    let port = addr.port();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(&format!(
            r#"inbound_tcp_authz_terminate_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="db",srv_port="{port}",tls="no_identity"}} 1"#
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"inbound_tcp_authz_allow_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="db",srv_port="{port}",authz_group="policy.linkerd.io",authz_kind="serverauthorization",authz_name="db-clients",tls="no_identity"}} 1"#
        )),
        "{text}"
    );
    trigger.trigger();
}
