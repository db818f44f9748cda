//! `explain` tells an operator why a request would be allowed or denied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_core::Identity;
use mesh_policy::{
    Client, ClientTls, Decision, ExplainQuery, PolicyConfig, PolicyMetrics, PolicySource,
    PolicyStore, Workload,
};
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
      needs an identity in [webapp.booksapp.serviceaccount.identity.linkerd.cluster.local, spiffe://cluster.local/ns/booksapp/sa/webapp, spiffe://cluster.local/ns/booksapp/sa/traffic, traffic.booksapp.serviceaccount.identity.linkerd.cluster.local] (MeshTLSAuthentication/webapp-authn): client is spiffe://cluster.local/ns/other/sa/x: failed
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
        "all-unauthenticated (the default server: no Server covers port 3000)"
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

/// A Server on 8080 that every client may call, limited by `web-limit`,
/// and one on 9090 without a limit.
const LIMITED: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: metrics}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 9090
  accessPolicy: all-unauthenticated
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-limit}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web}
  total: {requestsPerSecond: 100}
  identity: {requestsPerSecond: 10}
  overrides:
    - requestsPerSecond: 50
      clientRefs: [{kind: ServiceAccount, name: vip}]
    - requestsPerSecond: 20
      clientRefs: [{kind: ServiceAccount, name: batch}]
";

fn web() -> Workload {
    Workload::new("shop").with_label("app", "web")
}

fn from(identity: Option<&str>, port: u16) -> ExplainQuery {
    let mut query = ExplainQuery::new(port);
    query.identity = identity.map(|id| Identity::parse(id).unwrap());
    query.client_ip = Some("10.1.2.3".parse().unwrap());
    query
}

#[test]
fn an_explanation_names_the_rate_limits_the_client_would_meet_and_their_rates() {
    let policy = compile(LIMITED, &web(), &PolicyConfig::default());
    let batch = policy.explain(&from(Some("spiffe://cluster.local/ns/shop/sa/batch"), 8080));
    assert_eq!(
        batch.to_string(),
        "decision: allow by all-unauthenticated
workload: shop/default (labels app=web)
client:   mutual TLS as spiffe://cluster.local/ns/shop/sa/batch from 10.1.2.3
server:   web (Server in policy.yaml document 1, port 8080)
route:    default
authorizations: none
fallback: accessPolicy all-unauthenticated: allow every client
rate limit: HTTPLocalRateLimitPolicy web-limit: total 100 requests per second (every client together), then spec.overrides[1] 20 requests per second (shared by the clients it names)"
    );

    let limit = |identity: Option<&str>| {
        policy
            .explain(&from(identity, 8080))
            .rate_limit
            .unwrap()
            .split_once(", then ")
            .unwrap()
            .1
            .to_owned()
    };
    // The service account's DNS-style identity is the same client.
    assert_eq!(
        limit(Some(
            "vip.shop.serviceaccount.identity.linkerd.cluster.local"
        )),
        "spec.overrides[0] 50 requests per second (shared by the clients it names)"
    );
    assert_eq!(
        limit(Some("spiffe://cluster.local/ns/shop/sa/alice")),
        "identity 10 requests per second (this client's own)"
    );
    assert_eq!(
        limit(None),
        "identity 10 requests per second (shared by clients without an identity)"
    );
    // A Server without a limit says nothing of limits.
    let metrics = policy.explain(&from(None, 9090));
    assert_eq!(metrics.rate_limit, None);
    assert!(!metrics.to_string().contains("rate limit"), "{metrics}");
}

#[test]
fn a_client_no_limit_of_its_own_applies_to_is_told_so() {
    let only_override = LIMITED
        .replace("  total: {requestsPerSecond: 100}\n", "")
        .replace("  identity: {requestsPerSecond: 10}\n", "");
    let policy = compile(&only_override, &web(), &PolicyConfig::default());
    assert_eq!(
        policy
            .explain(&from(Some("spiffe://cluster.local/ns/shop/sa/vip"), 8080))
            .rate_limit
            .as_deref(),
        Some(
            "HTTPLocalRateLimitPolicy web-limit: spec.overrides[0] 50 requests per second (shared by the clients it names)"
        )
    );
    assert_eq!(
        policy.explain(&from(None, 8080)).rate_limit.as_deref(),
        Some("HTTPLocalRateLimitPolicy web-limit: no limit applies to this client")
    );
}

