//! `inbound_http_local_ratelimit_total`, exactly as it is exposed: its
//! help, its type, and each series with the labels linkerd2-proxy gives
//! its family of that name (`app/inbound/src/metrics/authz.rs`): the
//! Server's group, kind, name and port, the policy's group, kind and name,
//! the scope, and `tls`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::convert::Infallible;

use http::{Request, Response};
use mesh_core::{ConnectionInfo, Identity, Tls, conn::NoTlsReason};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::ratelimit::limited;
use tower::{Layer, Service, ServiceExt, service_fn, util::BoxCloneService};

type Svc = BoxCloneService<Request<()>, Response<String>, Infallible>;

fn serve(policy: &str, registry: &mut Registry) -> Svc {
    serve_on(
        Workload::new("shop").with_label("app", "web"),
        policy,
        registry,
    )
}

fn serve_on(workload: Workload, policy: &str, registry: &mut Registry) -> Svc {
    let store = PolicyStore::new(
        workload,
        PolicyConfig::default(),
        PolicyMetrics::register(registry),
    );
    store
        .reload(&[PolicySource::new("policy.yaml", policy)])
        .unwrap();
    BoxCloneService::new(
        AuthorizeLayer::new(store).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        })),
    )
}

async fn send(svc: &mut Svc, tls: Tls, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let mut req = Request::get("/").body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "10.0.0.1:8080".parse().unwrap(),
            remote_addr: "10.0.0.2:40000".parse().unwrap(),
            tls: tls.clone(),
        });
        let rsp = svc.ready().await.unwrap().call(req).await.unwrap();
        statuses.push(rsp.status().as_u16());
    }
    statuses
}

/// The family's lines of the exposition: its help and type, then its
/// series, sorted (a family's series come in no fixed order).
fn family(registry: &Registry, name: &str) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let mut head = Vec::new();
    let mut series = Vec::new();
    for line in text.lines() {
        if line.starts_with(&format!("# HELP {name} "))
            || line.starts_with(&format!("# TYPE {name} "))
        {
            head.push(line);
        } else if line.starts_with(&format!("{name}_total{{")) {
            series.push(line);
        }
    }
    series.sort_unstable();
    head.extend(series);
    head.join("\n")
}

#[tokio::test(start_paused = true)]
async fn refusals_are_exposed_with_linkerds_name_and_labels() {
    let mut registry = Registry::default();
    let mut svc = serve(
        &limited("  total: {requestsPerSecond: 4}\n  identity: {requestsPerSecond: 1}\n"),
        &mut registry,
    );
    let alice = Tls::Mutual {
        peer: Identity::parse("spiffe://cluster.local/ns/shop/sa/alice").unwrap(),
    };
    // Alice's own limit refuses her second; a plaintext client's limit,
    // its second; the total's 4 are then used up, and refuse the rest.
    assert_eq!(send(&mut svc, alice.clone(), 2).await, [200, 429]);
    let plain = Tls::Plaintext(NoTlsReason::NotProvidedByRemote);
    assert_eq!(send(&mut svc, plain.clone(), 2).await, [200, 429]);
    assert_eq!(send(&mut svc, plain, 1).await, [429]);
    assert_eq!(send(&mut svc, alice, 1).await, [429]);

    let labels = |scope: &str, tls: &str| {
        format!(
            "srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"web\",srv_port=\"8080\",\
             ratelimit_group=\"policy.linkerd.io\",ratelimit_kind=\"HTTPLocalRateLimitPolicy\",\
             ratelimit_name=\"web-limit\",ratelimit_scope=\"{scope}\",tls=\"{tls}\""
        )
    };
    let expected = [
        "# HELP inbound_http_local_ratelimit The total number of inbound HTTP requests that were rate-limited.".to_owned(),
        "# TYPE inbound_http_local_ratelimit counter".to_owned(),
        format!("inbound_http_local_ratelimit_total{{{}}} 1", labels("identity", "no_identity")),
        format!("inbound_http_local_ratelimit_total{{{}}} 1", labels("identity", "true")),
        format!("inbound_http_local_ratelimit_total{{{}}} 1", labels("total", "no_identity")),
        format!("inbound_http_local_ratelimit_total{{{}}} 1", labels("total", "true")),
    ]
    .join("\n");
    assert_eq!(family(&registry, "inbound_http_local_ratelimit"), expected);
}

/// linkerd2-proxy's `srv_port` is the port the request came to, a number
/// even where the Server names its port.
#[tokio::test(start_paused = true)]
async fn a_server_that_names_its_port_is_labelled_with_the_ports_number() {
    let mut registry = Registry::default();
    let policy = limited("  total: {requestsPerSecond: 1}\n").replace("port: 8080", "port: http");
    let mut svc = serve_on(
        Workload::new("shop")
            .with_label("app", "web")
            .with_port("http", 8080),
        &policy,
        &mut registry,
    );
    let plain = Tls::Plaintext(NoTlsReason::NotProvidedByRemote);
    assert_eq!(send(&mut svc, plain, 2).await, [200, 429]);
    let series = family(&registry, "inbound_http_local_ratelimit");
    let line = "inbound_http_local_ratelimit_total{srv_group=\"policy.linkerd.io\",srv_kind=\"server\",\
                srv_name=\"web\",srv_port=\"8080\",ratelimit_group=\"policy.linkerd.io\",\
                ratelimit_kind=\"HTTPLocalRateLimitPolicy\",ratelimit_name=\"web-limit\",\
                ratelimit_scope=\"total\",tls=\"no_identity\"} 1";
    assert!(series.lines().any(|l| l == line), "{series}");
}
