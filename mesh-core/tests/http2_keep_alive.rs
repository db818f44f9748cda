//! `ServerConfig::http2_keep_alive_interval` at zero. A zero interval
//! read literally pings again as soon as each ping is answered: one ping
//! per round trip, for as long as the connection lives, on every HTTP/2
//! connection, which burns CPU on both ends to learn nothing. Zero is
//! read as Envoy reads a zero interval or timeout, and as
//! `stream_idle_timeout` reads one here: off.
#![allow(clippy::unwrap_used)]

use crate::support::h2_frames;

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    detect::H2_PREFACE,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use self::h2_frames::{ACK, PING, SETTINGS, frame};

/// How many pings the server sends in its connection's first second,
/// by the paused clock, to a client that answers each at once.
async fn pings_in_a_second(config: ServerConfig) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
    });
    let (_trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(config).serve_http(listener, http, signal));
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let mut open = H2_PREFACE.to_vec();
    frame(&mut open, SETTINGS, 0, 0, &[]);
    conn.write_all(&open).await.unwrap();
    tokio::time::pause();
    let mut pings = 0;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // A storm is stopped short: a thousand is enough to tell.
        while pings < 1000 {
            let mut head = [0; 9];
            conn.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            conn.read_exact(&mut payload).await.unwrap();
            let mut answer = Vec::new();
            match (head[3], head[4] & ACK) {
                (PING, 0) => {
                    pings += 1;
                    frame(&mut answer, PING, ACK, 0, &payload);
                }
                (SETTINGS, 0) => frame(&mut answer, SETTINGS, ACK, 0, &[]),
                _ => {}
            }
            conn.write_all(&answer).await.unwrap();
        }
    })
    .await;
    tokio::time::resume();
    pings
}

#[tokio::test]
async fn a_zero_keep_alive_interval_never_pings() {
    let zero = ServerConfig {
        http2_keep_alive_interval: Some(Duration::ZERO),
        ..ServerConfig::default()
    };
    assert_eq!(pings_in_a_second(zero).await, 0);
}

#[tokio::test]
async fn a_keep_alive_interval_pings_once_per_interval() {
    let half = ServerConfig {
        http2_keep_alive_interval: Some(Duration::from_millis(400)),
        ..ServerConfig::default()
    };
    assert_eq!(pings_in_a_second(half).await, 2);
}
