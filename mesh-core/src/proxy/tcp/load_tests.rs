//! A forwarded connection is load on its endpoint for its whole life.

use std::{net::SocketAddr, time::Duration};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::{
    io::{AsyncReadExt, DuplexStream},
    net::TcpListener,
    task::JoinHandle,
};
use tower::{Service, ServiceExt};

use super::ForwardTcp;
use crate::{conn::ConnectionInfo, proxy::EndpointSet, serve::OpaqueConnection};

/// A server that greets each connection with `tag`, then echoes it.
async fn tagged(tag: u8) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                tcp.write_all(&[tag]).await.unwrap();
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http
}

/// A connection forwarded by `forward`, once its endpoint has greeted
/// it: the client's end, the endpoint's tag, and the forwarding task.
struct Open {
    client: DuplexStream,
    tag: u8,
    task: JoinHandle<Result<(), crate::error::BoxError>>,
}

async fn open<C>(forward: &ForwardTcp<C>) -> Open
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<crate::error::BoxError>,
{
    let (mut client, server) = tokio::io::duplex(1024);
    let addr = SocketAddr::from(([127, 0, 0, 1], 40000));
    let conn = OpaqueConnection {
        io: Box::new(server),
        info: ConnectionInfo::plaintext(addr, addr),
    };
    let task = tokio::spawn(forward.clone().oneshot(conn));
    let mut tag = [0];
    client.read_exact(&mut tag).await.unwrap();
    Open {
        client,
        tag: tag[0],
        task,
    }
}

async fn open_many<C>(forward: &ForwardTcp<C>, n: usize) -> Vec<Open>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<crate::error::BoxError>,
{
    let mut open_ = Vec::with_capacity(n);
    for _ in 0..n {
        open_.push(open(forward).await);
    }
    open_
}

fn count(open: &[Open], tag: u8) -> usize {
    open.iter().filter(|o| o.tag == tag).count()
}

#[tokio::test]
async fn long_lived_connections_spread_evenly_though_one_endpoint_connects_faster() {
    let (a, b) = (tagged(b'a').await, tagged(b'b').await);
    let forward = ForwardTcp::new(connector(), [a, b]).unwrap();
    // The first endpoint looks a hundred times faster to connect to.
    let balancer = forward.endpoints.peek();
    balancer.seed(a, Duration::from_micros(200));
    balancer.seed(b, Duration::from_millis(20));
    let open = open_many(&forward, 40).await;
    let (to_a, to_b) = (count(&open, b'a'), count(&open, b'b'));
    assert!(to_a.abs_diff(to_b) <= 2, "a: {to_a}, b: {to_b}");
    assert_eq!(
        balancer.pending_of(a),
        Some(to_a as u32),
        "counted while open"
    );
    assert_eq!(balancer.pending_of(b), Some(to_b as u32));
}

#[tokio::test]
async fn closed_connections_release_their_endpoint_for_the_next_ones() {
    let (a, b) = (tagged(b'a').await, tagged(b'b').await);
    let forward = ForwardTcp::new(connector(), [a, b]).unwrap();
    let open = open_many(&forward, 10).await;
    let (on_a, on_b): (Vec<_>, Vec<_>) = open.into_iter().partition(|o| o.tag == b'a');
    assert_eq!((on_a.len(), on_b.len()), (5, 5));
    for Open { client, task, .. } in on_b {
        // The client closes; the echo closes its side in turn.
        drop(client);
        task.await.unwrap().unwrap();
    }
    let balancer = forward.endpoints.peek();
    assert_eq!(balancer.pending_of(b), Some(0));
    let next = open_many(&forward, 5).await;
    assert_eq!(count(&next, b'b'), 5, "each went to the idle endpoint");
    drop(on_a);
}

