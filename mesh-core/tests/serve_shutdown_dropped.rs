//! A server whose shutdown trigger is dropped without firing stops, as a
//! fired one would (the sidecar lets its admin server stop that way), and
//! says why: `let (_, signal) = shutdown::channel()` gives a server that
//! returns at once, and without a word it looks like one that never
//! started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{answer::answering, log_capture::Logs};

use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The warning a server logs when its trigger was dropped unfired.
const DROPPED: &str = "shutting down: every ShutdownTrigger";

#[tokio::test]
async fn a_server_whose_trigger_is_dropped_at_once_says_why_it_stops() {
    let (logs, _guard) = Logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, signal) = shutdown::channel();
    Server::new(ServerConfig::default())
        .serve_http(listener, answering("hello"), signal)
        .await;
    let warned = logs.find_at(tracing::Level::WARN, DROPPED);
    let [line] = warned.as_slice() else {
        panic!("one warning expected: {:?}", logs.all());
    };
    assert!(line.contains(&format!("listener={addr}")), "{line}");
    assert!(line.contains("shutdown::channel"), "{line}");
}

#[tokio::test]
async fn a_trigger_dropped_while_serving_is_named_too() {
    let (logs, _guard) = Logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let server = tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        listener,
        answering("hello"),
        signal,
    ));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.ends_with("hello"), "{answer}");
    assert!(logs.find(DROPPED).is_empty(), "{:?}", logs.all());

    drop(trigger);
    server.await.unwrap();
    let warned = logs.find_at(tracing::Level::WARN, DROPPED);
    assert_eq!(warned.len(), 1, "{:?}", logs.all());
}

#[tokio::test]
async fn a_fired_trigger_stops_the_server_without_a_warning() {
    let (logs, _guard) = Logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (trigger, signal) = shutdown::channel();
    trigger.trigger();
    Server::new(ServerConfig::default())
        .serve_http(listener, answering("hello"), signal)
        .await;
    drop(trigger);
    let all = logs.all();
    assert!(all.iter().all(|line| !line.contains(DROPPED)), "{all:?}");
}
