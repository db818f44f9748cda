//! Between two sidecars on mutual TLS, HTTP/1.1 requests travel as
//! HTTP/2 streams on one connection, and the application still gets
//! HTTP/1.1 with its `Host`, as between Linkerd's proxies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode, Version};
use mesh_examples::sidecar::certs;
use support::*;
use tokio::sync::watch;

const WEB: &str = "spiffe://example.org/ns/emojivoto/sa/web";
const EMOJI: &str = "spiffe://example.org/ns/emojivoto/sa/emoji";

/// How many requests are held in flight at once.
const IN_FLIGHT: usize = 8;

/// An application that answers each request with the version and `Host`
/// it got, once `release` says so; `arrived` counts the requests waiting.
async fn app(arrived: Arc<AtomicUsize>, release: watch::Receiver<bool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let (arrived, mut release) = (arrived.clone(), release.clone());
        async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            release.wait_for(|go| *go).await.unwrap();
            let host = req
                .headers()
                .get("host")
                .map(|h| h.to_str().unwrap().to_owned());
            let seen = format!("{:?} host={host:?}", req.version());
            Ok(Response::new(full(seen)))
        }
    });
    addr
}

/// Two sidecars: `web`'s calling `emoji`'s.
struct Pair {
    web: mesh_examples::sidecar::Running,
    emoji: mesh_examples::sidecar::Running,
}

/// `web`'s sidecar (one runtime, so one pool) calling `emoji`'s over
/// mutual TLS, with `http2_upgrade` as given (absent: the default).
fn pair(app: SocketAddr, http2_upgrade: Option<bool>) -> (Pair, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    let emoji_certs = dir.path().join("emoji");
    certs::issue(&ca, EMOJI, Duration::from_secs(3600), &emoji_certs).unwrap();
    let emoji = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  tls: strict\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        emoji_certs.display()
    ));
    let upgrade = http2_upgrade.map_or(String::new(), |on| format!("\n      http2_upgrade: {on}"));
    let web = sidecar(&format!(
        "identity:\n  ca: {}\n  identity: {WEB}\n  ttl: 1h\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {EMOJI}{upgrade}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        ca.display(),
        emoji.inbound[0],
    ));
    (Pair { web, emoji }, dir)
}

