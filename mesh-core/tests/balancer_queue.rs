//! The balancer queue's metrics over real sockets, on tokio's paused
//! clock: a request that waits for an endpoint counts in the queue's
//! length until it is served, and the fail-fast gate counts each time it
//! shuts and opens, in Linkerd's families.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::queue::{connector, get, spawn, tcp_echo, tcp_proxy, until, upstream};

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Empty;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::{
        EndpointSet, FailureAccrual, Forward, ForwardTcp, IN_FAILFAST, Queue,
        balance::{QueueMetricFamilies, QueueMetrics},
    },
};
use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
    time::Instant,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Service {
    service: String,
}

/// The registry and `web`'s handles, registered as the sidecar does.
fn metrics() -> (Registry, QueueMetrics) {
    let mut registry = Registry::default();
    let families =
        QueueMetricFamilies::register(registry.sub_registry_with_prefix("outbound_http_balancer"));
    let web = families.metrics(&Service {
        service: "web".to_owned(),
    });
    (registry, web)
}

fn client() -> Client<Empty<Bytes>> {
    Client::new(&ClientConfig::default())
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_the_first_endpoint_is_the_queue_length_until_served() {
    let (registry, web) = metrics();
    let endpoint = upstream().await;
    let set = EndpointSet::empty();
    assert!(web.count(&set.view()));
    let forward = Forward::with_endpoints(client(), &set);
    let start = Instant::now();
    let waiting = spawn(&forward, get("/"));
    until(start, Duration::from_millis(700)).await;
    assert!(!waiting.is_finished());
    assert_eq!((web.length(), web.requests()), (1, 1));
    let text = scrape(&registry);
    assert!(
        text.contains("outbound_http_balancer_queue_length{service=\"web\"} 1\n"),
        "{text}"
    );

    set.update([endpoint]).unwrap();
    assert_eq!(waiting.await.unwrap(), (StatusCode::OK, None));
    assert_eq!((web.length(), web.requests()), (0, 1));
    let text = scrape(&registry);
    for series in [
        "outbound_http_balancer_queue_length{service=\"web\"} 0\n",
        "outbound_http_balancer_queue_requests_total{service=\"web\"} 1\n",
        "outbound_http_balancer_queue_latency_seconds_sum{service=\"web\"} 0.7\n",
        "outbound_http_balancer_queue_latency_seconds_bucket{le=\"0.5\",service=\"web\"} 0\n",
        "outbound_http_balancer_queue_latency_seconds_bucket{le=\"1.0\",service=\"web\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} in\n{text}");
    }

    // Served at once, a request never enters the queue.
    assert_eq!(
        spawn(&forward, get("/")).await.unwrap(),
        (StatusCode::OK, None)
    );
    assert_eq!((web.length(), web.requests()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_gate_of_a_fixed_forward_shuts_after_the_timeout_and_opens_with_the_probe() {
    let (registry, web) = metrics();
    let endpoint = upstream().await;
    let accrual = FailureAccrual::new(
        NonZeroU32::MIN,
        Duration::from_secs(10),
        Duration::from_secs(10),
        0.0,
    )
    .unwrap();
    let forward = Forward::new(client(), [endpoint])
        .unwrap()
        .with_failure_accrual(accrual)
        .with_queue(Queue::new(10, Duration::from_secs(2)));
    assert!(web.count(&forward.balancer_view().unwrap()));
    assert_eq!(web.gate_changes(), (1, 0), "open from the start");
    let text = scrape(&registry);
    assert!(
        text.contains("outbound_http_balancer_queue_gate_timeout_seconds{service=\"web\"} 2.0\n"),
        "{text}"
    );

    // One failure takes the endpoint out for 10 s: the next request
    // waits, and at 2 s the service goes into fail-fast.
    let (status, _) = spawn(&forward, get("/fail")).await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let start = Instant::now();
    let waiting = spawn(&forward, get("/"));
    until(start, Duration::from_secs(1)).await;
    assert_eq!(web.length(), 1);
    assert_eq!(
        waiting.await.unwrap(),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(IN_FAILFAST.to_owned())
        )
    );
    assert_eq!(web.length(), 0);
    assert_eq!(web.gate_changes(), (1, 1));
    let text = scrape(&registry);
    assert!(
        text.contains("outbound_http_balancer_queue_gate_open_time_seconds{service=\"web\"} 0.0\n"),
        "{text}"
    );
    // In fail-fast, requests are refused without waiting: the gate stays
    // shut, counted once.
    let (status, _) = spawn(&forward, get("/")).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(web.gate_changes(), (1, 1));

    // The penalty ends; the next request is the probe, served: it opens.
    until(start, Duration::from_secs(11)).await;
    assert_eq!(
        spawn(&forward, get("/")).await.unwrap(),
        (StatusCode::OK, None)
    );
    assert_eq!(web.gate_changes(), (2, 1));
    let text = scrape(&registry);
    assert!(
        text.contains("outbound_http_balancer_queue_gate_shut_time_seconds{service=\"web\"} 0.0\n"),
        "{text}"
    );
}

/// Whether `hello`, sent through `proxy`, comes back (`false`: closed).
fn exchange(proxy: SocketAddr) -> JoinHandle<bool> {
    tokio::spawn(async move {
        let mut conn = TcpStream::connect(proxy).await.unwrap();
        conn.write_all(b"hello").await.unwrap();
        let mut back = [0; 5];
        conn.read_exact(&mut back).await.is_ok()
    })
}

#[tokio::test(start_paused = true)]
async fn tcp_connections_wait_in_the_queue_and_shut_the_gate_at_the_timeout() {
    let (_registry, web) = metrics();
    let endpoint = tcp_echo().await;
    let set = EndpointSet::empty();
    assert!(web.count(&set.view()));
    let proxy = tcp_proxy(ForwardTcp::with_endpoints(connector(), &set)).await;
    let start = Instant::now();
    let waiting = exchange(proxy);
    until(start, Duration::from_secs(1)).await;
    assert_eq!((web.length(), web.requests()), (1, 1));
    // Closed at Linkerd's 3 s: the gate shuts.
    assert!(!waiting.await.unwrap());
    assert_eq!(web.length(), 0);
    assert_eq!(web.gate_changes(), (1, 1));
    // An endpoint comes: the gate opens, and connections are forwarded
    // without waiting.
    set.update([endpoint]).unwrap();
    assert_eq!(web.gate_changes(), (2, 1));
    assert!(exchange(proxy).await.unwrap());
    assert_eq!((web.length(), web.requests()), (0, 1));
}
