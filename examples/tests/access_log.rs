//! `inbound.access_log`: the sidecar binary writes a line per inbound
//! request to standard error, in Linkerd's Apache or JSON format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use http::{Request, StatusCode};
use support::*;
use tokio::sync::Notify;

/// The sidecar binary in front of an `ok` app, logging in `format`; its
/// standard error line by line, and its inbound address.
async fn start(dir: &tempfile::TempDir, format: &str) -> (Child, mpsc::Receiver<String>, String) {
    let app = ok_app(false).await;
    let inbound = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound: {{listen: {inbound}, app: {app}, protocol: http, access_log: {format}}}\n\
             outbound: {{listen: 127.0.0.1:0}}\nadmin: {{listen: 127.0.0.1:0}}\n"
        ),
    )
    .unwrap();
    // Only errors from the logs: what else is on standard error is the
    // access log.
    let (child, received) = run_logging(&config, "error");
    (child, received, inbound)
}

/// Sends GETs for `path` to `inbound` until one is answered (the sidecar
/// may still be starting), then one more with a trace id.
async fn send(inbound: &str, path: &str) {
    let client = http1();
    let started = tokio::time::Instant::now();
    loop {
        let req = Request::get(format!("http://{inbound}{path}"))
            .header("user-agent", "mesh-test")
            .header("x-request-id", "req-42")
            .body(full(""))
            .unwrap();
        match client.request(req).await {
            Ok(res) => {
                assert_eq!(res.status(), StatusCode::OK);
                body_bytes(res).await;
                return;
            }
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::task::yield_now().await;
            }
            Err(error) => panic!("the sidecar did not come up: {error}"),
        }
    }
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(20))
        .expect("a line of the access log")
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn each_inbound_request_is_a_line_in_apache_format() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, inbound) = start(&dir, "apache").await;
    send(&inbound, "/books?page=2").await;
    let line = next_line(&lines);
    // `127.0.0.1:PORT - - [TIMESTAMP] "GET /books?page=2 HTTP/1.1" 200`
    let (client, rest) = line.split_once(' ').unwrap();
    assert!(client.starts_with("127.0.0.1:"), "{line}");
    assert!(rest.starts_with("- - ["), "{line}");
    assert!(
        rest.ends_with("Z] \"GET /books?page=2 HTTP/1.1\" 200"),
        "{line}"
    );
    stop(child);
}

#[tokio::test]
async fn json_lines_carry_the_headers_linkerd_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, inbound) = start(&dir, "json").await;
    send(&inbound, "/books").await;
    let line = next_line(&lines);
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["method"], "GET", "{line}");
    assert_eq!(entry["uri"], "/books", "{line}");
    assert_eq!(entry["status"], 200, "{line}");
    assert_eq!(entry["client.id"], "-", "{line}");
    assert_eq!(entry["user_agent"], "mesh-test", "{line}");
    assert_eq!(entry["trace_id"], "req-42", "{line}");
    assert_eq!(entry["response_bytes"], "2", "{line}");
    assert_eq!(entry["host"], inbound.as_str(), "{line}");
    // Strings of nanoseconds, as Linkerd writes them; `status` a number.
    for field in ["total_ns", "processing_ns"] {
        let nanos: u64 = entry[field].as_str().unwrap().parse().unwrap();
        assert!(field == "processing_ns" || nanos > 0, "{line}");
    }
    assert!(entry["status"].is_u64(), "{line}");
    assert_eq!(entry["request_bytes"], "", "{line}");
    stop(child);
}

/// An application on 127.0.0.1:0 that answers `ok`, except `/slow`,
/// which it holds until `release` is notified; and the count of `/slow`
/// requests it has.
async fn holding_app() -> (SocketAddr, Arc<AtomicUsize>, Arc<Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (count, gate) = (arrived.clone(), release.clone());
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let (count, gate) = (count.clone(), gate.clone());
        async move {
            if req.uri().path() == "/slow" {
                let released = gate.notified();
                count.fetch_add(1, Ordering::SeqCst);
                released.await;
            }
            Ok(http::Response::new(full("ok")))
        }
    });
    (addr, arrived, release)
}

