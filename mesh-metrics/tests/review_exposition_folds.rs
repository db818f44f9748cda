//! The error families fold past their series limit as every family does,
//! and `*_series_overflow_total` counts those folds as it counts the
//! others', while the family is written: a family without series is left
//! out of the exposition, as Linkerd's proxy leaves its error families,
//! and so is its fold counter.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::num::NonZeroUsize;

use http::Request;
use mesh_core::{BoxError, error::ProxyErrorKind};
use mesh_metrics::{
    Direction, HttpMetrics, MetricsConfig, MetricsLayer, TcpMetrics, errors::ProxyError,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

fn one_series() -> MetricsConfig {
    MetricsConfig::default().with_series_limit(NonZeroUsize::new(1).unwrap())
}

fn lines_with<'a>(text: &'a str, what: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(what)).collect()
}

#[tokio::test]
async fn http_errors_folded_past_the_limit_are_counted_as_folds() {
    // Two errors the proxy answered itself, of two kinds: with room for
    // one series, the second folds into the overflow series, and
    // `http_series_overflow_total` said nothing of it.
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register_with(&mut registry, one_series());
    let layer = MetricsLayer::outbound(&metrics);
    for kind in [ProxyErrorKind::UpstreamUnreachable, ProxyErrorKind::Timeout] {
        let svc = layer.layer(service_fn(move |_: Request<()>| async move {
            Ok::<http::Response<String>, BoxError>(kind.response_for(false))
        }));
        svc.oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        lines_with(&text, "outbound_http_errors_total{"),
        [
            "outbound_http_errors_total{error=\"i/o\"} 1",
            "outbound_http_errors_total{error=\"response timeout\",overflow=\"true\"} 1",
        ],
        "{text}"
    );
    // The inbound family has no series, and is not written: nor is its
    // fold counter.
    assert_eq!(
        lines_with(&text, "http_errors_total\"}"),
        ["http_series_overflow_total{family=\"outbound_http_errors_total\"} 1"],
        "{text}"
    );
}

#[test]
fn tcp_errors_folded_past_the_limit_are_counted_as_folds() {
    let mut registry = Registry::default();
    let metrics = TcpMetrics::register_with(&mut registry, one_series());
    let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for port in [8080, 8081, 8082] {
        metrics.count_error(Direction::Inbound, addr(port), ProxyError::Io);
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let errors = lines_with(&text, "inbound_tcp_errors_total{");
    assert_eq!(errors.len(), 2, "{text}");
    assert!(errors[0].contains("8080"), "{text}");
    assert!(errors[1].ends_with(",overflow=\"true\"} 2"), "{text}");
    assert_eq!(
        lines_with(&text, "tcp_errors_total\"}"),
        ["tcp_series_overflow_total{family=\"inbound_tcp_errors_total\"} 2"],
        "{text}"
    );
    // A family's fold counter is written with its first series, from 0.
    metrics.count_error(Direction::Outbound, addr(9090), ProxyError::Io);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        lines_with(&text, "tcp_errors_total\"}"),
        [
            "tcp_series_overflow_total{family=\"inbound_tcp_errors_total\"} 2",
            "tcp_series_overflow_total{family=\"outbound_tcp_errors_total\"} 0",
        ],
        "{text}"
    );
}

#[tokio::test]
async fn folded_tls_without_a_client_certificate_stays_apart_from_mutual_tls() {
    // The overflow series keeps the `tls` status so that the share of
    // traffic on mutual TLS stays right past the limit; but TLS from a
    // client without a certificate is `tls="true"` too, told apart only by
    // its empty `client_id`, which the fold dropped: `stat` counted it as
    // mutual TLS. Two requests on mutual TLS and two without a client
    // certificate, three of them folded: half is on mutual TLS.
    use mesh_core::conn::{ConnectionInfo, Tls};
    use mesh_metrics::query::{Delta, Scrape, Target, stat::stat_rows};

    let mut registry = Registry::default();
    let metrics = HttpMetrics::register_with(&mut registry, one_series());
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, BoxError>(http::Response::new(String::new()))
    }));
    let mutual = Tls::Mutual {
        peer: "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
            .parse()
            .unwrap(),
    };
    for (i, tls) in [mutual.clone(), mutual, Tls::NoClientCert, Tls::NoClientCert]
        .into_iter()
        .enumerate()
    {
        let mut req = Request::get("/").body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "127.0.0.1:4143".parse().unwrap(),
            remote_addr: format!("127.0.0.1:{}", 50000 + i).parse().unwrap(),
            tls,
        });
        req.extensions_mut()
            .insert(mesh_core::route::RouteId::new(format!("r{i}")));
        svc.clone().oneshot(req).await.unwrap();
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        lines_with(&text, "response_total{"),
        [
            "response_total{direction=\"inbound\",target_addr=\"127.0.0.1:4143\",\
             target_ip=\"127.0.0.1\",target_port=\"4143\",tls=\"true\",\
             client_id=\"web.emojivoto.serviceaccount.identity.linkerd.cluster.local\",\
             route_name=\"r0\",status_code=\"200\",classification=\"success\"} 1",
            "response_total{direction=\"inbound\",tls=\"true\",classification=\"success\",\
             overflow=\"true\"} 1",
            "response_total{direction=\"inbound\",tls=\"true\",client_id=\"\",\
             classification=\"success\",overflow=\"true\"} 2",
        ],
        "{text}"
    );
    let delta = Delta::between(
        &Scrape::default(),
        &Scrape::parse(&text).unwrap(),
        std::time::Duration::from_secs(1),
    );
    let targets = Target::parse_list("web=127.0.0.1:4191").unwrap();
    let rows = stat_rows(&targets, &[Some(delta)], Direction::Inbound);
    assert_eq!(rows[0].tls, Some(0.5), "{text}");
}
