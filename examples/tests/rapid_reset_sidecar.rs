//! A paced rapid reset (CVE-2023-44487) against the sidecar's listeners:
//! a client that opens a stream, waits until the application has its
//! request, resets it, and opens the next. The inbound listeners keep
//! mesh-core's premature-reset bound (half of a run of 500 streams reset
//! within a second of opening them): past it the connection is sent
//! `GOAWAY`, and it counts in `inbound_tcp_errors_total` with
//! `error="i/o"`, as CONFIG.md says, whether the client then goes or
//! goes silent until a keep-alive ping goes unanswered. The outbound
//! listener turns the bound off: its client is the pod's own application,
//! whose calls with short deadlines would trip it during an upstream's
//! incident; its flood is bounded one hop on, by the upstream sidecar's
//! inbound listener, which its resets reach over this sidecar's own
//! connection. In ingress mode it keeps the bound, as its client relays
//! clients from outside the cluster, and counts the connection in
//! `outbound_tcp_errors_total`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use mesh_examples::sidecar::Running;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use support::*;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
/// `END_STREAM` on `HEADERS`; `ACK` on `SETTINGS` and `PING`.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// `RST_STREAM`'s `CANCEL`.
const CANCEL: u32 = 0x8;

/// The streams the bound lets a client reset within the lifetime before
/// it sends it away: half of mesh-core's run of 500.
const SERVED: usize = mesh_core::serve::HTTP2_PREMATURE_RESET_TOTAL_STREAMS as usize / 2;

/// One frame: its 9-byte head, then `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = len[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `GET http://{authority}/hold`, HPACK-coded without indexing: the
/// backend holds it until its gate is released.
fn hold(authority: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 5];
    block.extend_from_slice(b"/hold");
    block.extend_from_slice(&[0x01, u8::try_from(authority.len()).unwrap()]);
    block.extend_from_slice(authority.as_bytes());
    block
}

/// A raw HTTP/2 client that answers the sidecar's pings and settings.
struct Client {
    tcp: TcpStream,
    pings: u64,
    /// Whether the sidecar has sent `GOAWAY`.
    gone_away: bool,
    /// Whether to answer nothing once it has.
    silent_after_goaway: bool,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut hello = mesh_core::detect::H2_PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        tcp.write_all(&hello).await.unwrap();
        Self {
            tcp,
            pings: 0,
            gone_away: false,
            silent_after_goaway: false,
        }
    }

    /// Sends `bytes` and a ping, and reads up to the ping's answer:
    /// `None` when the connection closed first.
    async fn round_trip(&mut self, mut bytes: Vec<u8>) -> Option<()> {
        self.pings += 1;
        let payload = self.pings.to_be_bytes();
        bytes.extend(frame(PING, 0, 0, &payload));
        self.tcp.write_all(&bytes).await.ok()?;
        let read = tokio::time::timeout(WAIT_BOUND, self.read_until_ping(payload));
        read.await
            .expect("neither the ping's answer nor the end came")
    }

    async fn read_until_ping(&mut self, payload: [u8; 8]) -> Option<()> {
        loop {
            let (kind, flags, body) = self.read_frame().await?;
            if kind == PING && flags & ACK != 0 && body == payload {
                return Some(());
            }
        }
    }

    /// Reads one frame, answering a ping or settings: `None` at the end.
    async fn read_frame(&mut self) -> Option<(u8, u8, Vec<u8>)> {
        let mut head = [0; 9];
        self.tcp.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut body = vec![0; len];
        self.tcp.read_exact(&mut body).await.ok()?;
        let (kind, flags) = (head[3], head[4]);
        let silent = self.gone_away && self.silent_after_goaway;
        let answer = match kind {
            _ if silent => None,
            PING if flags & ACK == 0 => Some(frame(PING, ACK, 0, &body)),
            SETTINGS if flags & ACK == 0 => Some(frame(SETTINGS, ACK, 0, &[])),
            GOAWAY => {
                self.gone_away = true;
                None
            }
            _ => None,
        };
        if let Some(answer) = answer {
            // The sidecar may have closed its side already.
            let _ = self.tcp.write_all(&answer).await;
        }
        Some((kind, flags, body))
    }

    /// Reads on, answering pings, until the sidecar closes the connection.
    async fn until_closed(&mut self) {
        let closed = tokio::time::timeout(WAIT_BOUND, async {
            while self.read_frame().await.is_some() {}
        });
        closed.await.expect("the connection stayed open");
    }
}

/// Floods `client` with streams of `block`, each reset once `gate` says
/// the backend has its request, until the sidecar sends `GOAWAY`: how
/// many were served.
async fn flood(client: &mut Client, gate: &Gate, block: &[u8]) -> usize {
    let mut served = 0;
    for stream in (1..).step_by(2).take(2 * SERVED) {
        let open = frame(HEADERS, END_HEADERS | END_STREAM, stream, block);
        client.tcp.write_all(&open).await.unwrap();
        let arrived = tokio::time::timeout(WAIT_BOUND, gate.arrived.notified());
        arrived.await.expect("the backend never had the request");
        served += 1;
        let reset = frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes());
        // Two round trips: a GOAWAY sent for the reset may follow the
        // answer to the first ping.
        client.round_trip(reset).await.unwrap();
        client.round_trip(Vec::new()).await.unwrap();
        if client.gone_away {
            break;
        }
    }
    served
}

/// The `target_*` labels of `addr`, as Linkerd writes them.
fn target(addr: SocketAddr) -> String {
    format!(
        "target_addr=\"{addr}\",target_ip=\"{}\",target_port=\"{}\"",
        addr.ip(),
        addr.port()
    )
}