#[tokio::test]
async fn the_lines_of_requests_answered_while_draining_are_written_before_exit() {
    // Two runtimes, each with its own inbound listener, share one writer
    // on the first. Requests in flight at SIGTERM finish during the grace
    // period, on either runtime; a writer that ended with its runtime
    // lost the lines the other one logged after it.
    let dir = tempfile::tempdir().unwrap();
    let (app, arrived, release) = holding_app().await;
    let inbound = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound: {{listen: {inbound}, app: {app}, protocol: http, access_log: apache}}\n\
             outbound: {{listen: 127.0.0.1:0}}\nadmin: {{listen: 127.0.0.1:0}}\n\
             server: {{threads: 2}}\n"
        ),
    )
    .unwrap();
    let (child, lines) = run_logging(&config, "error");
    send(&inbound, "/ready").await;
    assert!(next_line(&lines).contains("/ready"));

    // Each on a connection of its own, so the kernel spreads them over
    // both runtimes' listeners; `/slow` is held in the app.
    const SLOW: usize = 8;
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            let req = Request::get(format!("http://{inbound}/slow"))
                .body(full(""))
                .unwrap();
            tokio::spawn(http1().request(req))
        })
        .collect();
    // Until the app has them all, however long a busy machine takes to
    // pass them on: each is in flight when the signal comes.
    tokio::time::timeout(Duration::from_secs(20), async {
        while arrived.load(Ordering::SeqCst) < SLOW {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the app did not get every /slow request");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // Answered once the sidecar has had time to begin draining.
    tokio::time::sleep(Duration::from_millis(400)).await;
    release.notify_waiters();
    for request in slow {
        let res = request.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK, "answered while draining");
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let logged: Vec<String> = lines.iter().collect();
    let answered = logged
        .iter()
        .filter(|l| l.contains("\"GET /slow HTTP/1.1\" 200"))
        .count();
    assert_eq!(
        answered,
        SLOW,
        "lines written before exit:\n{}",
        logged.join("\n")
    );
}

#[test]
fn an_unknown_format_is_refused_naming_the_field() {
    let error = mesh_examples::sidecar::config::SidecarConfig::from_yaml(
        "inbound: {app: 127.0.0.1:8080, access_log: yaml}\n",
        "sidecar.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("inbound.access_log"), "{error}");
    assert!(error.contains("apache or json"), "{error}");
}

/// Sends `head` as it is on a connection of its own, and returns the
/// status line of the answer.
async fn send_raw(inbound: &str, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(inbound).await.unwrap();
    tcp.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn what_a_client_sends_cannot_end_a_field_or_a_line() {
    // A request target with quotes and C1 controls (raw UTF-8), which
    // hyper takes in a path,
    // and headers with quotes and bytes that are not UTF-8: each request
    // is one line, whose fields say what was sent and no more.
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, inbound) = start(&dir, "apache").await;
    send(&inbound, "/ready").await;
    assert!(next_line(&lines).contains("/ready"));
    let status = send_raw(
        &inbound,
        b"GET /a\"%20200%20\"\xc2\x85b\xc2\x9b2J HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let line = next_line(&lines);
    assert!(
        line.ends_with(r#"] "GET /a\"%20200%20\"\xc2\x85b\xc2\x9b2J HTTP/1.1" 200"#),
        "{line:?}"
    );
    // Escaped quotes aside, the line's quotes are the two around the
    // request.
    assert_eq!(line.replace("\\\"", "").matches('"').count(), 2, "{line}");
    stop(child);

    let (child, lines, inbound) = start(&dir, "json").await;
    send(&inbound, "/ready").await;
    assert!(next_line(&lines).contains("/ready"));
    let status = send_raw(
        &inbound,
        b"GET /b HTTP/1.1\r\nhost: web\r\nuser-agent: ua\", \"status\": 999, \"x\": \"\r\n\
          x-request-id: caf\xe9\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let line = next_line(&lines);
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["status"], 200, "{line}");
    assert_eq!(
        entry["user_agent"], r#"ua", "status": 999, "x": ""#,
        "{line}"
    );
    // Not text: not logged, rather than logged as something it is not.
    assert_eq!(entry["trace_id"], "", "{line}");
    assert_eq!(entry["uri"], "/b", "{line}");
    stop(child);
}
