//! `HTTPLocalRateLimitPolicy` enforced by the HTTP layer, on tokio's paused
//! clock: the total limit, each identity's, overrides, gRPC answers,
//! metrics and reloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode};
use mesh_core::{
    ConnectionInfo, Identity, Tls,
    conn::NoTlsReason,
    error::{GRPC_STATUS, MESH_ERROR},
};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::ratelimit::{SERVER, limited};
use tokio::time::advance;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};

const VIP: &str = "spiffe://cluster.local/ns/shop/sa/vip";
const ALICE: &str = "spiffe://cluster.local/ns/shop/sa/alice";
const BOB: &str = "bob.shop.serviceaccount.identity.linkerd.cluster.local";

type Svc = BoxCloneService<Request<()>, Response<String>, Infallible>;

struct Harness {
    store: PolicyStore,
    registry: Registry,
    svc: Svc,
    reached: Arc<AtomicUsize>,
}

impl Harness {
    fn new(policy: &str) -> Self {
        let mut registry = Registry::default();
        let store = PolicyStore::new(
            Workload::new("shop").with_label("app", "web"),
            PolicyConfig::default(),
            PolicyMetrics::register(&mut registry),
        );
        store
            .reload(&[PolicySource::new("policy.yaml", policy)])
            .unwrap();
        let reached = Arc::new(AtomicUsize::new(0));
        let r = reached.clone();
        let svc = ServiceBuilder::new()
            .layer(AuthorizeLayer::new(store.clone()))
            .service(service_fn(move |_req: Request<()>| {
                r.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, Infallible>(Response::new("ok".to_owned())) }
            }));
        Self {
            store,
            registry,
            svc: BoxCloneService::new(svc),
            reached,
        }
    }

    async fn send(&mut self, req: Request<()>) -> Response<String> {
        self.svc.ready().await.unwrap().call(req).await.unwrap()
    }

    /// Sends `n` requests from `tls` at once; the statuses in order.
    async fn burst(&mut self, tls: &Tls, n: usize) -> Vec<u16> {
        let mut statuses = Vec::new();
        for _ in 0..n {
            statuses.push(self.send(get(tls)).await.status().as_u16());
        }
        statuses
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }
}

fn get(tls: &Tls) -> Request<()> {
    let mut req = Request::get("/").body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "10.0.0.1:8080".parse().unwrap(),
        remote_addr: "10.0.0.2:40000".parse().unwrap(),
        tls: tls.clone(),
    });
    req
}

fn plain() -> Tls {
    Tls::Plaintext(NoTlsReason::NotProvidedByRemote)
}

fn mutual(id: &str) -> Tls {
    Tls::Mutual {
        peer: Identity::parse(id).unwrap(),
    }
}

/// `ok` 200s, then `limited` 429s.
fn oks_then_429s(ok: usize, limited: usize) -> Vec<u16> {
    let mut v = vec![200; ok];
    v.extend(vec![429; limited]);
    v
}

#[tokio::test(start_paused = true)]
async fn a_total_limit_admits_its_rate_in_a_second_then_answers_429_until_it_refills() {
    let mut h = Harness::new(&limited("  total: {requestsPerSecond: 5}\n"));
    assert_eq!(h.burst(&plain(), 7).await, oks_then_429s(5, 2));
    assert_eq!(
        h.reached.load(Ordering::Relaxed),
        5,
        "a 429 never reaches the service"
    );

    let rsp = h.send(get(&plain())).await;
    assert_eq!(rsp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rsp.headers()[MESH_ERROR], "total rate limit exceeded: 5rps");
    assert!(rsp.headers().get(GRPC_STATUS).is_none());

    // One request's share of a second later, one more fits.
    advance(Duration::from_millis(199)).await;
    assert_eq!(h.burst(&plain(), 1).await, [429]);
    advance(Duration::from_millis(1)).await;
    assert_eq!(h.burst(&plain(), 2).await, [200, 429]);
    // A second later, a whole burst again, from any client.
    advance(Duration::from_secs(1)).await;
    assert_eq!(h.burst(&mutual(ALICE), 6).await, oks_then_429s(5, 1));
}

