//! Protocol detection on a real `Protocol::Detect` port: what reaches the
//! HTTP server and what reaches the opaque handler; how long a peer that
//! trickles its request line or headers is kept; and what bounds an
//! HTTP/2 connection once detected.
#![allow(clippy::unwrap_used)]

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{OpaqueConnection, Protocol, Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Sends `bytes` to a detecting port whose HTTP answers `200 http` and
/// whose opaque handler writes `opaque`; returns what came back.
async fn answer_to(bytes: &[u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    let opaque = tower::service_fn(|mut conn: OpaqueConnection| async move {
        conn.io.write_all(b"opaque").await?;
        conn.io.shutdown().await
    });
    let config = ServerConfig {
        protocol: Protocol::Detect,
        ..ServerConfig::default()
    };
    let server = tokio::spawn(Server::new(config).serve(listener, http, opaque, shutdown));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    // Read until the answer is whole: the body, or the opaque greeting.
    while !got.ends_with(b"http") && !got.ends_with(b"opaque") {
        let n = client.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    trigger.trigger();
    server.await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_request_after_an_empty_line_is_served_as_http() {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let got = answer_to(b"\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got:?}");
}

#[tokio::test]
async fn other_bytes_reach_the_opaque_handler() {
    // The start of a TLS ClientHello, up to its first byte above ASCII.
    let got = answer_to(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await;
    assert_eq!(got, "opaque");
}

/// How long a peer that sends the HTTP/2 preface and then nothing (not
/// even a ping's answer) stays connected to a server with `config`, by
/// the paused clock; `None` when still connected after an hour.
async fn silent_http2_peer_lasts(config: ServerConfig) -> Option<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    tokio::spawn(Server::new(config).serve_http(listener, http, shutdown));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(mesh_core::detect::H2_PREFACE)
        .await
        .unwrap();
    // The server's SETTINGS arrive: the connection is up.
    let mut frame = [0; 9];
    client.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[3], 0x4, "a SETTINGS frame");
    // Traffic has settled; the paused clock jumps from timer to timer.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(3600), async {
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
    })
    .await;
    let lasted = closed.ok().map(|()| start.elapsed());
    tokio::time::resume();
    lasted
}

#[tokio::test]
async fn an_http2_peer_that_goes_silent_after_the_preface_is_closed() {
    // HTTP/1 has its header read timeout; without a bound, a peer that
    // sends the HTTP/2 preface and nothing else holds a connection, and a
    // place under the limit, forever. By default it is pinged after 10 s
    // of quiet and closed 20 s later.
    let lasted = silent_http2_peer_lasts(ServerConfig::default()).await;
    let lasted = lasted.expect("still open after an hour of silence");
    assert!(
        (Duration::from_secs(29)..=Duration::from_secs(31)).contains(&lasted),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn the_http2_ping_interval_and_timeout_are_the_configured_ones() {
    let config = ServerConfig {
        http2_keep_alive_interval: Some(Duration::from_secs(1)),
        http2_keep_alive_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let lasted = silent_http2_peer_lasts(config).await.unwrap();
    assert!(
        (Duration::from_millis(2900)..=Duration::from_millis(3100)).contains(&lasted),
        "{lasted:?}"
    );

    // Without pings, nothing bounds a silent HTTP/2 peer.
    let config = ServerConfig {
        http2_keep_alive_interval: None,
        ..ServerConfig::default()
    };
    assert_eq!(silent_http2_peer_lasts(config).await, None);
}

#[tokio::test]
async fn an_idle_http2_client_that_answers_pings_stays_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, http, shutdown));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = || {
        Request::get("http://a/")
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);
    tokio::time::pause();
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    assert_eq!(sender.send_request(req()).await.unwrap().status(), 200);
}

/// How long a peer that sends `first` at once and then a byte a second
/// (never finishing) stays connected, by the paused clock; and whether it
/// got any answer.
async fn trickling_peer_lasts(first: &'static [u8]) -> (Duration, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, http, shutdown));
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let trickle = tokio::spawn(async move {
        write.write_all(first).await.unwrap();
        // Stops when the server has closed and a write fails.
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut rest = Vec::new();
    let _ = read.read_to_end(&mut rest).await;
    let lasted = start.elapsed();
    trickle.abort();
    tokio::time::resume();
    (lasted, rest)
}

#[tokio::test]
async fn a_peer_that_trickles_its_request_line_is_closed_at_the_detection_timeout() {
    // Slowloris on detection: each byte restarts nothing.
    let (lasted, answer) = trickling_peer_lasts(b"GET /").await;
    let bound = ServerConfig::default().detect_timeout;
    assert!(answer.is_empty(), "{answer:?}");
    assert!(
        lasted.abs_diff(bound) <= Duration::from_secs(1),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn a_peer_that_trickles_its_headers_is_closed_at_the_header_read_timeout() {
    // Past detection, hyper's header read timeout bounds the whole head.
    let (lasted, _) = trickling_peer_lasts(b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: ").await;
    let bound = ServerConfig::default().header_read_timeout;
    assert!(
        lasted.abs_diff(bound) <= Duration::from_secs(1),
        "{lasted:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_cut_anywhere_are_each_answered_once() {
    // What detection read is replayed to hyper: nothing lost, nothing
    // read twice, however the bytes were cut into reads.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(path)))
    });
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, http, shutdown));
    let requests: &[u8] =
        b"GET /one HTTP/1.1\r\nhost: a\r\n\r\nGET /two HTTP/1.1\r\nhost: a\r\n\r\nGET /three HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n";
    for cut in [1, 3, 5, 17, 18, 40] {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.set_nodelay(true).unwrap();
        conn.write_all(&requests[..cut]).await.unwrap();
        tokio::task::yield_now().await;
        conn.write_all(&requests[cut..]).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        let bodies: Vec<&str> = answer
            .split("HTTP/1.1 200 OK\r\n")
            .skip(1)
            .map(|res| res.rsplit("\r\n\r\n").next().unwrap())
            .collect();
        assert_eq!(
            bodies,
            ["/one", "/two", "/three"],
            "cut at {cut}: {answer:?}"
        );
    }
    trigger.trigger();
    server.await.unwrap();
}

// Request lines that common HTTP/1 servers serve, though they are not the
// strict `method SP target SP HTTP/1.x`, reach the mesh's HTTP server,
// never the opaque handler. Go's `net/http` serves any `HTTP/1.<digit>`,
// Python's `http.server` any `HTTP/1.x` and runs of spaces or tabs between
// the words, Netty runs of whitespace. Passed on as opaque bytes, such a
// request reached the application with none of what the HTTP stack does to
// requests: no route-level authorization, no route filters, and the
// caller's own `l5d-client-id` or `mesh-client-id` in place of the one the
// mesh proves.

#[tokio::test]
async fn request_lines_lenient_servers_serve_are_refused_by_the_http_server() {
    for line in [
        "GET /admin HTTP/1.2",
        "GET /admin HTTP/1.9",
        "GET /admin HTTP/1.10",
        "GET  /admin  HTTP/1.1",
        "GET /admin HTTP/1.1 ",
        "GET\t/admin\tHTTP/1.1",
    ] {
        let got =
            answer_to(format!("{line}\r\nhost: a\r\nconnection: close\r\n\r\n").as_bytes()).await;
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{line:?}: {got:?}"
        );
    }
}

#[tokio::test]
async fn request_lines_with_any_whitespace_rfc_9112_allows_are_refused_by_the_http_server() {
    // RFC 9112 §3 lets a server split the request line on any whitespace
    // (SP, HTAB, VT, FF or a bare CR) and ignore it at either end; Netty
    // does, and Python's `http.server` (its `str.split()`) takes the
    // separators `\x1c` to `\x1f` too (and, reading bytes as Latin-1,
    // `\x85` and `\xa0`), the version `HTTP/0.9` or
    // with leading zeros, and a bare `GET /path` (HTTP/0.9). Each of
    // these is served by one of them as a request for `/admin`.
    let lines: [&[u8]; 11] = [
        b"GET\x0b/admin\x0bHTTP/1.1",
        b"GET\xa0/admin\x85HTTP/1.1",
        b"GET\x0c/admin HTTP/1.1",
        b"GET\r/admin\rHTTP/1.1",
        b"\rGET /admin HTTP/1.1",
        b"\x0c GET /admin HTTP/1.1",
        b"GET\x1c/admin\x1fHTTP/1.1",
        b"GET /admin HTTP/0.9",
        b"GET /admin HTTP/01.1",
        b"GET /admin",
        b"GET\x0b/admin",
    ];
    for line in lines {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\nhost: a\r\nconnection: close\r\n\r\n");
        let got = answer_to(&bytes).await;
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {got:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[tokio::test]
async fn whitespace_before_the_request_line_is_skipped_as_netty_skips_it() {
    // Netty skips every control or whitespace byte before the request
    // line, not only the empty lines RFC 9112 §2.2 names: each of these
    // is its request for `/admin`.
    let lines: [&[u8]; 7] = [
        b"\r\r\nGET /admin HTTP/1.1",
        b"\x0b\r\nGET /admin HTTP/1.1",
        b" \n\tGET /admin HTTP/1.1",
        b"\x1c\x0c\nGET /admin HTTP/1.1",
        b"\x00GET /admin HTTP/1.1",
        b"\x00\x01\x16\r\nGET /admin HTTP/1.1",
        b"\x7f\x1bGET /admin HTTP/1.1",
    ];
    for line in lines {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\nhost: a\r\nconnection: close\r\n\r\n");
        let got = answer_to(&bytes).await;
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {got:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[tokio::test]
async fn control_bytes_in_the_target_reach_the_http_server_not_the_application() {
    // Python's `http.server` serves each of these as a request for
    // `/admin`, control bytes and DEL in the target included. Forwarded as
    // opaque bytes, they would reach it with no route authorization; the
    // HTTP server refuses them instead.
    let lines: [&[u8]; 4] = [
        b"GET /admin?\x01 HTTP/1.1",
        b"GET /admin\x00 HTTP/1.0",
        b"GET /admin\x7f HTTP/1.1",
        b"GET /admin?\x1b",
    ];
    for line in lines {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\nhost: a\r\nconnection: close\r\n\r\n");
        let got = answer_to(&bytes).await;
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {got:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[tokio::test]
async fn text_protocols_that_are_not_http_stay_opaque() {
    // memcached's and Redis's inline commands, and HTTP/2 spelled as an
    // HTTP/1 request line (not the preface).
    for line in [
        "get key",
        "set key 0 0 5",
        "SET key value",
        "GET / HTTP/2.0",
    ] {
        let got = answer_to(format!("{line}\r\n").as_bytes()).await;
        assert_eq!(got, "opaque", "{line:?}");
    }
}