/// Sends `IN_FLIGHT` HTTP/1.1 requests through `web`'s outbound listener
/// at once, holds them all at the application, then lets them go: returns
/// what the application saw of each, and how many connections `emoji`'s
/// sidecar accepted.
async fn concurrent_requests(http2_upgrade: Option<bool>) -> (Vec<String>, u64) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let (release, released) = watch::channel(false);
    let (pair, _dir) = pair(app(arrived.clone(), released).await, http2_upgrade);
    let outbound = pair.web.outbound;
    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            tokio::spawn(async move {
                // A connection of its own each, as a client without
                // multiplexing opens for requests at once.
                let client = http1();
                let req = Request::get(format!("http://{outbound}/list"))
                    .header("host", "emoji")
                    .body(full(""))
                    .unwrap();
                let res = client.request(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                assert_eq!(res.version(), Version::HTTP_11);
                String::from_utf8(body_bytes(res).await.to_vec()).unwrap()
            })
        })
        .collect();
    while arrived.load(Ordering::SeqCst) < IN_FLIGHT {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    let mut seen = Vec::new();
    for request in requests {
        seen.push(request.await.unwrap());
    }
    let metrics = scrape(pair.emoji.admin).await;
    let accepted = metrics
        .lines()
        .filter(|l| l.starts_with("tcp_open_total{direction=\"inbound\",peer=\"src\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    stop(pair.web).await;
    stop(pair.emoji).await;
    (seen, accepted)
}

#[tokio::test]
async fn http_11_requests_share_one_http_2_connection_between_sidecars() {
    let (seen, accepted) = concurrent_requests(None).await;
    // The application got HTTP/1.1, with the authority the client asked
    // for.
    assert_eq!(seen, vec!["HTTP/1.1 host=Some(\"emoji\")"; IN_FLIGHT]);
    assert_eq!(accepted, 1, "every request on one connection");
}

#[tokio::test]
async fn without_the_upgrade_each_request_in_flight_has_its_own_connection() {
    let (seen, accepted) = concurrent_requests(Some(false)).await;
    assert_eq!(seen, vec!["HTTP/1.1 host=Some(\"emoji\")"; IN_FLIGHT]);
    assert_eq!(accepted, IN_FLIGHT as u64);
}

/// Sends `request` as raw bytes to `outbound` and reads the answer until
/// the sidecar closes the connection (`connection: close`).
async fn raw(outbound: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(outbound).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// An application that answers with the body it read and the `x-sum`
/// trailer it got, and sends that trailer back (declared in `Trailer`,
/// as an HTTP/1.1 server must for hyper to send it).
async fn trailers_app() -> SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        let collected = req.into_body().collect().await?;
        let sum = collected
            .trailers()
            .and_then(|t| t.get("x-sum"))
            .map(|v| v.to_str().unwrap().to_owned());
        let text = format!(
            "{} x-sum={}",
            String::from_utf8_lossy(&collected.to_bytes()),
            sum.as_deref().unwrap_or("None")
        );
        let mut trailers = http::HeaderMap::new();
        if let Some(sum) = &sum {
            trailers.insert("x-sum", sum.parse().unwrap());
        }
        let frames = [
            Ok(hyper::body::Frame::data(bytes::Bytes::from(text))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        Ok(Response::builder()
            .header("trailer", "x-sum")
            .body(BodyExt::boxed(body))
            .unwrap())
    });
    addr
}

/// What HTTP/1.1 has that an HTTP/2 stream must carry across: a chunked
/// body's trailers both ways, a `HEAD` answered without a body, and
/// `Expect: 100-continue` answered before the body is sent.
#[tokio::test]
async fn trailers_head_and_100_continue_survive_the_upgrade() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (pair, _dir) = pair(trailers_app().await, None);
    let outbound = pair.web.outbound;

    let answer = raw(
        outbound,
        b"POST /echo HTTP/1.1\r\nhost: emoji\r\ntransfer-encoding: chunked\r\n\
          trailer: x-sum\r\nte: trailers\r\nconnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("hello x-sum=5"), "{answer}");
    assert!(answer.ends_with("0\r\nx-sum: 5\r\n\r\n"), "{answer}");

    let answer = raw(
        outbound,
        b"HEAD /head HTTP/1.1\r\nhost: emoji\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "a body after HEAD: {answer}");

    let tcp = tokio::net::TcpStream::connect(outbound).await.unwrap();
    let mut tcp = tokio::io::BufReader::new(tcp);
    tcp.write_all(
        b"POST /echo HTTP/1.1\r\nhost: emoji\r\ncontent-length: 5\r\n\
          expect: 100-continue\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_line(&mut line))
        .await
        .expect("no 100 Continue: the client would wait its own timeout")
        .unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    tcp.write_all(b"hello").await.unwrap();
    let mut rest = String::new();
    tcp.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("hello x-sum=None"), "{rest}");
    stop(pair.web).await;
    stop(pair.emoji).await;
}

/// An `Upgrade` keeps HTTP/1.1 between the sidecars (an HTTP/2 stream
/// cannot carry it) and becomes a byte tunnel through both, over mutual
/// TLS, with `Connection` naming another header beside `upgrade`.
#[tokio::test]
async fn an_upgrade_is_tunnelled_through_both_sidecars() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (backend, _) = backend().await;
    let (pair, _dir) = pair(backend, None);
    let mut tcp = tokio::net::TcpStream::connect(pair.web.outbound)
        .await
        .unwrap();
    tcp.write_all(
        b"GET /upgrade HTTP/1.1\r\nhost: emoji\r\nconnection: Upgrade, x-hop\r\n\
          x-hop: 1\r\nupgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    tcp.write_all(b"ping through two sidecars").await.unwrap();
    let mut echoed = [0u8; 25];
    tcp.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping through two sidecars");
    drop(tcp);
    stop(pair.web).await;
    stop(pair.emoji).await;
}
