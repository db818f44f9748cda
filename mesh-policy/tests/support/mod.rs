//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

// One capture for every crate's tests: mesh-core's (its docs say why
// it is one global subscriber).
#[path = "../../../mesh-core/tests/support/log_capture.rs"]
pub mod log_capture;
pub mod ratelimit;

use std::net::IpAddr;

use http::{Method, Request};
use mesh_core::Identity;
use mesh_core::resource::ResourceError;
use mesh_policy::{
    Client, ClientTls, Decision, Policy, PolicyConfig, PolicyMetrics, PolicySource, Workload,
};

pub const GUIDE: &str = include_str!("../fixtures/guide-policy.yaml");
pub const BOOKS: &str = include_str!("../fixtures/books.yaml");

/// The `books` workload the books fixture is written for.
pub fn books_workload() -> Workload {
    Workload::new("booksapp")
        .with_label("app", "books")
        .with_label("tier", "backend")
        .with_service_account("books")
        .with_port("http", 8080)
        .with_port("grpc", 9090)
        .with_port("admin", 9990)
}

/// The `web` Server on port 80 in namespace `ns`, and its `api` HTTPRoute:
/// the targets the reference tests point at.
pub const WEB_SERVER_AND_API_ROUTE: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web, namespace: ns}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: ns}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web}]
  rules: [{matches: [{path: {type: PathPrefix, value: /api}}]}]
";

/// A NetworkAuthentication `all` in namespace `ns` that admits every address.
pub const ALL_NETWORKS: &str = "apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: all, namespace: ns}
spec: {networks: [{cidr: 0.0.0.0/0}]}
";

/// The `web` workload in namespace `ns` that [`WEB_SERVER_AND_API_ROUTE`]
/// selects.
pub fn web_workload() -> Workload {
    Workload::new("ns").with_label("app", "web")
}

/// Compiles `text` for [`web_workload`] with the default configuration and
/// keeps the error, for tests of what is refused.
pub fn try_compile_web(text: &str) -> Result<(), ResourceError> {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        &web_workload(),
        &PolicyConfig::default(),
        &PolicyMetrics::default(),
    )
    .map(|_| ())
}

pub fn compile(text: &str, workload: &Workload, config: &PolicyConfig) -> Policy {
    Policy::compile(
        &[PolicySource::new("policy.yaml", text)],
        workload,
        config,
        &PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .policy
}

/// How the client authenticated, in a test table.
#[derive(Clone, Copy, Debug)]
pub enum T {
    Plain,
    NoCert,
    Id(&'static str),
}

/// What a test expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// server, route, authz
    Allow(&'static str, &'static str, &'static str),
    /// server, route, authz, allowed by audit mode
    Audit(&'static str, &'static str, &'static str),
    Deny(&'static str),
    NotFound(&'static str),
}

pub fn decide(
    policy: &Policy,
    port: u16,
    tls: T,
    ip: Option<&str>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Want {
    let id = match tls {
        T::Id(id) => Some(Identity::parse(id).unwrap()),
        _ => None,
    };
    let client = Client {
        tls: match (tls, &id) {
            (T::Plain, _) => ClientTls::Plaintext,
            (T::NoCert, _) => ClientTls::NoClientCert,
            (T::Id(_), Some(id)) => ClientTls::Mutual(id),
            (T::Id(_), None) => unreachable!(),
        },
        addr: ip.map(|ip| ip.parse::<IpAddr>().unwrap()),
    };
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).unwrap();
    as_want(&policy.evaluate(port, &client, &req))
}

pub fn as_want(decision: &Decision<'_>) -> Want {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    match decision {
        Decision::Allow(a) if a.is_audit() => {
            Want::Audit(leak(a.server()), leak(a.route()), leak(a.authz()))
        }
        Decision::Allow(a) => Want::Allow(leak(a.server()), leak(a.route()), leak(a.authz())),
        Decision::Deny(d) => Want::Deny(leak(d.server())),
        Decision::NotFound(n) => Want::NotFound(leak(n.server())),
    }
}
