//! HTTP/2 upstreams that fail the first request they read, in a way that
//! does or does not prove they did not process it, and answer every later
//! request `200`. Each keeps the request bodies it read, the failed one
//! included, in order.
//!
//! mesh-retry's tests of retrying such requests use these same upstreams.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

/// How an upstream fails the first request, always after reading it whole,
/// so that its client has sent every byte of the body by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// Resets its stream with `REFUSED_STREAM`: not processed (RFC 9113
    /// §8.7). Later requests come on the same connection.
    Refused,
    /// Resets its stream with `INTERNAL_ERROR`: processed, then failed.
    Reset,
    /// Sends a `GOAWAY` with `NO_ERROR` whose last stream id, 0, is below
    /// the request's, then closes the connection: not processed.
    GoAway,
    /// Sends a `GOAWAY` with `INTERNAL_ERROR` whose last stream id is the
    /// request's, then closes the connection: it may have been processed.
    GoAwayAfter,
    /// Closes the connection: it may have been processed.
    Close,
    /// Resets its stream with `REFUSED_STREAM` as soon as its headers
    /// arrive, reading none of its body (kept as empty), and then wakes
    /// [`Upstream::refused`]: the client may still be sending the body.
    RefusedAtOnce,
}

/// An upstream on 127.0.0.1; see the module docs.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    bodies: Bodies,
    /// Woken when [`First::RefusedAtOnce`] has refused the first request.
    pub(crate) refused: Arc<Notify>,
}

type Bodies = Arc<Mutex<Vec<Bytes>>>;

impl Upstream {
    /// Every request body read so far, in order.
    pub(crate) fn bodies(&self) -> Vec<Bytes> {
        self.bodies.lock().unwrap().clone()
    }
}

/// An upstream that fails its first request as `first` says. A `GOAWAY`
/// or a closed connection ends the first connection; later ones are served
/// by the h2 crate's server.
pub(crate) async fn upstream(first: First) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Bodies::default();
    let kept = bodies.clone();
    let refused = Arc::new(Notify::new());
    let on_refusal = refused.clone();
    tokio::spawn(async move {
        let mut connections = 0;
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let by_hand = matches!(first, First::GoAway | First::GoAwayAfter | First::Close);
            if connections == 0 && by_hand {
                tokio::spawn(fail_connection(tcp, first, kept.clone()));
            } else {
                tokio::spawn(serve(tcp, first, kept.clone(), on_refusal.clone()));
            }
            connections += 1;
        }
    });
    Upstream {
        addr,
        bodies,
        refused,
    }
}

/// Keeps `body`, and returns its index among the bodies kept.
fn keep(bodies: &Bodies, body: Bytes) -> usize {
    let mut bodies = bodies.lock().unwrap();
    bodies.push(body);
    bodies.len() - 1
}

/// Serves a connection with the h2 crate's server, failing the first
/// request of all as [`First::Refused`] or [`First::Reset`] say.
async fn serve(tcp: TcpStream, first: First, bodies: Bodies, refused: Arc<Notify>) {
    let Ok(mut conn) = h2::server::handshake(tcp).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        if first == First::RefusedAtOnce && bodies.lock().unwrap().is_empty() {
            keep(&bodies, Bytes::new());
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            drop(req);
            refused.notify_one();
            continue;
        }
        tokio::spawn(answer(req, respond, first, bodies.clone()));
    }
}

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    first: First,
    bodies: Bodies,
) {
    let mut body = req.into_body();
    let mut read = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        read.extend_from_slice(&chunk);
    }
    let index = keep(&bodies, read.freeze());
    match first {
        First::Refused if index == 0 => respond.send_reset(h2::Reason::REFUSED_STREAM),
        First::Reset if index == 0 => respond.send_reset(h2::Reason::INTERNAL_ERROR),
        _ => {
            let _ = respond.send_response(http::Response::new(()), true);
        }
    }
}

/// HTTP/2 frame types and flags (RFC 9113, section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
/// Error codes (RFC 9113, section 7).
const NO_ERROR: u32 = 0x0;
const INTERNAL_ERROR: u32 = 0x2;

/// Appends one frame to `out`.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Speaks HTTP/2 by hand on the first connection, to fail its first
/// request with a `GOAWAY` whose last stream id the h2 crate's server
/// would not choose, or with the connection's end.
async fn fail_connection(mut tcp: TcpStream, first: First, bodies: Bodies) {
    let mut preface = [0; 24];
    if tcp.read_exact(&mut preface).await.is_err() {
        return;
    }
    let mut out = Vec::new();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    if tcp.write_all(&out).await.is_err() {
        return;
    }
    let mut body = BytesMut::new();
    let stream = loop {
        let mut head = [0; 9];
        if tcp.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            return;
        }
        match kind {
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                if tcp.write_all(&ack).await.is_err() {
                    return;
                }
            }
            // hyper's client pads no frame.
            DATA => body.extend_from_slice(&payload),
            _ => {}
        }
        if matches!(kind, DATA | HEADERS) && flags & END_STREAM != 0 {
            break stream;
        }
    };
    keep(&bodies, body.freeze());
    let goaway = match first {
        First::GoAway => Some((0, NO_ERROR)),
        First::GoAwayAfter => Some((stream, INTERNAL_ERROR)),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some((last, code)) = goaway {
        let mut payload = last.to_be_bytes().to_vec();
        payload.extend_from_slice(&code.to_be_bytes());
        frame(&mut out, GOAWAY, 0, 0, &payload);
    }
    let _ = tcp.write_all(&out).await;
    let _ = tcp.shutdown().await;
    // Read whatever the client still sends until it closes too: a socket
    // closed over unread bytes sends a reset, which could overtake the
    // GOAWAY.
    let mut sink = [0; 1024];
    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
}
