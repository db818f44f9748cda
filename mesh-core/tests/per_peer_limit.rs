//! A per-peer connection limit: one client address that holds idle
//! connections cannot keep another's requests waiting, its connections
//! past the limit are closed at once, and the server's own limit still
//! holds across peers.
//!
//! Each peer is a loopback address of its own (127.0.0.2 and so on are
//! local on Linux), the client socket bound to it before it connects.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::{body::Incoming, client::conn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{
    ConnectionLimit, PlaintextAccept, Protocol, Server, ServerConfig, shutdown,
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpSocket, TcpStream},
    time::Instant,
};

/// A connection from `peer`, an address of the loopback network.
async fn connect_from(peer: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(peer.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// An HTTP/1 connection from `peer`, answered once so that the server is
/// known to serve it; it is then idle, as a client's pooled connection is.
async fn idle_http1(peer: &str, addr: SocketAddr) -> conn::http1::SendRequest<Empty<Bytes>> {
    let mut send = http1(peer, addr).await.unwrap();
    assert_eq!(get(&mut send).await.unwrap(), StatusCode::OK);
    send
}

/// The same over HTTP/2: an idle HTTP/2 connection answers the server's
/// pings, so nothing but a limit ever closes it.
async fn idle_http2(peer: &str, addr: SocketAddr) -> conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TokioIo::new(connect_from(peer, addr).await);
    let (mut send, conn) = conn::http2::handshake(TokioExecutor::new(), tcp)
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = send.send_request(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    send
}

async fn http1(
    peer: &str,
    addr: SocketAddr,
) -> Result<conn::http1::SendRequest<Empty<Bytes>>, hyper::Error> {
    let tcp = TokioIo::new(connect_from(peer, addr).await);
    let (send, conn) = conn::http1::handshake(tcp).await?;
    tokio::spawn(conn.with_upgrades());
    Ok(send)
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("/ready")
        .header("host", "admin")
        .body(Empty::new())
        .unwrap()
}

async fn get(
    send: &mut conn::http1::SendRequest<Empty<Bytes>>,
) -> Result<StatusCode, hyper::Error> {
    send.ready().await?;
    Ok(send.send_request(request()).await?.status())
}

/// A probe from `peer` on a fresh connection, as the kubelet sends one.
async fn probe(peer: &str, addr: SocketAddr) -> Result<StatusCode, hyper::Error> {
    get(&mut http1(peer, addr).await?).await
}

/// Serves `ok` on a fresh listener, with `config`, each peer address
/// holding at most `per_peer` connections when it is given.
async fn serve(
    config: ServerConfig,
    per_peer: Option<usize>,
) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let (trigger, shutdown) = shutdown::channel();
    let config = ServerConfig {
        protocol: Protocol::Http,
        ..config
    };
    match per_peer {
        Some(max) => {
            let server =
                Server::new(config).with_accept(ConnectionLimit::per_peer(PlaintextAccept, max));
            tokio::spawn(server.serve_http(listener, http, shutdown));
        }
        None => {
            tokio::spawn(Server::new(config).serve_http(listener, http, shutdown));
        }
    }
    (addr, trigger)
}

/// Whether the server closed `tcp` without answering: its read ends, or
/// fails, with nothing read.
async fn closed_unanswered(mut tcp: TcpStream) -> bool {
    let mut buf = [0; 64];
    matches!(tcp.read(&mut buf).await, Ok(0) | Err(_))
}

#[tokio::test(start_paused = true)]
async fn a_peer_holding_its_limit_leaves_the_others_probes_answered_at_once() {
    // Three places; one peer may hold two of them, idle, on either
    // protocol. Were it allowed the third, a probe would wait for one of
    // them to close: a minute for an idle HTTP/1 connection, never for an
    // HTTP/2 one that answers pings.
    let limit = ConnectionLimit::new(3);
    let config = ServerConfig {
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    let (addr, trigger) = serve(config, Some(2)).await;
    let _held_1 = idle_http1("127.0.0.1", addr).await;
    let _held_2 = idle_http2("127.0.0.1", addr).await;
    assert_eq!(limit.available(), 1);

    // Its third connection is closed at once, before anything is read
    // from it: not after the detection timeout, and not left waiting.
    let start = Instant::now();
    let extra = connect_from("127.0.0.1", addr).await;
    assert!(closed_unanswered(extra).await);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(
        probe("127.0.0.1", addr).await.is_err(),
        "the peer had a request answered past its limit"
    );

    // Another address is answered at once, on the place the refused
    // connections gave back.
    let start = Instant::now();
    assert_eq!(probe("127.0.0.2", addr).await.unwrap(), StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Its connection closed with the probe's end; the held ones stay.
    while limit.available() != 1 {
        tokio::task::yield_now().await;
    }
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn without_a_per_peer_limit_one_peer_starves_the_probes() {
    // The same server with no per-peer limit: the peer takes every place
    // and a probe from elsewhere waits. What the limit above prevents.
    let config = ServerConfig {
        max_connections: 3,
        ..ServerConfig::default()
    };
    let (addr, trigger) = serve(config, None).await;
    let _held_1 = idle_http1("127.0.0.1", addr).await;
    let _held_2 = idle_http2("127.0.0.1", addr).await;
    let _held_3 = idle_http2("127.0.0.1", addr).await;
    // Within the idle HTTP/1 connection's minute, the probe is not
    // answered.
    let waited = tokio::time::timeout(Duration::from_secs(30), probe("127.0.0.2", addr)).await;
    assert!(waited.is_err(), "answered: {waited:?}");
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn a_peer_gets_a_place_back_when_one_of_its_connections_closes() {
    let (addr, trigger) = serve(ServerConfig::default(), Some(1)).await;
    let held = idle_http1("127.0.0.1", addr).await;
    assert!(probe("127.0.0.1", addr).await.is_err());

    // Once the server has seen the close, the peer is served again.
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(status) = probe("127.0.0.1", addr).await {
            assert_eq!(status, StatusCode::OK);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "the peer's closed connection kept its place");
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn the_servers_own_limit_still_holds_across_peers() {
    // Two places, one a peer: two peers fill them, and a third waits
    // (it is not refused) until one of theirs closes.
    let limit = ConnectionLimit::new(2);
    let config = ServerConfig {
        shared_limit: Some(limit.clone()),
        ..ServerConfig::default()
    };
    let (addr, trigger) = serve(config, Some(1)).await;
    let _a = idle_http2("127.0.0.1", addr).await;
    let b = idle_http2("127.0.0.2", addr).await;
    assert_eq!(limit.available(), 0);

    let waiting = tokio::spawn(probe("127.0.0.3", addr));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!waiting.is_finished(), "served past the server's limit");

    drop(b);
    assert_eq!(waiting.await.unwrap().unwrap(), StatusCode::OK);
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_zero_is_one() {
    let (addr, trigger) = serve(ServerConfig::default(), Some(0)).await;
    let _held = idle_http1("127.0.0.1", addr).await;
    assert!(probe("127.0.0.1", addr).await.is_err());
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn a_connect_tunnel_keeps_its_peers_place() {
    // Once a CONNECT is answered the connection's task ends and the
    // tunnel holds the socket: its place under the peer's limit goes with
    // it, or a peer could hold any number of tunnels.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnel = tower::service_fn(|mut req: Request<Incoming>| async move {
        tokio::spawn(async move {
            let upgraded = hyper::upgrade::on(&mut req).await.unwrap();
            let mut io = TokioIo::new(upgraded);
            let (mut read, mut write) = tokio::io::split(&mut io);
            let _ = tokio::io::copy(&mut read, &mut write).await;
        });
        Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
    });
    let hook = ConnectionLimit::per_peer(PlaintextAccept, 1);
    let (trigger, shutdown) = shutdown::channel();
    let server = Server::new(ServerConfig::default()).with_accept(hook.clone());
    tokio::spawn(server.serve_http(listener, tunnel, shutdown));

    let mut send = http1("127.0.0.1", addr).await.unwrap();
    let connect = Request::connect("b:443")
        .header("host", "b:443")
        .body(Empty::new())
        .unwrap();
    let res = send.send_request(connect).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut io = TokioIo::new(hyper::upgrade::on(res).await.unwrap());
    tokio::io::AsyncWriteExt::write_all(&mut io, b"ping")
        .await
        .unwrap();
    let mut echoed = [0; 4];
    io.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    let peer = "127.0.0.1".parse().unwrap();
    assert_eq!(hook.open(peer), 1);
    assert!(probe("127.0.0.1", addr).await.is_err());
    assert_eq!(hook.refused(), 1);

    drop(io);
    while hook.open(peer) != 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    trigger.trigger();
}
