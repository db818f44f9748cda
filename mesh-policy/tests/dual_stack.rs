//! A listener on `[::]` takes IPv4 clients too, and the kernel reports
//! their addresses IPv4-mapped (`::ffff:127.0.0.1`). Networks written in
//! IPv4 must still match them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    body::{BoxBody, full},
    labels::Authorized,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};

fn policy(port: u16) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{name: web}}
spec:
  podSelector: {{}}
  port: {port}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {{name: loopback}}
spec:
  networks: [{{cidr: 127.0.0.0/8}}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: web-from-loopback}}
spec:
  targetRef: {{group: policy.linkerd.io, kind: Server, name: web}}
  requiredAuthenticationRefs: [{{group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}}]
"#
    )
}

async fn backend(req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let authz = req
        .extensions()
        .get::<Authorized>()
        .map_or("none".to_owned(), |a| a.authz.to_string());
    Ok(Response::new(full(authz)))
}

#[tokio::test]
async fn an_ipv4_client_of_a_dual_stack_listener_matches_ipv4_networks() {
    let listener = TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = PolicyStore::new(
        Workload::new("default"),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", &policy(port))])
        .unwrap();
    let (trigger, signal) = shutdown::channel();
    let svc = AuthorizeLayer::new(store).layer(service_fn(backend));
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));

    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "web")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let rsp = sender.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "web-from-loopback");

    trigger.trigger();
    server.await.unwrap();
}

/// An embedder that builds a [`Client`](mesh_policy::Client) from a
/// dual-stack socket's peer address gets the same answers: an IPv4 network
/// matches the mapped address, and an IPv4 `except` still excludes it
/// under a `::/0` that would otherwise take it.
#[test]
fn a_hand_built_client_with_a_mapped_address_is_read_as_ipv4() {
    use mesh_policy::{Client, ClientTls, ConnectionDecision, Decision, Policy};

    const EXCEPT: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 8080
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: not-the-dmz}
spec:
  networks:
    - {cidr: 10.0.0.0/8, except: [10.9.0.0/16]}
    - {cidr: "::/0"}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-not-from-dmz}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: not-the-dmz}]
"#;
    let policy = Policy::compile(
        &[PolicySource::new("policy.yaml", EXCEPT)],
        &Workload::new("default"),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .unwrap()
    .policy;
    let client = |ip: &str| Client {
        tls: ClientTls::Plaintext,
        addr: Some(ip.parse().unwrap()),
    };
    let req = Request::get("/").body(()).unwrap();
    for (ip, allowed) in [
        ("10.1.2.3", true),
        ("::ffff:10.1.2.3", true),
        ("10.9.0.1", false),
        ("::ffff:10.9.0.1", false),
        ("fd00::1", true),
    ] {
        let decision = policy.evaluate(8080, &client(ip), &req);
        assert_eq!(matches!(decision, Decision::Allow(_)), allowed, "{ip}");
        let decision = policy.evaluate_connection(8080, &client(ip));
        assert_eq!(
            matches!(decision, ConnectionDecision::Allow(_)),
            allowed,
            "{ip}"
        );
    }
}

/// Logs of a dual-stack listener name IPv4 clients `::ffff:a.b.c.d`, so
/// networks get written that way too. Since clients are matched as the
/// IPv4 address they carry, such a network must be read as that IPv4
/// network, or the clients it names would all be refused (and an IPv4
/// network could not except them).
#[test]
fn a_network_written_ipv4_mapped_is_the_ipv4_network_it_carries() {
    use mesh_policy::{Client, ClientTls, ConnectionDecision, DefaultPolicy, Policy};

    const MAPPED: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {}
  port: 8080
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: mapped}
spec:
  networks:
    - {cidr: "::ffff:10.0.0.0/104", except: ["::ffff:10.9.0.0/112"]}
    - {cidr: 192.168.0.0/16, except: ["::ffff:192.168.7.0/120"]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-mapped}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  requiredAuthenticationRefs: [{group: policy.linkerd.io, kind: NetworkAuthentication, name: mapped}]
"#;
    let workload = Workload::new("default")
        .with_cluster_networks(vec!["::ffff:172.16.0.0/108".parse().unwrap()]);
    let config = PolicyConfig::default().with_default_policy(DefaultPolicy::ClusterUnauthenticated);
    let policy = Policy::compile(
        &[PolicySource::new("policy.yaml", MAPPED)],
        &workload,
        &config,
        &PolicyMetrics::default(),
    )
    .unwrap()
    .policy;
    let client = |ip: &str| Client {
        tls: ClientTls::Plaintext,
        addr: Some(ip.parse().unwrap()),
    };
    for (ip, allowed) in [
        ("10.1.2.3", true),
        ("::ffff:10.1.2.3", true),
        ("10.9.0.1", false),
        ("192.168.1.1", true),
        ("192.168.7.1", false),
        ("11.0.0.1", false),
    ] {
        let decision = policy.evaluate_connection(8080, &client(ip));
        assert_eq!(
            matches!(decision, ConnectionDecision::Allow(_)),
            allowed,
            "{ip}"
        );
    }
    // The cluster networks of `cluster-unauthenticated`, on a port no
    // Server covers.
    for (ip, allowed) in [("172.16.0.9", true), ("10.1.2.3", false)] {
        let decision = policy.evaluate_connection(9999, &client(ip));
        assert_eq!(
            matches!(decision, ConnectionDecision::Allow(_)),
            allowed,
            "{ip}"
        );
    }
}
