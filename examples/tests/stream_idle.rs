//! `server.stream_idle_timeout` reaches the sidecar's listeners: through
//! the inbound hop, a request whose application has not answered is
//! answered `408` once the stream has been quiet that long, a response
//! whose body stops is cut short, and a body that keeps trickling is
//! served whole. Unset (the default) or `0s`, nothing is cut.
//!
//! The sidecar runs its own runtimes, so these run in real time, with a
//! timeout of a second and margins of several times the trickle's pace.
//! One test runs the `sidecar` binary from its YAML file: a run limited to
//! this target (`--test stream_idle`) needs `cargo build -p mesh-examples
//! --example sidecar` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_examples::sidecar::config::SidecarConfig;
use support::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const TIMEOUT: Duration = Duration::from_secs(1);

fn yaml(app: std::net::SocketAddr, server: &str) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n{server}"
    )
}

/// Reads `conn` to its end, or for `limit`: the text, and whether it ended.
async fn read_all(conn: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut text = Vec::new();
    let ended = tokio::time::timeout(limit, conn.read_to_end(&mut text)).await;
    (String::from_utf8_lossy(&text).into_owned(), ended.is_ok())
}

#[tokio::test]
async fn an_application_that_never_answers_gets_its_client_a_408() {
    let (app, _gate) = backend().await;
    let running = sidecar(&yaml(app, "  stream_idle_timeout: 1s\n"));
    let mut client = TcpStream::connect(running.inbound[0]).await.unwrap();
    client
        .write_all(b"GET /hold HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let (text, ended) = read_all(&mut client, TIMEOUT * 10).await;
    assert!(ended, "still open: {text}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains("mesh-error: stream idle timeout\r\n"),
        "{text}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_response_whose_body_stops_is_cut_short() {
    // `/echo` answers at once and streams the request body back, so the
    // response body stops where the request body does.
    let (app, _gate) = backend().await;
    let running = sidecar(&yaml(app, "  stream_idle_timeout: 1s\n"));
    let mut client = TcpStream::connect(running.inbound[0]).await.unwrap();
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n",
        )
        .await
        .unwrap();
    let (text, ended) = read_all(&mut client, TIMEOUT * 10).await;
    assert!(ended, "still open: {text}");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(
        text.contains("\r\n\r\n1\r\nx\r\n"),
        "the echo began: {text:?}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "ended as if complete: {text:?}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_body_that_keeps_trickling_is_served_whole() {
    let (app, _gate) = backend().await;
    let running = sidecar(&yaml(app, "  stream_idle_timeout: 2s\n"));
    let mut client = TcpStream::connect(running.inbound[0]).await.unwrap();
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    // Twelve chunks 200 ms apart: longer than the timeout in all, a tenth
    // of it between any two, so that a busy machine's late chunk is still
    // well within it.
    for _ in 0..12 {
        tokio::time::sleep(TIMEOUT / 5).await;
        client.write_all(b"1\r\nz\r\n").await.unwrap();
    }
    client.write_all(b"0\r\n\r\n").await.unwrap();
    let (text, ended) = read_all(&mut client, TIMEOUT * 10).await;
    assert!(ended, "still open: {text}");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert_eq!(text.matches("1\r\nz\r\n").count(), 12, "{text:?}");
    assert!(text.ends_with("0\r\n\r\n"), "{text:?}");
    stop(running).await;
}

#[tokio::test]
async fn unset_a_quiet_stream_lives_on() {
    let (app, gate) = backend().await;
    let running = sidecar(&yaml(app, ""));
    let mut client = TcpStream::connect(running.inbound[0]).await.unwrap();
    client
        .write_all(b"GET /hold HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    gate.arrived.notified().await;
    let (text, ended) = read_all(&mut client, TIMEOUT * 2).await;
    assert!(!ended && text.is_empty(), "answered or closed: {text}");
    gate.release.notify_one();
    let (text, ended) = read_all(&mut client, TIMEOUT * 10).await;
    assert!(ended, "still open: {text}");
    assert!(text.ends_with("held"), "{text}");
    stop(running).await;
}

#[test]
fn zero_or_nothing_leaves_it_off_and_a_duration_sets_it() {
    let app = "127.0.0.1:8080".parse().unwrap();
    let parse = |server: &str| {
        SidecarConfig::from_yaml(&yaml(app, server), "test.yaml")
            .unwrap()
            .server
            .stream_idle_timeout
    };
    assert_eq!(parse(""), None);
    assert_eq!(parse("  stream_idle_timeout: 0s\n"), None);
    assert_eq!(
        parse("  stream_idle_timeout: 5m\n"),
        Some(Duration::from_secs(300))
    );
}

#[tokio::test]
async fn the_binary_reads_it_from_its_file() {
    let (app, _gate) = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let inbound = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let config = dir.path().join("sidecar.yaml");
    let yaml = yaml(app, "  stream_idle_timeout: 1s\n").replace(
        "inbound:\n  listen: 127.0.0.1:0",
        &format!("inbound:\n  listen: {inbound}"),
    );
    std::fs::write(&config, yaml).unwrap();
    let mut child = std::process::Command::new(sidecar_binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "error")
        .spawn()
        .expect("the sidecar example is built: cargo build -p mesh-examples --example sidecar");
    let started = tokio::time::Instant::now();
    let mut client = loop {
        match TcpStream::connect(inbound).await {
            Ok(tcp) => break tcp,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the sidecar did not come up: {error}"),
        }
    };
    client
        .write_all(b"GET /hold HTTP/1.1\r\nhost: app\r\n\r\n")
        .await
        .unwrap();
    let (text, ended) = read_all(&mut client, TIMEOUT * 10).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ended, "still open: {text}");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.contains("mesh-error: stream idle timeout\r\n"),
        "{text}"
    );
}