#[test]
fn a_request_that_would_be_refused_meets_no_rate_limit() {
    let denied = LIMITED.replacen(
        "accessPolicy: all-unauthenticated",
        "accessPolicy: all-authenticated",
        1,
    );
    let policy = compile(&denied, &web(), &PolicyConfig::default());
    let explanation = policy.explain(&from(None, 8080));
    assert_eq!(explanation.status, Some(403));
    assert_eq!(
        explanation.rate_limit.as_deref(),
        Some("HTTPLocalRateLimitPolicy web-limit: not checked: only allowed requests are limited")
    );
}

#[test]
fn a_request_its_rule_redirects_meets_no_rate_limit() {
    let redirecting = format!(
        "{LIMITED}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: site}}
spec:
  parentRefs: [{{group: policy.linkerd.io, kind: Server, name: web}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}}}
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
"
    );
    let policy = compile(&redirecting, &web(), &PolicyConfig::default());
    let mut moved = from(None, 8080);
    moved.uri = "/old/page".parse().unwrap();
    assert_eq!(
        policy.explain(&moved).rate_limit.as_deref(),
        Some(
            "HTTPLocalRateLimitPolicy web-limit: not checked: the rule redirects before any limit"
        )
    );
    let mut served = from(None, 8080);
    served.uri = "/page".parse().unwrap();
    let limits = policy.explain(&served).rate_limit.unwrap();
    assert!(limits.contains("total 100 requests per second"), "{limits}");
}

#[tokio::test(start_paused = true)]
async fn explaining_a_request_uses_no_share_of_its_rate_limit() {
    // A total of 2 alone.
    let policy = LIMITED
        .split_once("  identity:")
        .unwrap()
        .0
        .replace("requestsPerSecond: 100", "requestsPerSecond: 2");
    let store = PolicyStore::new(web(), PolicyConfig::default(), PolicyMetrics::default());
    store
        .reload(&[PolicySource::new("policy.yaml", &policy)])
        .unwrap();
    let query = from(None, 8080);
    for _ in 0..10 {
        assert!(store.load().explain(&query).rate_limit.is_some());
    }
    // The whole burst of two is still there.
    let client = Client {
        tls: ClientTls::Plaintext,
        addr: query.client_ip,
    };
    let req = http::Request::get("/").body(()).unwrap();
    let admitted = (0..3)
        .filter(|_| match store.load().evaluate(8080, &client, &req) {
            Decision::Allow(allowed) => allowed.check_rate_limit(&client).is_ok(),
            _ => false,
        })
        .count();
    assert_eq!(admitted, 2);
}

/// What an explanation says the layer answers is what it answers: for a
/// gRPC call, HTTP 200 with the refusal in `grpc-status` (7 denied, 5 no
/// route), not a 403 or a 404, which gRPC clients do not read.
#[tokio::test]
async fn a_grpc_call_is_explained_with_the_answer_the_layer_gives_it() {
    use mesh_core::{ConnectionInfo, body::BoxBody, error::GRPC_STATUS};
    use mesh_policy::AuthorizeLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let store = PolicyStore::new(
        books_workload(),
        PolicyConfig::default(),
        PolicyMetrics::default(),
    );
    store
        .reload(&[PolicySource::new("books.yaml", BOOKS)])
        .unwrap();
    let app = service_fn(|_req: http::Request<BoxBody>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(BoxBody::default()))
    });
    let svc = AuthorizeLayer::new(store.clone()).layer(app);
    let other = "spiffe://cluster.local/ns/other/sa/x";
    for (method, path, content_type, want) in [
        // Denied: a route the client may not use.
        ("GET", "/authors/1", "application/grpc", (200, Some(7))),
        (
            "GET",
            "/authors/1",
            "application/grpc+proto",
            (200, Some(7)),
        ),
        ("GET", "/authors/1", "application/json", (403, None)),
        // No route: a POST to /authors needs a header it lacks.
        ("POST", "/authors", "application/grpc", (200, Some(5))),
        ("POST", "/authors", "text/plain", (404, None)),
    ] {
        let mut query = ExplainQuery::new(8080);
        query.identity = Some(Identity::parse(other).unwrap());
        query.client_ip = Some("10.1.2.3".parse().unwrap());
        query.method = method.parse().unwrap();
        query.uri = path.parse().unwrap();
        query
            .headers
            .insert("content-type", content_type.parse().unwrap());
        let explanation = store.load().explain(&query);
        let explained = (explanation.status.unwrap(), explanation.grpc_status);
        assert_eq!(
            explained, want,
            "{method} {path} {content_type}: {explanation}"
        );

        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(BoxBody::default())
            .unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "10.0.0.1:8080".parse().unwrap(),
            remote_addr: "10.1.2.3:40000".parse().unwrap(),
            tls: mesh_core::Tls::Mutual {
                peer: Identity::parse(other).unwrap(),
            },
        });
        let res = svc.clone().oneshot(req).await.unwrap();
        let answered = (
            res.status().as_u16(),
            res.headers()
                .get(GRPC_STATUS)
                .map(|v| v.to_str().unwrap().parse::<u16>().unwrap()),
        );
        assert_eq!(answered, explained, "{method} {path} {content_type}");
    }

    let mut query = ExplainQuery::new(8080);
    query.client_ip = Some("10.1.2.3".parse().unwrap());
    query.uri = "/authors/1".parse().unwrap();
    query
        .headers
        .insert("content-type", "application/grpc".parse().unwrap());
    let text = store.load().explain(&query).to_string();
    assert!(
        text.starts_with("decision: deny (fallback deny) (gRPC status 7, HTTP 200)\n"),
        "{text}"
    );
}

