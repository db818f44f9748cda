//! `sidecar tap`: the requests through a running sidecar, inbound and
//! outbound, as `linkerd viz tap` shows them, read from its admin port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, num::NonZeroUsize};

use http::{Request, StatusCode};
use mesh_examples::sidecar::views::{self, ViewError};
use mesh_metrics::{
    Direction,
    query::Format,
    tap::{TapEvent, TapEventKind, TapFilter},
};
use support::*;

/// A sidecar whose inbound side forwards to `app`, and whose outbound
/// side knows the service `web` at `app`.
fn config(app: SocketAddr) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n"
    )
}

/// Taps `admin` with `filter` until `count` requests have ended, sending
/// `request()` again and again meanwhile (the tap opens at some point
/// after the first few), and returns what `sidecar tap` printed.
async fn tap_while_sending<F, Fut>(
    admin: SocketAddr,
    filter: &TapFilter,
    format: Format,
    count: usize,
    request: F,
) -> String
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut out = Vec::new();
    let admin = admin.to_string();
    let count = NonZeroUsize::new(count);
    {
        let tap = views::tap(&mut out, &admin, filter, format, count);
        tokio::pin!(tap);
        let mut sent = 0;
        loop {
            tokio::select! {
                result = &mut tap => {
                    result.unwrap();
                    break;
                }
                () = request() => {
                    sent += 1;
                    assert!(sent < 5_000, "the tap saw nothing in 5,000 requests");
                }
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn tap_shows_inbound_requests_their_status_and_their_length() {
    let sidecar = sidecar(&config(ok_app(false).await));
    let inbound = sidecar.inbound[0];
    let client = http1();
    let send = || async {
        let req = Request::get(format!("http://{inbound}/api/list?x=1"))
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        body_bytes(res).await;
    };
    let filter = TapFilter {
        path: Some("/api".into()),
        ..TapFilter::default()
    };
    let printed = tap_while_sending(sidecar.admin, &filter, Format::Table, 1, send).await;

    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    let fields = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let (req, rsp, end) = (fields(lines[0]), fields(lines[1]), fields(lines[2]));
    assert_eq!(req[0], "req");
    assert_eq!(rsp[0], "rsp");
    assert_eq!(end[0], "end");
    // The same request, inbound, from the client to the inbound listener.
    let head = &req[1..6];
    assert_eq!(&rsp[1..6], head, "{printed}");
    assert_eq!(&end[1..6], head, "{printed}");
    assert_eq!(head[1..3], ["proxy=in", ""], "{printed}");
    assert!(head[3].starts_with("src=127.0.0.1:"), "{printed}");
    assert_eq!(head[4], format!("dst={inbound}"));
    assert!(req[5 + 1].starts_with("tls="), "{printed}");
    assert!(
        lines[0].ends_with(&format!(
            " :method=GET :authority={inbound} :path=/api/list"
        )),
        "{printed}"
    );
    assert_eq!(rsp[7], ":status=200", "{printed}");
    assert!(rsp[8].starts_with("latency="), "{printed}");
    assert!(lines[2].ends_with(" response-length=2B"), "{printed}");
    stop(sidecar).await;
}

#[tokio::test]
async fn tap_shows_outbound_requests_as_json_and_filters_by_authority() {
    let sidecar = sidecar(&config(ok_app(false).await));
    let outbound = sidecar.outbound;
    let client = http1();
    let send = || async {
        for host in ["web", "nope"] {
            let req = Request::get(format!("http://{outbound}/vote"))
                .header("host", host)
                .body(full(""))
                .unwrap();
            body_bytes(client.request(req).await.unwrap()).await;
        }
    };
    let filter = TapFilter {
        direction: Some(Direction::Outbound),
        authority: Some("web".into()),
        ..TapFilter::default()
    };
    let printed = tap_while_sending(sidecar.admin, &filter, Format::Json, 2, send).await;

    let events: Vec<TapEvent> = printed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.len() >= 6, "{printed}");
    for event in &events {
        assert_eq!(event.dst, "web", "only `web`, never `nope`: {printed}");
        assert_eq!(event.tls, None);
    }
    let ends = events
        .iter()
        .filter(|e| {
            matches!(
                &e.kind,
                TapEventKind::End {
                    error: None,
                    response_bytes: 2,
                    ..
                }
            )
        })
        .count();
    assert_eq!(ends, 2, "{printed}");
    stop(sidecar).await;
}

#[tokio::test]
async fn a_tap_the_sidecar_refuses_says_why() {
    let sidecar = sidecar(&config(ok_app(false).await));
    let filter = TapFilter {
        max_rps: 0,
        ..TapFilter::default()
    };
    let mut out = Vec::new();
    let admin = sidecar.admin.to_string();
    let error = views::tap(&mut out, &admin, &filter, Format::Table, None)
        .await
        .unwrap_err();
    assert!(matches!(error, ViewError::Tap(_)), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.contains("refused the tap: 400 tap query parameter `max_rps`"),
        "{shown}"
    );
    stop(sidecar).await;
}

/// The head of the admin server's answer to `GET path` on a connection of
/// its own, which is returned still open.
async fn open_get(admin: SocketAddr, path: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(admin).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {admin}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if conn.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (conn, String::from_utf8(head).unwrap())
}

#[tokio::test]
async fn a_tap_past_the_limit_is_told_so_and_loopback_can_still_ask_for_metrics() {
    // Every tap comes from loopback, and the admin server gives one peer
    // address a share of its connections: with as many taps allowed as
    // that share, the taps filled it, the hub's 503 for one more could
    // never be sent, and `sidecar stat` from inside the pod was shut out.
    let sidecar = sidecar(&config(ok_app(false).await));
    let mut taps = Vec::new();
    for _ in 0..mesh_metrics::tap::MAX_TAPS {
        let (conn, head) = open_get(sidecar.admin, "/tap").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        taps.push(conn);
    }
    let (_refused, head) = open_get(sidecar.admin, "/tap").await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let (_metrics, head) = open_get(sidecar.admin, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(taps);
    stop(sidecar).await;
}

#[test]
fn a_bad_flag_is_named_as_the_flag_the_user_typed() {
    // Checked before connecting: nothing listens on port 1.
    let output = support::sidecar_cli(&["tap", "--admin", "127.0.0.1:1", "--path", "/%61pi"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: --path: requests are matched by their path in normal form"),
        "{stderr}"
    );
    assert!(!stderr.contains("query parameter"), "{stderr}");

    let output = support::sidecar_cli(&["tap", "--admin", "127.0.0.1:1", "--max-rps", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: --max-rps: "), "{stderr}");
}