#[tokio::test(start_paused = true)]
async fn each_identity_has_its_own_limit_and_unauthenticated_clients_share_one() {
    let mut h = Harness::new(&limited(
        "  total: {requestsPerSecond: 100}\n  identity: {requestsPerSecond: 2}\n",
    ));
    assert_eq!(h.burst(&mutual(ALICE), 3).await, oks_then_429s(2, 1));
    // Alice's limit is hers: Bob, in Linkerd's DNS-style form, has his own.
    assert_eq!(h.burst(&mutual(BOB), 3).await, oks_then_429s(2, 1));
    // Plaintext and TLS clients without a certificate share one limit.
    assert_eq!(h.burst(&plain(), 1).await, [200]);
    assert_eq!(h.burst(&Tls::NoClientCert, 2).await, [200, 429]);

    advance(Duration::from_millis(500)).await;
    assert_eq!(h.burst(&mutual(ALICE), 2).await, [200, 429]);
}

#[tokio::test(start_paused = true)]
async fn an_override_gives_the_service_accounts_it_names_their_own_rate() {
    let mut h = Harness::new(&limited(
        "  identity: {requestsPerSecond: 2}
  overrides:
    - requestsPerSecond: 5
      clientRefs: [{kind: ServiceAccount, name: vip}]
",
    ));
    assert_eq!(h.burst(&mutual(VIP), 7).await, oks_then_429s(5, 2));
    // Everyone else keeps the identity limit.
    assert_eq!(h.burst(&mutual(ALICE), 3).await, oks_then_429s(2, 1));
    // The service account in Linkerd's DNS-style form is the same client.
    let vip_dns = "vip.shop.serviceaccount.identity.linkerd.cluster.local";
    assert_eq!(h.burst(&mutual(vip_dns), 1).await, [429]);
}