/// An identity written in Linkerd's DNS-style form also admits its SPIFFE
/// form; the explanation lists what the requirement admits, so it names
/// that form too, as it does for a service account reference.
#[test]
fn an_identity_written_in_linkerds_form_is_explained_with_its_spiffe_form() {
    let policy = compile(BOOKS, &books_workload(), &PolicyConfig::default());
    let mut query = ExplainQuery::new(8080);
    query.identity = Some(Identity::parse("spiffe://cluster.local/ns/booksapp/sa/webapp").unwrap());
    query.client_ip = Some("10.1.2.3".parse().unwrap());
    query.uri = "/authors/1".parse().unwrap();
    let explanation = policy.explain(&query);
    assert_eq!(explanation.decision, "allow by authors-get-policy");
    assert_eq!(
        explanation.authorizations[0].requirements,
        [
            "needs an identity in [webapp.booksapp.serviceaccount.identity.linkerd.cluster.local, spiffe://cluster.local/ns/booksapp/sa/webapp, spiffe://cluster.local/ns/booksapp/sa/traffic, traffic.booksapp.serviceaccount.identity.linkerd.cluster.local] (MeshTLSAuthentication/webapp-authn): client is spiffe://cluster.local/ns/booksapp/sa/webapp: ok"
        ]
    );
}

/// An opaque port is authorized per connection (`AuthorizeOpaqueLayer`),
/// by the Server's own authorizations: no route, no probe path, no HTTP
/// answer. Its explanation is that decision, not a request's.
#[test]
fn an_opaque_port_is_explained_as_the_connection_is_decided() {
    const DB: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: db}
spec:
  podSelector: {}
  port: 5432
  proxyProtocol: opaque
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: db-clients}
spec:
  server: {name: db}
  client:
    unauthenticated: true
    networks: [{cidr: 10.0.0.0/8}]
";
    let policy = compile(DB, &web(), &PolicyConfig::default());
    for (ip, path, allowed) in [
        ("192.0.2.1", "/", false),
        // A probe path opens an HTTP port's default route, not a
        // connection.
        ("192.0.2.1", "/live", false),
        ("10.1.2.3", "/", true),
    ] {
        let mut query = ExplainQuery::new(5432);
        query.client_ip = Some(ip.parse().unwrap());
        query.uri = path.parse().unwrap();
        let explanation = policy.explain(&query);
        let client = Client {
            tls: ClientTls::Plaintext,
            addr: query.client_ip,
        };
        assert_eq!(
            policy.evaluate_connection(5432, &client).is_allowed(),
            allowed,
            "{ip}"
        );
        assert!(explanation.connection, "{explanation}");
        assert_eq!(explanation.status, None, "{explanation}");
        assert_eq!(explanation.route, None, "{explanation}");
        assert_eq!(
            explanation.decision.starts_with("allow by db-clients"),
            allowed,
            "{ip} {path}: {explanation}"
        );
        assert_eq!(
            explanation.decision.starts_with("deny"),
            !allowed,
            "{ip} {path}: {explanation}"
        );
        let tried: Vec<_> = explanation
            .authorizations
            .iter()
            .map(|a| (a.name.as_str(), a.matched))
            .collect();
        assert_eq!(tried, [("db-clients", allowed)], "{explanation}");
    }
    let mut query = ExplainQuery::new(5432);
    query.client_ip = Some("192.0.2.1".parse().unwrap());
    assert_eq!(
        policy.explain(&query).to_string(),
        "decision: deny (fallback deny): the connection is closed
workload: shop/default (labels app=web)
client:   plaintext from 192.0.2.1
server:   db (Server in policy.yaml document 1, port 5432, opaque)
route:    none: an opaque connection is decided whole, by the Server's own authorizations
authorizations, in order:
  - db-clients (serverauthorization): no match
      needs an address in [10.0.0.0/8] (client.networks): client address 192.0.2.1: failed
fallback: accessPolicy deny: deny"
    );
}
