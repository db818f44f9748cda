//! The exact text `/metrics` serves after a known sequence of requests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, fmt::Write, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    error::ProxyErrorKind,
    labels::{Authorized, ResourceKind},
};
use mesh_metrics::{HttpMetrics, LATENCY_BUCKETS_MS, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

const PEER: &str = "spiffe://cluster.local/ns/emojivoto/sa/web";

fn request(route: &str, path: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get(path).body(Full::default()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: "127.0.0.1:50000".parse().unwrap(),
        tls: Tls::Mutual {
            peer: PEER.parse().unwrap(),
        },
    });
    req.extensions_mut().insert(Authorized {
        server: Arc::from("emoji-grpc"),
        server_kind: &ResourceKind {
            group: "policy.linkerd.io",
            kind: "server",
        },
        server_port: Some(8080),
        route: Arc::from(route),
        route_kind: Some(&ResourceKind {
            group: "gateway.networking.k8s.io",
            kind: "HTTPRoute",
        }),
        authz: Arc::from("web-only"),
        authz_kind: &ResourceKind {
            group: "policy.linkerd.io",
            kind: "authorizationpolicy",
        },
        audit: false,
    });
    req
}

/// A histogram series as prometheus-client writes it (`le` first): `cumulative[i]` is
/// the count at or under the i-th bound of [`LATENCY_BUCKETS_MS`].
fn histogram(labels: &str, sum: &str, cumulative: [u64; 25], count: u64) -> String {
    let mut out = format!(
        "response_latency_ms_sum{{{labels}}} {sum}\nresponse_latency_ms_count{{{labels}}} {count}\n"
    );
    for (bound, n) in LATENCY_BUCKETS_MS.iter().zip(cumulative) {
        writeln!(
            out,
            "response_latency_ms_bucket{{le=\"{bound}.0\",{labels}}} {n}"
        )
        .unwrap();
    }
    writeln!(
        out,
        "response_latency_ms_bucket{{le=\"+Inf\",{labels}}} {count}"
    )
    .unwrap();
    out
}

#[tokio::test(start_paused = true)]
async fn a_known_sequence_of_requests_gives_this_exact_exposition() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let app = service_fn(|req: Request<Full<Bytes>>| async move {
        let res = match req.uri().path() {
            "/ok" => {
                tokio::time::sleep(Duration::from_millis(3)).await;
                Response::new(Full::<Bytes>::from("hello"))
            }
            "/unavailable" => {
                tokio::time::sleep(Duration::from_millis(12)).await;
                let mut res = Response::new(Full::<Bytes>::from("try later"));
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res
            }
            _ => ProxyErrorKind::Denied.response(&req),
        };
        Ok::<_, Infallible>(res)
    });
    let svc = MetricsLayer::inbound(&metrics).layer(app);

    for (route, path) in [
        ("list", "/ok"),
        ("list", "/ok"),
        ("vote", "/unavailable"),
        ("list", "/denied"),
    ] {
        let res = svc.clone().oneshot(request(route, path)).await.unwrap();
        res.into_body().collect().await.unwrap();
    }

    let target = |route: &str| {
        format!(
            "direction=\"inbound\",target_addr=\"127.0.0.1:4143\",target_ip=\"127.0.0.1\",\
             target_port=\"4143\",tls=\"true\",client_id=\"{PEER}\",\
             srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"emoji-grpc\",\
             srv_port=\"8080\",route_group=\"gateway.networking.k8s.io\",\
             route_kind=\"HTTPRoute\",route_name=\"{route}\",\
             authz_group=\"policy.linkerd.io\",authz_kind=\"authorizationpolicy\",\
             authz_name=\"web-only\""
        )
    };
    let (list, vote) = (target("list"), target("vote"));
    let mut expected = String::new();
    expected += "# HELP request Total count of HTTP requests.\n# TYPE request counter\n";
    expected += &format!("request_total{{{list}}} 3\nrequest_total{{{vote}}} 1\n");
    expected += "# HELP response Total count of HTTP responses.\n# TYPE response counter\n";
    expected += &format!(
        "response_total{{{list},status_code=\"200\",classification=\"success\"}} 2\n\
         response_total{{{list},status_code=\"403\",classification=\"success\",error=\"denied\"}} 1\n\
         response_total{{{vote},status_code=\"503\",classification=\"failure\"}} 1\n"
    );
    expected += "# HELP response_latency_ms Elapsed times between a request's headers being \
                 received and its response's first data frame (or its end, when it has none), \
                 in milliseconds.\n\
                 # TYPE response_latency_ms histogram\n";
    // Two responses of exactly 3 ms: in every bucket from le=3 up.
    let mut ok = [2; 25];
    ok[..2].fill(0);
    expected += &histogram(&format!("{list},status_code=\"200\""), "6.0", ok, 2);
    // The mesh's 403 answered at once: 0 ms, in every bucket.
    expected += &histogram(&format!("{list},status_code=\"403\""), "0.0", [1; 25], 1);
    // One 503 after 12 ms: in le=20 and up (the sixth bound is 10).
    let mut slow = [1; 25];
    slow[..6].fill(0);
    expected += &histogram(&format!("{vote},status_code=\"503\""), "12.0", slow, 1);
    expected += "# HELP http_series_overflow Observations recorded in an overflow series \
                 because their family reached its series limit.\n\
                 # TYPE http_series_overflow counter\n\
                 http_series_overflow_total{family=\"request_total\"} 0\n\
                 http_series_overflow_total{family=\"response_total\"} 0\n\
                 http_series_overflow_total{family=\"response_latency_ms\"} 0\n\
                 # EOF\n";

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(text, expected);
}