/// Linkerd's CRD: a `clientRefs` entry's `namespace`, "when unspecified
/// (or empty string)", is the policy's own.
#[tokio::test(start_paused = true)]
async fn an_override_client_with_an_empty_namespace_is_in_the_policys_namespace() {
    let mut h = Harness::new(&limited(
        "  identity: {requestsPerSecond: 2}
  overrides:
    - requestsPerSecond: 5
      clientRefs: [{kind: ServiceAccount, name: vip, namespace: ''}]
",
    ));
    assert_eq!(h.burst(&mutual(VIP), 7).await, oks_then_429s(5, 2));
    assert_eq!(h.burst(&mutual(ALICE), 3).await, oks_then_429s(2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_client_named_by_two_overrides_takes_the_last_and_shares_it() {
    let mut h = Harness::new(&limited(
        "  overrides:
    - requestsPerSecond: 5
      clientRefs: [{kind: ServiceAccount, name: vip}]
    - requestsPerSecond: 3
      clientRefs: [{kind: ServiceAccount, name: vip}, {kind: ServiceAccount, name: alice}]
",
    ));
    // The last entry naming vip applies, as in linkerd2-proxy; its limit
    // is one, shared by vip and alice.
    assert_eq!(h.burst(&mutual(VIP), 2).await, [200, 200]);
    assert_eq!(h.burst(&mutual(ALICE), 2).await, [200, 429]);
    // No identity limit: other clients are not limited at all.
    assert_eq!(h.burst(&mutual(BOB), 20).await, vec![200; 20]);
}

#[tokio::test(start_paused = true)]
async fn the_total_limit_holds_whatever_each_clients_limit_leaves() {
    let mut h = Harness::new(&limited(
        "  total: {requestsPerSecond: 3}\n  identity: {requestsPerSecond: 2}\n",
    ));
    assert_eq!(h.burst(&mutual(ALICE), 2).await, [200, 200]);
    // Bob is within his own limit, but the Server's total is used up.
    assert_eq!(h.burst(&mutual(BOB), 2).await, [200, 429]);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_request_over_the_limit_gets_resource_exhausted() {
    let mut h = Harness::new(&limited("  total: {requestsPerSecond: 1}\n"));
    let grpc = || {
        let mut req = get(&plain());
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        req
    };
    assert_eq!(h.send(grpc()).await.status(), StatusCode::OK);
    let rsp = h.send(grpc()).await;
    assert_eq!(
        rsp.status(),
        StatusCode::OK,
        "gRPC errors are trailers-only 200s"
    );
    assert_eq!(rsp.headers()[GRPC_STATUS], "8");
    assert_eq!(rsp.headers()[MESH_ERROR], "total rate limit exceeded: 1rps");
    assert_eq!(h.reached.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn refusals_are_counted_by_server_policy_scope_and_tls() {
    let mut h = Harness::new(&limited(
        "  total: {requestsPerSecond: 10}\n  identity: {requestsPerSecond: 1}\n",
    ));
    // A request refused by a client's limit has used its share of the
    // total, as with linkerd2-proxy's limiters: Alice's 3 and the plain
    // client's 2 use 5 of the 10, Bob's first 5 the rest, and his last 4
    // meet an empty total.
    assert_eq!(h.burst(&mutual(ALICE), 3).await, oks_then_429s(1, 2));
    assert_eq!(h.burst(&plain(), 2).await, oks_then_429s(1, 1));
    assert_eq!(h.burst(&mutual(BOB), 9).await, oks_then_429s(1, 8));
    let text = h.metrics();
    let series = |scope: &str, tls: &str, n: usize| {
        format!(
            r#"inbound_http_local_ratelimit_total{{srv_group="policy.linkerd.io",srv_kind="server",srv_name="web",srv_port="8080",ratelimit_group="policy.linkerd.io",ratelimit_kind="HTTPLocalRateLimitPolicy",ratelimit_name="web-limit",ratelimit_scope="{scope}",tls="{tls}"}} {n}"#
        )
    };
    for line in [
        series("identity", "true", 6),
        series("identity", "no_identity", 1),
        series("total", "true", 4),
        series("total", "no_identity", 0),
        // Allowed requests are counted as allowed whether or not a limit
        // then refuses them, as in linkerd2-proxy.
        r#"inbound_http_authz_allow_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="web",srv_port="8080",route_group="",route_kind="default",route_name="default",authz_group="",authz_kind="default",authz_name="all-unauthenticated",tls="true"} 12"#.to_owned(),
    ] {
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_the_limit_is_in_force_for_the_next_request() {
    let mut h = Harness::new(&limited("  total: {requestsPerSecond: 2}\n"));
    assert_eq!(h.burst(&plain(), 3).await, oks_then_429s(2, 1));

    // A changed limit starts full, at its new rate; limits a reload
    // leaves alone keep their state (`ratelimit_reload.rs`).
    let wider = limited("  total: {requestsPerSecond: 4}\n");
    h.store
        .reload(&[PolicySource::new("policy.yaml", &wider)])
        .unwrap();
    assert_eq!(h.burst(&plain(), 5).await, oks_then_429s(4, 1));

    // A bad reload keeps the last good policy, and its state.
    let bad = limited("  total: {requestsPerSecond: 0}\n");
    assert!(
        h.store
            .reload(&[PolicySource::new("policy.yaml", &bad)])
            .is_err()
    );
    assert_eq!(h.burst(&plain(), 1).await, [429]);
    advance(Duration::from_secs(1)).await;
    assert_eq!(h.burst(&plain(), 5).await, oks_then_429s(4, 1));

    // Without the policy, nothing is limited.
    h.store
        .reload(&[PolicySource::new("policy.yaml", SERVER)])
        .unwrap();
    assert_eq!(h.burst(&plain(), 50).await, vec![200; 50]);
}

#[tokio::test(start_paused = true)]
async fn a_denied_request_gets_403_and_uses_no_share_of_the_limit() {
    let policy = limited("  total: {requestsPerSecond: 1}\n").replace(
        "accessPolicy: all-unauthenticated",
        "accessPolicy: all-authenticated",
    );
    let mut h = Harness::new(&policy);
    assert_eq!(h.burst(&plain(), 3).await, [403, 403, 403]);
    assert_eq!(h.burst(&mutual(ALICE), 2).await, [200, 429]);
}
