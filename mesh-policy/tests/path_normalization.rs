//! A route that only some clients may use cannot be reached through the
//! spelling of a path on another route: `/public/../admin`, `//admin`,
//! `/%61dmin` and `/admin%2Fx` are what the application reads as
//! `/admin...`, so they are allowed only if `/admin...` is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ConnectionInfo,
    body::BoxBody,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use support::{T::*, Want::*, *};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: { matchLabels: { app: web } }
  port: 8080
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: admin }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /admin } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: public }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
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
  targetRef: { group: policy.linkerd.io, kind: HTTPRoute, name: admin }
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

fn policy() -> mesh_policy::Policy {
    let workload = Workload::new("default").with_label("app", "web");
    compile(POLICY, &workload, &PolicyConfig::default())
}

#[test]
fn another_spelling_of_a_forbidden_path_is_denied() {
    let policy = policy();
    for path in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/./admin",
        "//admin",
        "/%61dmin",
        "/admin%2Fusers",
        "/public/..%2Fadmin/users?x=1",
    ] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Deny("web"),
            "{path}"
        );
    }
}

#[test]
fn a_client_allowed_under_both_spellings_is_allowed() {
    let policy = policy();
    // The decision names the route as written; the normal form only
    // has to allow it too.
    for (path, route, authz) in [
        ("/admin", "admin", "admin-only"),
        ("/public/../admin", "public", "public-anyone"),
        ("//admin", "public", "public-anyone"),
        // An escaped unreserved character is the same path however it is
        // spelled (RFC 3986, 6.2.2.2): as written, this is `/admin`.
        ("/%61dmin", "admin", "admin-only"),
    ] {
        assert_eq!(
            decide(&policy, 8080, Id(ADMIN), IP, "GET", path, &[]),
            Allow("web", route, authz),
            "{path}"
        );
    }
    for path in ["/public//x", "/public/./x", "/a%20b"] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Allow("web", "public", "public-anyone"),
            "{path}"
        );
    }
    // As written, this is on the admin route, which an application that
    // does not normalize would serve: both spellings must allow.
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/admin/../public", &[]),
        Deny("web")
    );
}

/// Through a real connection: the client's bytes reach the policy as
/// written, and each spelling of the admin path is refused with a 403.
#[tokio::test]
async fn over_a_socket_each_spelling_of_the_admin_path_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = PolicyStore::new(
        Workload::new("default").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", POLICY)])
        .unwrap();
    let (trigger, signal) = shutdown::channel();
    let app = service_fn(|req: Request<hyper::body::Incoming>| async move {
        // The application reads what it was sent.
        assert!(req.extensions().get::<ConnectionInfo>().is_some());
        Ok::<_, Infallible>(Response::new(BoxBody::default()))
    });
    // The policy's Server is on 8080; the listener's port is whatever the
    // kernel gave, as a sidecar's inbound port forwards to the app's.
    let svc = AuthorizeLayer::new(store).with_port(8080).layer(app);
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));

    for (path, want) in [
        ("/public/x", StatusCode::OK),
        ("/admin", StatusCode::FORBIDDEN),
        ("/public/../admin", StatusCode::FORBIDDEN),
        ("/%61dmin", StatusCode::FORBIDDEN),
        ("/public/..%2Fadmin", StatusCode::FORBIDDEN),
        ("/public/..;/admin", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(get(port, path).await, want, "{path}");
    }

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

/// An explanation names the route that refused, not the one the path
/// matched as written.
#[test]
fn an_explanation_names_the_route_of_the_refusal() {
    let mut query = mesh_policy::ExplainQuery::new(8080);
    query.client_ip = Some("10.0.0.7".parse().unwrap());
    query.uri = "/public/../admin".parse().unwrap();
    let explanation = policy().explain(&query);
    assert_eq!(explanation.status, Some(403));
    assert_eq!(explanation.route.as_deref(), Some("admin"));
    let tried: Vec<_> = explanation
        .authorizations
        .iter()
        .map(|a| (a.name.as_str(), a.matched))
        .collect();
    assert_eq!(tried, [("admin-only", false)]);
}

/// Java servlet containers drop a segment's path parameters (`;x=y`)
/// before they route, so `/public/..;/admin` is their `/admin` (the
/// classic `..;` traversal) and `/admin;jsessionid=1` is `/admin`: the
/// first matches the public route as written, and neither may reach the
/// admin route's handler for a client the admin route refuses.
#[test]
fn path_parameters_do_not_open_another_routes_path() {
    let policy = policy();
    for path in [
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/public;x/..;/admin/users",
        "/;/admin",
        "/admin;jsessionid=1",
    ] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Deny("web"),
            "{path}"
        );
    }
    assert_eq!(
        decide(
            &policy,
            8080,
            Id(ADMIN),
            IP,
            "GET",
            "/public/..;/admin",
            &[]
        ),
        Allow("web", "public", "public-anyone")
    );
    // Parameters on a path the client may use anyway change nothing.
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/public/x;v=1", &[]),
        Allow("web", "public", "public-anyone")
    );
}

/// A route whose path holds characters outside ASCII, as a regular
/// expression may: a request spelling that path with an empty or dot
/// segment is decided as the application reads it, characters intact.
#[test]
fn a_path_outside_ascii_is_normalized_with_its_characters_intact() {
    let text = POLICY.replace(
        "matches: [{ path: { type: PathPrefix, value: /admin } }]",
        "matches: [{ path: { type: RegularExpression, value: \"/café/admin.*\" } }]",
    );
    let policy = compile(
        &text,
        &Workload::new("default").with_label("app", "web"),
        &PolicyConfig::default(),
    );
    for path in [
        "/café/admin",
        "/café//admin",
        "/café/./admin",
        "/x/../café/admin",
    ] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Deny("web"),
            "{path}"
        );
    }
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/café//menu", &[]),
        Allow("web", "public", "public-anyone")
    );
}