/// A sidecar whose inbound port serves HTTP to `backend`, and whose
/// outbound service `web.ns.svc` is `backend` too.
fn sidecar_of(backend: SocketAddr) -> Running {
    sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {backend}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: web.ns.svc\n      endpoints: [{backend}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ))
}

#[tokio::test]
async fn an_inbound_client_sent_away_for_a_paced_flood_is_an_inbound_io_error() {
    let (backend, gate) = backend().await;
    let sidecar = sidecar_of(backend);
    let mut client = Client::connect(sidecar.inbound[0]).await;
    let served = flood(&mut client, &gate, &hold("web")).await;
    assert_eq!(served, SERVED, "streams served before the GOAWAY");
    // The client takes its GOAWAY and goes: no stream is open, so the
    // sidecar closes the connection once its last ping is answered.
    client.until_closed().await;
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"i/o\",{}}} 1\n",
        target(SocketAddr::new(sidecar.inbound[0].ip(), backend.port()))
    );
    let metrics = scrape_until(sidecar.admin, |m| m.contains(&expected)).await;
    assert!(metrics.contains(&expected), "{metrics}");
    assert_eq!(
        series(&metrics, "inbound_tcp_errors_total", &[]),
        1,
        "{metrics}"
    );
    assert!(!metrics.contains("outbound_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn an_outbound_paced_flood_is_served_in_full_and_never_sent_away() {
    // The application's own client, resetting every call within a second
    // (a gRPC channel whose deadlines all pass during an upstream's
    // incident): twice the streams the inbound bound lets through, each
    // one served, and no GOAWAY.
    let (backend, gate) = backend().await;
    let sidecar = sidecar_of(backend);
    let mut client = Client::connect(sidecar.outbound).await;
    let block = hold("web.ns.svc:8080");
    let served = flood(&mut client, &gate, &block).await;
    assert_eq!(served, 2 * SERVED, "streams served");
    assert!(!client.gone_away, "sent GOAWAY");
    // The connection still takes streams.
    let next = u32::try_from(2 * served + 1).unwrap();
    let open = frame(HEADERS, END_HEADERS | END_STREAM, next, &block);
    client.tcp.write_all(&open).await.unwrap();
    let arrived = tokio::time::timeout(WAIT_BOUND, gate.arrived.notified());
    arrived
        .await
        .expect("the backend never had the next request");
    let reset = frame(RST_STREAM, 0, next, &CANCEL.to_be_bytes());
    client.round_trip(reset).await.unwrap();
    assert!(!client.gone_away, "sent GOAWAY");
    drop(client);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_ingress_controllers_paced_flood_is_sent_away_and_an_outbound_io_error() {
    // In ingress mode the outbound listener's client relays clients from
    // outside the cluster, whose resets it passes on: the bound applies,
    // as on the inbound listeners.
    let (backend, gate) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: true\n  services:\n\
         \x20   - name: web.ns.svc\n      endpoints: [{backend}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ));
    let mut client = Client::connect(sidecar.outbound).await;
    let served = flood(&mut client, &gate, &hold("web.ns.svc:8080")).await;
    assert_eq!(served, SERVED, "streams served before the GOAWAY");
    client.until_closed().await;
    // The address the ingress connected to, then the error.
    let expected = format!(
        "outbound_tcp_errors_total{{{},error=\"i/o\"}} 1\n",
        target(sidecar.outbound)
    );
    let metrics = scrape_until(sidecar.admin, |m| m.contains(&expected)).await;
    assert!(metrics.contains(&expected), "{metrics}");
    assert!(!metrics.contains("inbound_tcp_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn an_applications_paced_flood_is_sent_away_by_the_next_sidecars_inbound_listener() {
    // Unbounded at its own outbound listener, the application's flood
    // reaches the upstream's sidecar over this sidecar's connection to
    // it, resets and all: that sidecar's inbound listener bounds it.
    let (backend, gate) = backend().await;
    let upstream = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {backend}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    ));
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: web.ns.svc\n      endpoints: [{}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n",
        upstream.inbound[0]
    ));
    let mut client = Client::connect(sidecar.outbound).await;
    let served = flood(&mut client, &gate, &hold("web.ns.svc:8080")).await;
    assert_eq!(served, 2 * SERVED, "streams served");
    assert!(!client.gone_away, "sent GOAWAY");
    let metrics = scrape_until(upstream.admin, |m| {
        m.contains("inbound_tcp_errors_total{error=\"i/o\"")
    })
    .await;
    // Once per connection this sidecar opened to it: each is sent away
    // after half a run.
    assert!(
        series(&metrics, "inbound_tcp_errors_total", &["error=\"i/o\""]) >= 1,
        "{metrics}"
    );
    drop(client);
    stop(sidecar).await;
    stop(upstream).await;
}

#[tokio::test]
async fn a_client_that_goes_silent_after_the_goaway_is_an_inbound_io_error_too() {
    // It answers nothing once sent away, and holds the socket open: the
    // sidecar closes it when its keep-alive ping goes unanswered.
    let (backend, gate) = backend().await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {backend}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  http2_keep_alive_interval: 200ms\n  \
         http2_keep_alive_timeout: 1s\n"
    ));
    let mut client = Client::connect(sidecar.inbound[0]).await;
    client.silent_after_goaway = true;
    let served = flood(&mut client, &gate, &hold("web")).await;
    assert_eq!(served, SERVED, "streams served before the GOAWAY");
    let expected = format!(
        "inbound_tcp_errors_total{{error=\"i/o\",{}}} 1\n",
        target(SocketAddr::new(sidecar.inbound[0].ip(), backend.port()))
    );
    let metrics = scrape_until(sidecar.admin, |m| m.contains("inbound_tcp_errors_total{")).await;
    assert!(metrics.contains(&expected), "{metrics}");
    drop(client);
    stop(sidecar).await;
}