#[tokio::test]
async fn no_load_is_left_behind_however_a_connection_ends() {
    let (a, b) = (tagged(b'a').await, tagged(b'b').await);
    let set = EndpointSet::new([a, b]).unwrap();
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let before = forward.endpoints.peek();
    let total = |balancer: &crate::proxy::balance::Balancer| {
        balancer
            .addrs()
            .filter_map(|e| balancer.pending_of(e))
            .sum::<u32>()
    };
    let mut open = open_many(&forward, 6).await;
    // Cancelled: the forwarding future is dropped mid-copy.
    for Open { task, .. } in open.drain(..2) {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert_eq!(total(&before), 4);
    // The set changes under the open connections: the one endpoint kept
    // keeps its count, the one that left takes its count with it.
    let c = tagged(b'c').await;
    set.update([a, c]).unwrap();
    let after = forward.endpoints.peek();
    assert_eq!(after.pending_of(a), Some(count(&open, b'a') as u32));
    assert_eq!(after.pending_of(c), Some(0));
    open.extend(open_many(&forward, 2).await);
    // Closed by the client, or by the endpoint failing the copy.
    for Open { client, task, .. } in open {
        drop(client);
        task.await.unwrap().unwrap();
    }
    assert_eq!(total(&before), 0);
    assert_eq!(total(&after), 0);
    // Connected alone and never joined with a client.
    let connected = forward.clone().connect().await.unwrap();
    assert_eq!(total(&after), 1);
    drop(connected);
    assert_eq!(total(&after), 0);
}

/// A connector whose connections panic when read.
#[derive(Clone, Debug)]
struct Explodes;

#[derive(Debug)]
struct Explosive;

impl hyper::rt::Read for Explosive {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        panic!("the upstream exploded");
    }
}

impl hyper::rt::Write for Explosive {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Service<Uri> for Explodes {
    type Response = Explosive;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Explosive, std::io::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        std::future::ready(Ok(Explosive))
    }
}

#[tokio::test]
async fn a_connection_whose_copy_panics_releases_its_load() {
    let a = SocketAddr::from(([10, 0, 0, 1], 5432));
    let b = SocketAddr::from(([10, 0, 0, 2], 5432));
    let forward = ForwardTcp::new(Explodes, [a, b]).unwrap();
    let balancer = forward.endpoints.peek();
    let (_client, server) = tokio::io::duplex(1024);
    let conn = OpaqueConnection {
        io: Box::new(server),
        info: ConnectionInfo::plaintext(a, a),
    };
    let error = tokio::spawn(forward.oneshot(conn)).await.unwrap_err();
    assert!(error.is_panic());
    assert_eq!(balancer.pending_of(a), Some(0));
    assert_eq!(balancer.pending_of(b), Some(0));
}

#[tokio::test]
async fn one_endpoint_counts_its_connections_too() {
    let a = tagged(b'a').await;
    let forward = ForwardTcp::new(connector(), [a]).unwrap();
    let open = open_many(&forward, 3).await;
    assert_eq!(count(&open, b'a'), 3);
    assert_eq!(forward.endpoints.peek().pending_of(a), Some(3));
    for Open { client, task, .. } in open {
        drop(client);
        task.await.unwrap().unwrap();
    }
    assert_eq!(forward.endpoints.peek().pending_of(a), Some(0));
}

#[tokio::test]
async fn connections_opened_to_a_lone_endpoint_still_count_once_a_second_joins() {
    let a = tagged(b'a').await;
    let set = EndpointSet::new([a]).unwrap();
    let forward = ForwardTcp::with_endpoints(connector(), &set);
    let first = open_many(&forward, 10).await;
    assert_eq!(count(&first, b'a'), 10);
    // Scaled up: the endpoint that joins has none of the ten open, so the
    // next ten are its, as `leastconn` would send them.
    let b = tagged(b'b').await;
    set.update([a, b]).unwrap();
    let next = open_many(&forward, 10).await;
    assert_eq!(count(&next, b'b'), 10, "each went to the new endpoint");
    drop(first);
}
