//! `--admin` lists admin servers as replicas of workloads. One listed
//! twice under its name is one replica, scraped once per scrape, not
//! counted twice; one listed under two names is refused, since its traffic
//! would count in both rows. And how the views that run on (`top`, `tap`)
//! write into a pipe: no terminal codes, and a quiet end once the pipe's
//! reader has gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::Response;
use mesh_examples::sidecar::views::{self, ViewError};
use mesh_metrics::query::Format;
use serde_json::Value;
use support::{full, refused_addr, serve};

/// An admin server whose inbound success counter grows by 100 at each
/// scrape, and the count of its scrapes.
async fn admin() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let scrapes = Arc::new(AtomicUsize::new(0));
    let counted = scrapes.clone();
    serve(listener, move |_req| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let body = format!(
                "response_total{{direction=\"inbound\",tls=\"true\",classification=\"success\"}} {}\n",
                100 * n
            );
            Ok(Response::new(full(body)))
        }
    });
    (addr, scrapes)
}

#[tokio::test]
async fn an_admin_server_listed_twice_under_its_name_is_one_replica() {
    let (addr, scrapes) = admin().await;
    let list = format!("web={addr},web={addr}, web={addr}");
    let json = views::stat(&list, Duration::from_millis(20), Format::Json)
        .await
        .unwrap();
    let rows: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(rows[0]["replicas"], 1, "{json}");
    assert_eq!(rows[0]["meshed"], 1, "{json}");
    // Once before the window and once after.
    assert_eq!(scrapes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_admin_server_under_two_names_is_refused_before_any_scrape() {
    let addr = refused_addr().await;
    for view in ["stat", "edges"] {
        let list = format!("web={addr},vote=127.0.0.1:1,vote={addr}");
        let window = Duration::from_millis(10);
        let error = match view {
            "stat" => views::stat(&list, window, Format::Table).await,
            _ => views::edges(&list, window, Format::Table).await,
        }
        .unwrap_err();
        assert!(
            matches!(&error, ViewError::TwoNames { first, second, .. } if first == "web" && second == "vote"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "--admin: {addr} is named both web and vote: one admin server is one replica of one workload"
            )
        );
    }
    // An address alone is named after itself.
    let error = views::stat(
        &format!("{addr},web={addr}"),
        Duration::from_millis(10),
        Format::Json,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ViewError::TwoNames { .. }), "{error:?}");
}

#[tokio::test]
async fn top_into_a_pipe_writes_frames_one_after_another_without_terminal_codes() {
    // Into a file or a pipe (`sidecar top ... | tee`, a log), the
    // sequence that clears a terminal is noise: each frame follows the
    // one before instead.
    let (addr, _) = admin().await;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::sidecar_binary())
            .args(["top", "--admin", &format!("web={addr}")])
            .args(["--interval", "20ms", "--frames", "2"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(text.matches("mesh top: the last ").count(), 2, "{text}");
    assert!(text.starts_with("mesh top: the last "), "{text}");
    assert!(text.contains("\n\nmesh top: the last "), "{text}");
}

#[tokio::test]
async fn top_ends_quietly_when_its_reader_goes_away() {
    // `sidecar top -o json | head -1`: once the reader has what it wants
    // and closes the pipe, the view has no one to draw for. It ends as
    // a pipeline's writer does, without an error of its own.
    let (addr, _) = admin().await;
    let out = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(support::sidecar_binary())
            .args(["top", "--admin", &format!("web={addr}")])
            .args(["--interval", "20ms", "-o", "json"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with('{'), "{first}");
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert_eq!(stderr, "");
}

/// Output whose reader has gone: every write fails as a closed pipe does.
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tap_ends_quietly_when_its_reader_goes_away() {
    // `sidecar tap | head -3`, as `sidecar top` does.
    let app = support::ok_app(false).await;
    let sidecar = support::sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let (inbound, admin) = (sidecar.inbound[0], sidecar.admin.to_string());
    let client = support::http1();
    let filter = mesh_metrics::tap::TapFilter::default();
    let mut out = ClosedPipe;
    {
        let tap = views::tap(&mut out, &admin, &filter, Format::Table, None);
        tokio::pin!(tap);
        let mut sent = 0;
        loop {
            let req = http::Request::get(format!("http://{inbound}/"))
                .body(support::full(""))
                .unwrap();
            tokio::select! {
                result = &mut tap => {
                    assert!(result.is_ok(), "{result:?}");
                    break;
                }
                res = client.request(req) => {
                    support::body_bytes(res.unwrap()).await;
                    sent += 1;
                    assert!(sent < 5_000, "the tap saw nothing in 5,000 requests");
                }
            }
        }
    }
    support::stop(sidecar).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_into_a_pipe_whose_reader_has_gone_ends_quietly() {
    // `sidecar stat ... | head -0`: the reader is gone before the table is
    // written. The binary itself, since the write is its own.
    let (admin, _) = admin().await;
    let output = tokio::task::spawn_blocking(move || {
        use std::process::Stdio;
        let mut child = std::process::Command::new(support::sidecar_binary())
            .args([
                "stat",
                "--admin",
                &format!("web={admin}"),
                "--window",
                "100ms",
            ])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
