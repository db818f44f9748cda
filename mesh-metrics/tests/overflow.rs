//! What the overflow series keep: the direction, and for responses the
//! classification, so that views and queries that select by them (as
//! `linkerd viz stat` and every Linkerd dashboard does) still count
//! folded traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, num::NonZeroUsize, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use mesh_core::route::RouteId;
use mesh_metrics::{
    Direction, HttpMetrics, MetricsConfig, MetricsLayer,
    query::{Delta, Scrape, Target, stat::stat_rows},
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn folded_traffic_still_counts_in_its_direction_and_classification() {
    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(2).unwrap());
    let metrics = HttpMetrics::register_with(&mut registry, config);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|req: Request<()>| async move {
        let mut res = Response::new(Full::<Bytes>::default());
        if req.uri().path() == "/fail" {
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, Infallible>(res)
    }));
    // Ten routes, of which the last fails: eight of them fold.
    for i in 0..10 {
        let path = if i == 9 { "/fail" } else { "/" };
        let mut req = Request::get(path).body(()).unwrap();
        req.extensions_mut().insert(RouteId::new(format!("r{i}")));
        svc.clone().oneshot(req).await.unwrap();
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("request_total{direction=\"inbound\",overflow=\"true\"} 8\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",classification=\"success\",overflow=\"true\"} 7\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "response_total{direction=\"inbound\",classification=\"failure\",overflow=\"true\"} 1\n"
        ),
        "{text}"
    );

    // `stat` sees every response, folded or not.
    let after = Scrape::parse(&text).unwrap();
    let window = Duration::from_secs(10);
    let delta = Delta::between(&Scrape::default(), &after, window);
    let targets = Target::parse_list("web=a:1").unwrap();
    let rows = stat_rows(&targets, &[Some(delta)], Direction::Inbound);
    assert_eq!(rows[0].golden.rps, 1.0, "{rows:?}");
    assert_eq!(rows[0].golden.success, Some(0.9), "{rows:?}");
    // Every latency was observed, folded or not.
    assert!(rows[0].golden.latency_ms_p50.is_some());
}

#[tokio::test]
async fn folded_traffic_keeps_its_tls_status_so_the_tls_share_stays_right() {
    use mesh_core::conn::{ConnectionInfo, Tls};

    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(2).unwrap());
    let metrics = HttpMetrics::register_with(&mut registry, config);
    let svc = MetricsLayer::inbound(&metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    // Ten clients, each with its own identity, all on mutual TLS.
    for i in 0..10 {
        let mut req = Request::new(());
        req.extensions_mut().insert(ConnectionInfo {
            local_addr: "127.0.0.1:4143".parse().unwrap(),
            remote_addr: "127.0.0.1:50000".parse().unwrap(),
            tls: Tls::Mutual {
                peer: format!("spiffe://td/ns/emoji/sa/client-{i}")
                    .parse()
                    .unwrap(),
            },
        });
        svc.clone().oneshot(req).await.unwrap();
    }
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("request_total{direction=\"inbound\",tls=\"true\",overflow=\"true\"} 8\n"),
        "{text}"
    );
    let after = Scrape::parse(&text).unwrap();
    let delta = Delta::between(&Scrape::default(), &after, Duration::from_secs(10));
    let targets = Target::parse_list("web=a:1").unwrap();
    let rows = stat_rows(&targets, &[Some(delta)], Direction::Inbound);
    assert_eq!(rows[0].tls, Some(1.0), "{rows:?}");
}

#[tokio::test]
async fn folded_connections_keep_their_direction_peer_and_tls_status() {
    use mesh_core::{
        client::ClientConfig,
        conn::{NoTlsReason, Tls},
    };
    use mesh_metrics::{TcpConnect, TcpMetrics};
    use tower::Service;

    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(1).unwrap());
    let tcp = TcpMetrics::register_with(&mut registry, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut first = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::Disabled),
        ClientConfig::default().http_connector(),
    );
    let mut folded = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
        ClientConfig::default().http_connector(),
    );
    // The first label set takes the one series each family has room for.
    let uri = format!("http://{addr}").parse().unwrap();
    drop(first.ready().await.unwrap().call(uri).await.unwrap());
    let mut ios = Vec::new();
    for _ in 0..2 {
        let uri = format!("http://{addr}").parse().unwrap();
        ios.push(folded.ready().await.unwrap().call(uri).await.unwrap());
    }
    let io = ios.pop().unwrap();
    drop(ios);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("tcp_open_total{direction=\"outbound\",peer=\"dst\",tls=\"no_identity\",overflow=\"true\"} 2\n"),
        "{text}"
    );
    // Each folded connection is a fold, as on the accepting side.
    assert!(
        text.contains("tcp_series_overflow_total{family=\"tcp_open_total\"} 2\n"),
        "{text}"
    );
    drop(io);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            "tcp_close_total{direction=\"outbound\",peer=\"dst\",tls=\"no_identity\",errno=\"\",overflow=\"true\"} 2\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "tcp_open_connections{direction=\"outbound\",peer=\"dst\",tls=\"no_identity\",overflow=\"true\"} 0\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_connection_that_could_not_be_opened_is_no_fold() {
    use mesh_core::{
        client::ClientConfig,
        conn::{NoTlsReason, Tls},
    };
    use mesh_metrics::{TcpConnect, TcpMetrics};
    use tower::Service;

    let mut registry = Registry::default();
    let config = MetricsConfig::default().with_series_limit(NonZeroUsize::new(1).unwrap());
    let tcp = TcpMetrics::register_with(&mut registry, config);
    let listener = crate::support::refused::low_listener();
    let addr = listener.local_addr().unwrap();
    let mut first = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::Disabled),
        ClientConfig::default().http_connector(),
    );
    let uri = format!("http://{addr}").parse().unwrap();
    drop(first.ready().await.unwrap().call(uri).await.unwrap());
    // Nothing listens there any more: the connection is refused, so no
    // observation was made, in an overflow series or any other.
    drop(listener);
    let mut folded = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
        ClientConfig::default().http_connector(),
    );
    let uri = format!("http://{addr}").parse().unwrap();
    assert!(folded.ready().await.unwrap().call(uri).await.is_err());
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("tcp_series_overflow_total{family=\"tcp_open_total\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("overflow=\"true\""), "{text}");
}
