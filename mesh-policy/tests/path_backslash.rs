//! A `\` in a path, as written or escaped (`%5C`), is a `/` to many of the
//! readers behind a mesh: the WHATWG URL parser (Node's `URL`, browsers),
//! Node's `url.parse`, IIS, and a servlet container that allows it. So
//! `/public/..\admin` is their `/admin`, and is allowed only if `/admin`
//! is, as `/public/../admin` is. hyper and `http` let the byte through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mesh_core::{
    body::BoxBody,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use support::{T::*, Want::*, *};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{Layer, service_fn};

/// `/admin` for the `admin` identity only, everything else for anyone.
const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: { matchLabels: { app: web } }
  port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: admin }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /admin } }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: public }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules: [{ matches: [{ path: { type: PathPrefix, value: / } }] }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: admins }
spec: { identities: ["spiffe://cluster.local/ns/default/sa/admin"] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: anywhere }
spec: { networks: [{ cidr: 0.0.0.0/0 }, { cidr: "::/0" }] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: admin-only }
spec:
  targetRef: { group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admins }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: public-anyone }
spec:
  targetRef: { group: gateway.networking.k8s.io, kind: HTTPRoute, name: public }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere }]
"#;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";
const IP: Option<&str> = Some("10.0.0.7");

fn workload() -> Workload {
    Workload::new("default").with_label("app", "web")
}

#[test]
fn a_backslash_does_not_open_another_routes_path() {
    let policy = compile(POLICY, &workload(), &PolicyConfig::default());
    for path in [
        "/public/..\\admin",
        "/public\\..\\admin",
        "/\\admin",
        "/public/..%5Cadmin",
        "/public/..%5cadmin/users?x=1",
    ] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Deny("web"),
            "{path}"
        );
        // A client the admin route allows is allowed, by the route the
        // path names as written.
        assert_eq!(
            decide(&policy, 8080, Id(ADMIN), IP, "GET", path, &[]),
            Allow("web", "public", "public-anyone"),
            "{path}"
        );
    }
    // A backslash on a path the client may use anyway changes nothing.
    for path in ["/public\\x", "/a%5Cb", "/a\\..\\b"] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Allow("web", "public", "public-anyone"),
            "{path}"
        );
    }
}

/// Through a real connection: hyper hands the policy the request line's
/// backslash as it is, and the admin path behind it is refused.
#[tokio::test]
async fn over_a_socket_a_backslash_before_the_admin_path_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = PolicyStore::new(
        workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", POLICY)])
        .unwrap();
    let (trigger, signal) = shutdown::channel();
    let app = service_fn(|_req: Request<hyper::body::Incoming>| async move {
        Ok::<_, Infallible>(Response::new(BoxBody::default()))
    });
    let svc = AuthorizeLayer::new(store).with_port(8080).layer(app);
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));

    assert_eq!(get(port, "/public/x").await, StatusCode::OK);
    assert_eq!(raw_get(port, "/public/x").await, StatusCode::OK);
    assert_eq!(
        raw_get(port, "/public/..\\admin").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(get(port, "/public/..%5Cadmin").await, StatusCode::FORBIDDEN);

    trigger.trigger();
    server.await.unwrap();
}

async fn get(port: u16, path: &str) -> StatusCode {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "web")
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.send_request(req).await.unwrap().status()
}

/// A GET written byte for byte, for a request line hyper's client would
/// not send as it is; the status read from the answer's first line.
async fn raw_get(port: u16, path: &str) -> StatusCode {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let code = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("{answer}"));
    StatusCode::from_bytes(code.as_bytes()).unwrap()
}
