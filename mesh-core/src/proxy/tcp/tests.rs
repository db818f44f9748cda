use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Uri;
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    net::{TcpListener, TcpStream},
};
use tower::{Service, ServiceExt};

use super::{ConnectFailed, ForwardTcp};
use crate::{
    conn::ConnectionInfo,
    proxy::{EndpointSet, InFailFast, NoEndpoints, Queue},
    serve::OpaqueConnection,
};

/// An echo server that counts the connections it accepts.
async fn echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, accepted)
}

/// An address nothing listens on.
async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An accepted connection, as the server hands it over, and the client's
/// end of it.
fn connection() -> (OpaqueConnection, DuplexStream) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let addr = SocketAddr::from(([127, 0, 0, 1], 40000));
    let conn = OpaqueConnection {
        io: Box::new(server),
        info: ConnectionInfo::plaintext(addr, addr),
    };
    (conn, client)
}

fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http
}

#[tokio::test]
async fn a_mebibyte_round_trips_unchanged_and_the_end_is_passed_on() {
    let (endpoint, _) = echo().await;
    let forward = ForwardTcp::new(connector(), [endpoint]).unwrap();
    let (conn, mut client) = connection();
    let task = tokio::spawn(forward.oneshot(conn));
    let sent: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = tokio::io::split(&mut client);
    let writer = async {
        write.write_all(&sent).await.unwrap();
        // The client's FIN reaches the echo, which then ends its side.
        write.shutdown().await.unwrap();
    };
    let mut received = Vec::new();
    let reader = read.read_to_end(&mut received);
    let ((), n) = tokio::join!(writer, reader);
    assert_eq!(n.unwrap(), sent.len());
    assert!(received == sent, "the bytes came back changed");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_connect_closes_the_client_and_names_the_endpoint() {
    let endpoint = refused().await;
    let forward = ForwardTcp::new(connector(), [endpoint]).unwrap();
    let (conn, mut client) = connection();
    let error = forward.oneshot(conn).await.unwrap_err();
    let failed = error.downcast_ref::<ConnectFailed>().unwrap();
    assert_eq!(failed.endpoint(), endpoint);
    assert!(!failed.is_timeout());
    let mut buf = [0; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
}

#[tokio::test(start_paused = true)]
async fn without_endpoints_the_connection_waits_the_failfast_timeout_then_is_closed() {
    let set = EndpointSet::empty();
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let (conn, mut client) = connection();
    let start = tokio::time::Instant::now();
    let error = forward.oneshot(conn).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3), "Linkerd's default");
    assert!(error.is::<InFailFast>(), "{error}");
    let mut buf = [0; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
    assert!(ForwardTcp::new(connector(), []).is_err());
}

#[tokio::test(start_paused = true)]
async fn in_fail_fast_a_new_connection_is_shed_at_once() {
    let set = EndpointSet::empty();
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let (conn, _client) = connection();
    let error = forward.clone().oneshot(conn).await.unwrap_err();
    assert!(error.is::<InFailFast>(), "{error}");
    // The service is in fail-fast now, its gate shut: the next
    // connection is shed at once, as Linkerd sheds it (`loadshed`), not
    // failed fast as the one that waited was.
    let (conn, mut client) = connection();
    let start = tokio::time::Instant::now();
    let error = forward.clone().oneshot(conn).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "at once");
    assert!(error.is::<NoEndpoints>(), "{error}");
    let mut buf = [0; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
    // A CONNECT is shed alike.
    let error = forward.connect().await.unwrap_err();
    assert!(error.is::<NoEndpoints>(), "{error}");
}

#[tokio::test]
async fn with_a_zero_failfast_timeout_the_first_connection_fails_fast_and_the_next_is_shed() {
    let set = EndpointSet::empty().with_queue(Queue::new(10, Duration::ZERO));
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let (conn, mut client) = connection();
    let error = forward.clone().oneshot(conn).await.unwrap_err();
    assert!(error.is::<InFailFast>(), "{error}");
    let mut buf = [0; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
    let (conn, mut client) = connection();
    let error = forward.oneshot(conn).await.unwrap_err();
    assert!(error.is::<NoEndpoints>(), "{error}");
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
}

#[tokio::test]
async fn without_endpoints_and_a_queue_without_places_the_connection_is_shed() {
    let set = EndpointSet::empty().with_queue(Queue::new(0, Duration::from_secs(3)));
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let (conn, mut client) = connection();
    let error = forward.oneshot(conn).await.unwrap_err();
    assert!(error.is::<NoEndpoints>(), "{error}");
    let mut buf = [0; 1];
    assert_eq!(client.read(&mut buf).await.unwrap(), 0, "closed");
}

#[tokio::test]
async fn a_waiting_connection_given_up_gives_its_place_back() {
    let set = EndpointSet::empty();
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let gate = forward.endpoints.peek().gate().clone();
    let (conn, _client) = connection();
    let mut waiting = Box::pin(forward.clone().oneshot(conn));
    assert!(futures_util::FutureExt::now_or_never(&mut waiting).is_none());
    assert_eq!(gate.waiters(), 1);
    drop(waiting);
    assert_eq!(gate.waiters(), 0);
    let mut connecting = Box::pin(forward.connect());
    assert!(futures_util::FutureExt::now_or_never(&mut connecting).is_none());
    assert_eq!(gate.waiters(), 1, "a CONNECT waits too");
    drop(connecting);
    assert_eq!(gate.waiters(), 0);
}

#[tokio::test]
async fn a_set_that_gains_endpoints_is_used_by_the_next_connection() {
    let (endpoint, accepted) = echo().await;
    let set = EndpointSet::empty().with_queue(Queue::new(0, Duration::from_secs(3)));
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let (conn, _client) = connection();
    let error = forward.clone().oneshot(conn).await.unwrap_err();
    assert!(error.is::<NoEndpoints>());
    set.update([endpoint]).unwrap();
    let (conn, client) = connection();
    let task = tokio::spawn(forward.oneshot(conn));
    drop(client);
    task.await.unwrap().unwrap();
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
}

/// A connector that never connects.
#[derive(Clone, Debug)]
pub(in crate::proxy) struct Hang;

impl Service<Uri> for Hang {
    type Response = TokioIo<TcpStream>;
    type Error = std::io::Error;
    type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        std::future::pending()
    }
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_takes_too_long_times_out_and_counts_while_it_waits() {
    let a = SocketAddr::from(([10, 0, 0, 1], 5432));
    let b = SocketAddr::from(([10, 0, 0, 2], 5432));
    let forward = ForwardTcp::new(Hang, [a, b])
        .unwrap()
        .with_connect_timeout(Duration::from_secs(3));
    let balancer = forward.endpoints.peek();
    let (conn, _client) = connection();
    let mut call = Box::pin(forward.oneshot(conn));
    tokio::select! {
        _ = &mut call => panic!("connected through a connector that never connects"),
        () = tokio::time::sleep(Duration::from_millis(2900)) => {}
    }
    let pending = |addr| balancer.pending_of(addr).unwrap();
    assert_eq!(pending(a) + pending(b), 1, "the connect counts as pending");
    let error = call.await.unwrap_err();
    let failed = error.downcast_ref::<ConnectFailed>().unwrap();
    assert!(failed.is_timeout());
    assert!([a, b].contains(&failed.endpoint()));
    assert_eq!(pending(a) + pending(b), 0);
    // The failure is held against the endpoint: its estimate is the
    // failure penalty, far above a fresh endpoint's.
    let estimate = balancer.estimate_of(failed.endpoint()).unwrap();
    assert!(
        estimate >= crate::proxy::balance::FAILURE_PENALTY / 2,
        "{estimate:?}"
    );
}

#[tokio::test]
async fn a_refused_endpoint_is_avoided_by_the_next_connections() {
    let (live, accepted) = echo().await;
    let dead = refused().await;
    let forward = ForwardTcp::new(connector(), [live, dead]).unwrap();
    let mut failures = 0;
    for _ in 0..10 {
        let (conn, client) = connection();
        drop(client);
        if let Err(error) = forward.clone().oneshot(conn).await {
            assert_eq!(
                error.downcast_ref::<ConnectFailed>().unwrap().endpoint(),
                dead
            );
            failures += 1;
        }
    }
    assert!(
        failures <= 1,
        "{failures} connects went to the refused endpoint"
    );
    assert_eq!(accepted.load(Ordering::Relaxed), 10 - failures);
}

#[tokio::test]
async fn connections_are_spread_over_the_endpoints() {
    let (a, to_a) = echo().await;
    let (b, to_b) = echo().await;
    let forward = ForwardTcp::new(connector(), [a, b]).unwrap();
    // Equally loaded endpoints are drawn at random: 40 connections all
    // going to one has a chance of 2^-39, where 10 had one of 2^-9.
    for _ in 0..40 {
        let (conn, client) = connection();
        drop(client);
        forward.clone().oneshot(conn).await.unwrap();
    }
    let (to_a, to_b) = (to_a.load(Ordering::Relaxed), to_b.load(Ordering::Relaxed));
    assert_eq!(to_a + to_b, 40);
    assert!(to_a > 0 && to_b > 0, "a: {to_a}, b: {to_b}");
}

#[tokio::test]
async fn connect_alone_reaches_an_endpoint_that_a_client_is_then_joined_with() {
    let (endpoint, accepted) = echo().await;
    let forward = ForwardTcp::new(connector(), [endpoint]).unwrap();
    let connected = forward.connect().await.unwrap();
    assert_eq!(connected.endpoint(), endpoint);
    let (conn, mut client) = connection();
    let task = tokio::spawn(connected.forward(conn));
    client.write_all(b"joined").await.unwrap();
    client.shutdown().await.unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"joined");
    task.await.unwrap().unwrap();
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "one connection");
}

