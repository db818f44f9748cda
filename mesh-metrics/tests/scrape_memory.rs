//! What a parsed scrape holds, against the size of the text it was read
//! from. dhat counts every allocation of this test binary, which is why
//! this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    labels::Authorized,
    route::RouteId,
};
use mesh_metrics::{
    HttpMetrics, MetricsLayer,
    query::{Delta, Scrape},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The exposition of an inbound sidecar that served 12 routes of 2
/// servers to 8 clients (each with its own identity), some of the calls
/// failing: every family the layer writes, its latency histograms
/// included, with Linkerd's labels.
async fn exposition() -> String {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|req: Request<()>| async move {
        let mut res = Response::new(Full::<Bytes>::from("ok"));
        if req.uri().path().ends_with("/fail") {
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, Infallible>(res)
    }));
    for client in 0..8 {
        for route in 0..12 {
            for path in ["/ok", "/fail"] {
                let mut req = Request::get(path).body(()).unwrap();
                req.extensions_mut().insert(ConnectionInfo {
                    local_addr: "10.42.0.9:4143".parse().unwrap(),
                    remote_addr: format!("10.42.1.{client}:5{route:04}").parse().unwrap(),
                    tls: Tls::Mutual {
                        peer: format!("spiffe://cluster.local/ns/emojivoto/sa/client-{client}")
                            .parse()
                            .unwrap(),
                    },
                });
                req.extensions_mut().insert(Authorized {
                    server: Arc::from(if route % 2 == 0 {
                        "emoji-grpc"
                    } else {
                        "emoji-http"
                    }),
                    server_kind: &mesh_core::labels::ResourceKind {
                        group: "policy.linkerd.io",
                        kind: "server",
                    },
                    server_port: Some(8080),
                    route: Arc::from(format!("route-{route}")),
                    route_kind: Some(&mesh_core::labels::ResourceKind {
                        group: "policy.linkerd.io",
                        kind: "HTTPRoute",
                    }),
                    authz: Arc::from("emojivoto-clients"),
                    authz_kind: &mesh_core::labels::ResourceKind {
                        group: "policy.linkerd.io",
                        kind: "authorizationpolicy",
                    },
                    audit: false,
                });
                req.extensions_mut()
                    .insert(RouteId::new(format!("route-{route}")));
                let res = svc.clone().oneshot(req).await.unwrap();
                res.into_body().collect().await.unwrap();
            }
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    text
}

#[tokio::test]
async fn a_parsed_scrape_and_its_delta_hold_less_than_their_text() {
    let text = exposition().await;
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let scrape = Scrape::parse(&text).unwrap();
    let parsed = dhat::HeapStats::get();
    let delta = Delta::between(&Scrape::default(), &scrape, Duration::from_secs(10));
    let both = dhat::HeapStats::get();
    let per_byte = |bytes: usize| (bytes - before.curr_bytes) as f64 / text.len() as f64;
    let (held, peak, with_delta) = (
        per_byte(parsed.curr_bytes),
        per_byte(parsed.max_bytes),
        per_byte(both.curr_bytes),
    );
    let samples = scrape.samples().len();
    let blocks = (parsed.total_blocks - before.total_blocks) as f64 / samples as f64;
    eprintln!(
        "{} bytes of text, {samples} samples: the scrape holds {held:.2} B a byte \
         ({peak:.2} at most while parsing), with its delta {with_delta:.2}; \
         {blocks:.2} allocations a sample",
        text.len(),
    );
    assert_eq!(delta.samples().len(), samples);
    drop(delta);

    // Two scrapes of one process, in the same order and (as after a
    // family's map grew) in another: matching their series once took 1.65
    // B a byte at its peak, and 4 allocations a sample.
    // (`# EOF` stays last: it ends an OpenMetrics body.)
    let reversed: String = text
        .lines()
        .rev()
        .filter(|l| *l != "# EOF")
        .chain(["# EOF"])
        .flat_map(|l| [l, "\n"])
        .collect();
    for later in [text.as_str(), &reversed] {
        let later = Scrape::parse(later).unwrap();
        let two = dhat::HeapStats::get();
        let delta = Delta::between(&scrape, &later, Duration::from_secs(10));
        let after = dhat::HeapStats::get();
        let peak = after.max_bytes.saturating_sub(two.curr_bytes) as f64 / text.len() as f64;
        let blocks = (after.total_blocks - two.total_blocks) as f64 / samples as f64;
        eprintln!(
            "a delta of two scrapes: {peak:.2} B a byte at most, {blocks:.2} allocations a sample"
        );
        assert_eq!(delta.samples().len(), samples);
        assert!(delta.samples().iter().all(|s| s.value == 0.0));
        assert!(peak < 0.5, "{peak}");
        assert!(blocks < 0.1, "{blocks}");
    }
}
