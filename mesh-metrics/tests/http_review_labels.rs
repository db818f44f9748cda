//! Each request through `MetricsLayer` lands in its own label set's series:
//! values from other connections (other allocations), values that differ
//! in one byte only, services with TLS of their own, targets past the
//! series limit; and every label value is escaped in the exposition.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, num::NonZeroUsize, sync::Arc};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    labels::{Authorized, DstService},
    route::RouteId,
};
use mesh_metrics::{HttpMetrics, MetricsConfig, MetricsLayer};
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt, service_fn};

use crate::http_review_counting::{scrape, total};

fn app() -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(Full::from("ok"))) })
}

/// An inbound request as a new connection carries it: every value a fresh
/// allocation.
fn inbound(peer: &str, route: &str, authz: &str) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: "127.0.0.1:50000".parse().unwrap(),
        tls: Tls::Mutual {
            peer: peer.parse().unwrap(),
        },
    });
    req.extensions_mut().insert(Authorized {
        server: Arc::from("srv"),
        server_kind: &mesh_core::labels::ResourceKind::DEFAULT,
        server_port: None,
        route: Arc::from(route),
        route_kind: None,
        authz: Arc::from(authz),
        authz_kind: &mesh_core::labels::ResourceKind::DEFAULT,
        audit: false,
    });
    req.extensions_mut().insert(RouteId::new(route));
    req
}

async fn call<S>(svc: &S, req: Request<()>)
where
    S: tower::Service<
            Request<()>,
            Response = Response<mesh_metrics::http::ResponseBody<Full<Bytes>>>,
        > + Clone,
    S::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
}

#[tokio::test]
async fn values_that_differ_in_one_byte_from_other_connections_keep_their_own_series() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(app());
    // Same lengths and last bytes throughout, so the same memo slot: only
    // one byte tells each apart.
    let peers = ["spiffe://td/ns/a/sa/web", "spiffe://td/ns/b/sa/web"];
    let routes = ["list-x", "lisp-x", "kist-x"];
    let mut expected = Vec::new();
    for round in 1..=3_u64 {
        for (p, peer) in peers.iter().enumerate() {
            for (r, route) in routes.iter().enumerate() {
                // Each target gets a count of its own: 1 + p + r per round.
                for _ in 0..(1 + p + r) {
                    call(&svc, inbound(peer, route, "web")).await;
                }
                if round == 3 {
                    expected.push((peer, route, 3 * (1 + p + r) as u64));
                }
            }
        }
    }
    let text = scrape(&registry);
    for (peer, route, n) in expected {
        let labels = format!(
            r#"{{direction="inbound",target_addr="127.0.0.1:4143",target_ip="127.0.0.1",target_port="4143",tls="true",client_id="{peer}",srv_group="",srv_kind="default",srv_name="srv",route_name="{route}",authz_group="",authz_kind="default",authz_name="web"}}"#
        );
        assert!(
            text.contains(&format!("request_total{labels} {n}\n")),
            "{labels} {n}\n{text}"
        );
        let responses = format!(
            r#"response_total{{direction="inbound",target_addr="127.0.0.1:4143",target_ip="127.0.0.1",target_port="4143",tls="true",client_id="{peer}",srv_group="",srv_kind="default",srv_name="srv",route_name="{route}",authz_group="",authz_kind="default",authz_name="web",status_code="200",classification="success"}} {n}"#
        );
        assert!(text.contains(&responses), "{responses}\n{text}");
    }
    assert_eq!(total(&text, "request_total{"), 3 * (1 + 2 + 3 + 2 + 3 + 4));
}

#[tokio::test]
async fn outbound_services_keep_the_tls_labels_configured_for_each() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let a = Tls::Mutual {
        peer: "spiffe://td/ns/a/sa/svc".parse().unwrap(),
    };
    let b = Tls::Mutual {
        peer: "spiffe://td/ns/b/sa/svc".parse().unwrap(),
    };
    let svc = MetricsLayer::outbound(&metrics)
        .with_service_tls("a-svc", &a)
        .with_service_tls("b-svc", &b)
        .layer(app());
    for service in ["a-svc", "b-svc", "c-svc", "b-svc", "a-svc", "b-svc"] {
        let mut req = Request::new(());
        req.extensions_mut().insert(DstService(service.into()));
        call(&svc, req).await;
    }
    let text = scrape(&registry);
    for line in [
        r#"request_total{direction="outbound",dst_service="a-svc",tls="true",server_id="spiffe://td/ns/a/sa/svc"} 2"#,
        r#"request_total{direction="outbound",dst_service="b-svc",tls="true",server_id="spiffe://td/ns/b/sa/svc"} 3"#,
        r#"request_total{direction="outbound",dst_service="c-svc"} 1"#,
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
    }
    assert_eq!(total(&text, "request_total{"), 6);
}

#[tokio::test]
async fn targets_past_the_series_limit_are_counted_in_the_overflow_every_time() {
    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(2).unwrap());
    let metrics = HttpMetrics::register_with(&mut registry, config);
    let svc = MetricsLayer::inbound(&metrics).layer(app());
    let peer = "spiffe://td/ns/a/sa/web";
    // Two targets fit; the next two fold, however often they come back.
    for _ in 0..5 {
        for route in ["r-1", "r-2", "r-3", "r-4"] {
            call(&svc, inbound(peer, route, "web")).await;
        }
    }
    let text = scrape(&registry);
    let kept = |route: &str| {
        format!(
            r#"request_total{{direction="inbound",target_addr="127.0.0.1:4143",target_ip="127.0.0.1",target_port="4143",tls="true",client_id="{peer}",srv_group="",srv_kind="default",srv_name="srv",route_name="{route}",authz_group="",authz_kind="default",authz_name="web"}} 5"#
        )
    };
    assert!(text.contains(&kept("r-1")), "{text}");
    assert!(text.contains(&kept("r-2")), "{text}");
    assert!(
        text.contains(r#"request_total{direction="inbound",tls="true",overflow="true"} 10"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_series_overflow_total{family="request_total"} 10"#),
        "{text}"
    );
    // Every response is counted, in a series or the overflow.
    assert_eq!(total(&text, "request_total{"), 20);
    assert_eq!(total(&text, "response_total{"), 20);
    assert_eq!(total(&text, "response_latency_ms_count{"), 20);
}

#[tokio::test]
async fn label_values_are_escaped_in_every_family() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let svc = MetricsLayer::inbound(&metrics).layer(app());
    let mut req = Request::new(());
    req.extensions_mut().insert(Authorized {
        server: Arc::from("s\"rv"),
        server_kind: &mesh_core::labels::ResourceKind::DEFAULT,
        server_port: None,
        route: Arc::from("r"),
        route_kind: None,
        authz: Arc::from("a\\z"),
        authz_kind: &mesh_core::labels::ResourceKind::DEFAULT,
        audit: false,
    });
    req.extensions_mut().insert(RouteId::new("get \"x\"\n\\y"));
    call(&svc, req).await;
    let text = scrape(&registry);
    let labels = r#"direction="inbound",srv_group="",srv_kind="default",srv_name="s\"rv",route_name="get \"x\"\n\\y",authz_group="",authz_kind="default",authz_name="a\\z""#;
    for family in [
        "request_total{",
        "response_total{",
        "response_latency_ms_count{",
        "response_latency_ms_bucket{le=\"1.0\",",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(family))
            .unwrap_or_else(|| panic!("no {family}\n{text}"));
        assert!(line.contains(labels), "{line}");
    }
    // No value broke a line: every sample line is a whole sample.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("} "), "{line}");
    }
}