#[tokio::test]
async fn connect_alone_names_the_endpoint_that_refused_or_says_there_is_none() {
    let endpoint = refused().await;
    let forward = ForwardTcp::new(connector(), [endpoint]).unwrap();
    let error = forward.connect().await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<ConnectFailed>().unwrap().endpoint(),
        endpoint
    );
    let set = EndpointSet::empty().with_queue(Queue::new(0, Duration::from_secs(3)));
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let error = forward.connect().await.unwrap_err();
    assert!(error.is::<NoEndpoints>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_connect_given_up_before_it_ends_counts_its_wait_and_no_failure() {
    let a = SocketAddr::from(([10, 0, 0, 1], 5432));
    let b = SocketAddr::from(([10, 0, 0, 2], 5432));
    let forward = ForwardTcp::new(Hang, [a, b]).unwrap();
    let balancer = forward.endpoints.peek();
    let pending = |addr| balancer.pending_of(addr).unwrap();
    let mut connecting = Box::pin(forward.connect());
    assert!(
        futures_util::FutureExt::now_or_never(&mut connecting).is_none(),
        "a connector that never connects"
    );
    assert_eq!(pending(a) + pending(b), 1, "the connect counts as pending");
    let (tried, other) = if pending(a) == 1 { (a, b) } else { (b, a) };
    // The client went away two seconds in: its CONNECT's answer is
    // dropped mid-connect.
    tokio::time::advance(Duration::from_secs(2)).await;
    drop(connecting);
    assert_eq!(pending(a) + pending(b), 0);
    // The wait is the endpoint's sample: it was that slow to connect.
    assert_eq!(balancer.estimate_of(tried).unwrap(), Duration::from_secs(2));
    let fresh = crate::proxy::balance::DEFAULT_RTT;
    assert_eq!(balancer.estimate_of(other).unwrap(), fresh);
}
