//! `explain` tells an operator why a request would be allowed or denied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mesh_core::Identity;
use mesh_policy::{ExplainQuery, PolicyConfig};
use support::*;

#[test]
fn a_denial_lists_the_server_route_and_every_authorization_tried() {
    let policy = compile(BOOKS, &books_workload(), &PolicyConfig::default());
    let mut query = ExplainQuery::new(8080);
    query.identity = Some(Identity::parse("spiffe://cluster.local/ns/other/sa/x").unwrap());
    query.client_ip = Some("10.1.2.3".parse().unwrap());
    query.uri = "/authors/1".parse().unwrap();
    let explanation = policy.explain(&query);
    assert_eq!(explanation.status, Some(403));
    assert_eq!(explanation.route.as_deref(), Some("authors-get"));
    let tried: Vec<_> = explanation
        .authorizations
        .iter()
        .map(|a| (a.name.as_str(), a.matched))
        .collect();
    assert_eq!(
        tried,
        [("authors-get-policy", false), ("ns-monitor", false)]
    );
    assert_eq!(
        explanation.to_string(),
        "decision: deny (fallback deny) (HTTP 403)
workload: booksapp/books (labels app=books,tier=backend)
client:   mutual TLS as spiffe://cluster.local/ns/other/sa/x from 10.1.2.3
server:   books-http (Server in policy.yaml document 1, port http, HTTP/1)
route:    authors-get
authorizations, in order:
  - authors-get-policy (authorizationpolicy): no match
      needs an identity in [webapp.booksapp.serviceaccount.identity.linkerd.cluster.local, spiffe://cluster.local/ns/booksapp/sa/traffic, traffic.booksapp.serviceaccount.identity.linkerd.cluster.local] (MeshTLSAuthentication/webapp-authn): client is spiffe://cluster.local/ns/other/sa/x: failed
  - ns-monitor (authorizationpolicy): no match
      needs an identity in [spiffe://cluster.local/ns/booksapp/sa/monitor, monitor.booksapp.serviceaccount.identity.linkerd.cluster.local] (ServiceAccount/monitor): client is spiffe://cluster.local/ns/other/sa/x: failed
fallback: accessPolicy deny: deny"
    );
}

#[test]
fn an_allowed_request_and_a_missing_route_are_explained() {
    let policy = compile(BOOKS, &books_workload(), &PolicyConfig::default());
    let mut query = ExplainQuery::new(8080);
    query.method = http::Method::POST;
    query.uri = "/authors".parse().unwrap();
    query.identity = Some(Identity::parse("spiffe://cluster.local/ns/booksapp/sa/admin").unwrap());
    query.client_ip = Some("10.1.2.3".parse().unwrap());
    query.headers.insert("x-role", "admin".parse().unwrap());
    let explanation = policy.explain(&query);
    assert_eq!(explanation.decision, "allow by authors-modify-policy");
    assert!(explanation.authorizations[0].matched);
    assert_eq!(explanation.authorizations[0].requirements.len(), 2);

    query.headers.clear();
    let explanation = policy.explain(&query);
    assert_eq!(explanation.status, Some(404));
    assert!(
        explanation.to_string().contains("route:    none matched"),
        "{explanation}"
    );

    let explanation = policy.explain(&ExplainQuery::new(3000));
    assert_eq!(
        explanation.server,
        "default:all-unauthenticated (no Server covers port 3000)"
    );
    assert_eq!(
        explanation.fallback,
        "default policy all-unauthenticated: allow every client"
    );
}

#[test]
fn an_ipv4_mapped_client_address_is_explained_as_the_request_would_be_decided() {
    // Logs name a dual-stack listener's IPv4 clients `::ffff:a.b.c.d`;
    // pasted into a query, they must get the decision such a request gets.
    let policy = compile(BOOKS, &books_workload(), &PolicyConfig::default());
    let mut query = ExplainQuery::new(9100);
    query.client_ip = Some("::ffff:10.1.2.3".parse().unwrap());
    let explanation = policy.explain(&query);
    assert_eq!(explanation.status, None, "{explanation}");
    assert!(
        explanation.to_string().contains("from 10.1.2.3"),
        "{explanation}"
    );
}
