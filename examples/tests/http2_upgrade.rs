//! Between two sidecars on mutual TLS, HTTP/1.1 requests travel as
//! HTTP/2 streams on one connection, and the application still gets
//! HTTP/1.1 with its `Host`, as between Linkerd's proxies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
        .filter(|l| l.starts_with("tcp_open_total{direction=\"inbound\""))
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
