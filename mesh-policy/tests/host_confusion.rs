//! A request can name its host twice: in its URI (an HTTP/1 request in
//! absolute form, or HTTP/2's `:authority`) and in a `Host` header. Routes
//! match the URI's, as the HTTP specifications say a server must; an
//! application that routes by the `Host` header reads the other. So when
//! the two differ, a request is allowed only if it would be under both.
//! Likewise for a request with several `Host` headers: frameworks differ
//! on which one they read.
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
    AuthorizeLayer, Client, ClientTls, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    Workload,
};
use support::{T::*, Want::*, *};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: {}
  port: 8080
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: admin }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  hostnames: [admin.example.com]
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: public }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: admins }
spec: { identities: ["spiffe://cluster.local/ns/default/sa/admin"] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: anywhere }
spec: { networks: [{ cidr: 0.0.0.0/0 }] }
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
  targetRef: { group: policy.linkerd.io, kind: HTTPRoute, name: public }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere }]
"#;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";
const IP: Option<&str> = Some("10.0.0.7");

fn policy() -> mesh_policy::Policy {
    compile(POLICY, &Workload::new("default"), &PolicyConfig::default())
}

#[test]
fn a_host_header_naming_a_refused_route_refuses_the_request() {
    let policy = policy();
    let get = |tls, uri, host| decide(&policy, 8080, tls, IP, "GET", uri, &[("host", host)]);
    // As in the URI, public; as in the Host header, admin.
    assert_eq!(
        get(Plain, "http://public.example.com/", "admin.example.com"),
        Deny("web")
    );
    assert_eq!(
        get(
            Plain,
            "http://public.example.com/",
            "ADMIN.example.com:8080"
        ),
        Deny("web")
    );
    // The admin may, under either name; the decision names the URI's route.
    assert_eq!(
        get(Id(ADMIN), "http://public.example.com/", "admin.example.com"),
        Allow("web", "public", "public-anyone")
    );
    // The two agreeing, however spelled, is one host.
    assert_eq!(
        get(
            Plain,
            "http://public.example.com/",
            "Public.Example.com.:80"
        ),
        Allow("web", "public", "public-anyone")
    );
    assert_eq!(
        get(Plain, "http://admin.example.com/", "admin.example.com"),
        Deny("web")
    );
    // Without a host in the URI, the Host header is the host.
    assert_eq!(
        get(Plain, "/", "public.example.com"),
        Allow("web", "public", "public-anyone")
    );
    assert_eq!(get(Plain, "/", "admin.example.com"), Deny("web"));
}

/// A request with two `Host` headers names two hosts; the first decides
/// its route, and the application may read either.
fn with_hosts(uri: &str, hosts: &[&str]) -> Request<()> {
    let mut req = Request::get(uri);
    for host in hosts {
        req = req.header("host", *host);
    }
    req.body(()).unwrap()
}

#[test]
fn a_second_host_header_naming_a_refused_route_refuses_the_request() {
    let policy = policy();
    let admin = mesh_core::Identity::parse(ADMIN).unwrap();
    let plain = Client {
        tls: ClientTls::Plaintext,
        addr: Some("10.0.0.7".parse().unwrap()),
    };
    let mutual = Client {
        tls: ClientTls::Mutual(&admin),
        ..plain
    };
    let decide = |client: &Client<'_>, uri: &str, hosts: &[&str]| {
        as_want(&policy.evaluate(8080, client, &with_hosts(uri, hosts)))
    };
    for (uri, hosts) in [
        ("/", &["public.example.com", "admin.example.com"][..]),
        ("/", &["admin.example.com", "public.example.com"]),
        (
            "/",
            &[
                "public.example.com",
                "x.example.com",
                "ADMIN.example.com:80",
            ],
        ),
        (
            "http://public.example.com/",
            &["public.example.com", "admin.example.com"],
        ),
        ("/a/../b", &["public.example.com", "admin.example.com"]),
    ] {
        assert_eq!(decide(&plain, uri, hosts), Deny("web"), "{uri} {hosts:?}");
    }
    // The admin may, under every name; the decision names the first's route.
    assert_eq!(
        decide(&mutual, "/", &["public.example.com", "admin.example.com"]),
        Allow("web", "public", "public-anyone")
    );
    // Two headers naming one host, however spelled, are one host.
    assert_eq!(
        decide(
            &plain,
            "/",
            &["public.example.com", "Public.Example.com.:80"]
        ),
        Allow("web", "public", "public-anyone")
    );
}

/// Over a real connection: an HTTP/1 request with two `Host` lines, the
/// second naming the route the client may not use, is refused with a 403
/// and never reaches the application.
#[tokio::test]
async fn over_a_socket_a_second_host_line_cannot_open_a_refused_route() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = PolicyStore::new(
        Workload::new("default"),
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

    for (hosts, want) in [
        (&["public.example.com"][..], StatusCode::OK),
        (&["admin.example.com"], StatusCode::FORBIDDEN),
        (
            &["public.example.com", "admin.example.com"],
            StatusCode::FORBIDDEN,
        ),
    ] {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get("/");
        for host in hosts {
            req = req.header("host", *host);
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), want, "{hosts:?}");
    }

    trigger.trigger();
    server.await.unwrap();
}

/// Each distinct host of a request's `Host` headers costs a decision, so
/// a client could make one request cost hundreds (HTTP/2 lets it send as
/// many headers as its header list holds). Repeats of one host are one
/// host; beyond a few distinct ones (RFC 9112 has a server refuse a
/// request with more than one `Host` outright), the request is refused.
#[test]
fn many_distinct_host_headers_are_refused_and_repeats_count_once() {
    let policy = policy();
    let plain = Client {
        tls: ClientTls::Plaintext,
        addr: Some("10.0.0.7".parse().unwrap()),
    };
    let decide = |hosts: &[String]| {
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        as_want(&policy.evaluate(8080, &plain, &with_hosts("/", &hosts)))
    };
    let public = |n: usize| {
        (0..n)
            .map(|i| format!("public-{i}.example.com"))
            .collect::<Vec<_>>()
    };
    assert_eq!(decide(&public(8)), Allow("web", "public", "public-anyone"));
    assert_eq!(decide(&public(9)), Deny("web"));
    assert_eq!(decide(&public(300)), Deny("web"));
    let same = vec!["public.example.com".to_owned(); 300];
    assert_eq!(decide(&same), Allow("web", "public", "public-anyone"));
}
