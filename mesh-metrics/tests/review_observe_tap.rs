//! Tap on real sockets: many taps at once, each with its own filter; a
//! tap whose reader stops reading; a tap opened while a request is in
//! flight; and the end of a gRPC call over HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::BoxBody,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::{
    Direction,
    tap::{MAX_TAPS, QUEUE, Tap, TapEvent, TapEventKind, TapFilter, TapLayer, watch},
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{mpsc, oneshot},
};
use tower::{Layer, service_fn};

type AppBody = UnsyncBoxBody<Bytes, Infallible>;

/// Answers of `/held` requests, released by the test.
type Held = Arc<Mutex<Vec<oneshot::Sender<()>>>>;

/// An application behind `TapLayer::inbound` on 127.0.0.1:0: `/held`
/// answers when the test says; `/grpc` answers a gRPC call with two
/// messages and `UNAVAILABLE` in its trailers; `/grpc-only` with
/// `NOT_FOUND` in a trailers-only answer; anything else `hello`.
async fn app(tap: &Tap, held: Held) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let app = service_fn(move |req: Request<Incoming>| {
        let held = held.clone();
        async move {
            let grpc = |status: &str, messages: &[&'static [u8]]| {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", status.parse().unwrap());
                let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = messages
                    .iter()
                    .map(|m| Ok(Frame::data(Bytes::from_static(m))))
                    .collect();
                frames.push(Ok(Frame::trailers(trailers)));
                let body = StreamBody::new(futures_util::stream::iter(frames));
                Response::builder()
                    .header("content-type", "application/grpc")
                    .body(BodyExt::boxed_unsync(body))
                    .unwrap()
            };
            let res: Response<AppBody> = match req.uri().path() {
                "/held" => {
                    let (release, released) = oneshot::channel();
                    held.lock().unwrap().push(release);
                    let _ = released.await;
                    Response::new(BodyExt::boxed_unsync(Full::from("held")))
                }
                "/grpc" => grpc("14", &[b"\0\0\0\0\x02hi", b"\0\0\0\0\x03abc"]),
                "/grpc-only" => Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "5")
                    .body(BodyExt::boxed_unsync(Empty::new()))
                    .unwrap(),
                _ => Response::new(BodyExt::boxed_unsync(Full::from("hello"))),
            };
            Ok::<_, Infallible>(res)
        }
    });
    let stack = TapLayer::new(tap, Direction::Inbound).layer(app);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, signal));
    (addr, trigger)
}

/// `/tap` served for `tap` on 127.0.0.1:0.
async fn admin(tap: &Tap) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let tap = tap.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let res: Response<BoxBody> = tap.serve(&req);
        async move { Ok::<_, Infallible>(res) }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));
    (addr, trigger)
}

/// A client on one HTTP/1 or HTTP/2 connection to `addr`.
enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    async fn h1(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self::H1(sender)
    }

    async fn h2(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self::H2(sender)
    }

    /// Sends `req` and reads its whole answer.
    async fn send(&mut self, req: Request<Empty<Bytes>>) -> Bytes {
        let res = match self {
            Self::H1(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(req).await.unwrap()
            }
            Self::H2(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(req).await.unwrap()
            }
        };
        res.into_body().collect().await.unwrap().to_bytes()
    }
}

/// A request's three events, by request id, as one tap saw them.
fn by_request(events: &[TapEvent]) -> BTreeMap<u64, Vec<&TapEventKind>> {
    let mut requests: BTreeMap<u64, Vec<&TapEventKind>> = BTreeMap::new();
    for event in events {
        requests.entry(event.id).or_default().push(&event.kind);
    }
    requests
}

/// The path of a request event.
fn path(kind: &TapEventKind) -> &str {
    match kind {
        TapEventKind::Req { path, .. } => path,
        other => panic!("not a request event: {other:?}"),
    }
}

#[tokio::test]
async fn sixteen_taps_at_once_each_see_the_requests_their_filter_names_whole_and_in_order() {
    let tap = Tap::new();
    let (app, _app) = app(&tap, Held::default()).await;
    let (admin, _admin) = admin(&tap).await;

    // Every tap through `/tap` and `watch`, as `sidecar tap` opens one.
    let filters = [
        "",
        "method=POST",
        "path=/api",
        "path=/api/vote",
        "authority=web.emojivoto:80",
        "direction=outbound",
        "direction=inbound&method=GET&path=/api",
    ];
    let mut queries: Vec<&str> = filters.to_vec();
    while queries.len() < MAX_TAPS {
        queries.push("");
    }
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<(usize, TapEvent)>();
    for (i, query) in queries.iter().enumerate() {
        let filter = TapFilter::from_query(query).unwrap();
        let events = events_tx.clone();
        let admin = admin.to_string();
        tokio::spawn(async move {
            watch(&admin, &filter, |event| events.send((i, event)).is_ok())
                .await
                .unwrap();
        });
    }
    while tap.open() < MAX_TAPS {
        tokio::task::yield_now().await;
    }
    // One more is refused, and says why.
    let refused = watch(&admin.to_string(), &TapFilter::default(), |_| true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("503") && refused.contains("taps are open"),
        "{refused}"
    );

    // (method, path, host, HTTP/2)
    let requests = [
        ("GET", "/api/list", "web.emojivoto:80", false),
        ("POST", "/api/vote", "WEB.emojivoto:80", true),
        ("GET", "//api/./vote", "web.emojivoto:80", false),
        ("GET", "/apiary", "emoji:8080", true),
        ("POST", "/other", "web.emojivoto", false),
        ("GET", "/%61pi/vote?x=1", "web.emojivoto:80", true),
    ];
    let mut h1 = Client::h1(app).await;
    let mut h2 = Client::h2(app).await;
    for (method, path, host, http2) in requests {
        let (client, uri) = if http2 {
            (&mut h2, format!("http://{host}{path}"))
        } else {
            (&mut h1, path.to_owned())
        };
        let mut req = Request::builder().method(method).uri(uri);
        if !http2 {
            req = req.header("host", host);
        }
        assert_eq!(client.send(req.body(Empty::new()).unwrap()).await, "hello");
    }

    // Each request's three events reach each tap that wants it; the end of
    // the last one is the last event of all.
    let expected: Vec<Vec<&str>> = vec![
        vec![
            "/api/list",
            "/api/vote",
            "//api/./vote",
            "/apiary",
            "/other",
            "/%61pi/vote",
        ],
        vec!["/api/vote", "/other"],
        vec![
            "/api/list",
            "/api/vote",
            "//api/./vote",
            "/apiary",
            "/%61pi/vote",
        ],
        vec!["/api/vote", "//api/./vote", "/%61pi/vote"],
        vec!["/api/list", "/api/vote", "//api/./vote", "/%61pi/vote"],
        vec![],
        vec!["/api/list", "//api/./vote", "/apiary", "/%61pi/vote"],
    ];
    let total: usize = (0..MAX_TAPS)
        .map(|i| expected.get(i).map_or(requests.len(), Vec::len))
        .sum();
    let mut seen: Vec<Vec<TapEvent>> = vec![Vec::new(); MAX_TAPS];
    for _ in 0..3 * total {
        let (i, event) = events_rx.recv().await.unwrap();
        seen[i].push(event);
    }
    for (i, events) in seen.iter().enumerate() {
        let want = expected.get(i).cloned().unwrap_or_else(|| {
            requests
                .iter()
                .map(|r| r.1.split('?').next().unwrap())
                .collect()
        });
        let requests = by_request(events);
        let paths: Vec<&str> = requests.values().map(|kinds| path(kinds[0])).collect();
        assert_eq!(paths, want, "tap {i} ({:?})", queries[i]);
        for kinds in requests.values() {
            assert!(
                matches!(
                    kinds[..],
                    [
                        TapEventKind::Req { .. },
                        TapEventKind::Rsp { status: 200, .. },
                        TapEventKind::End {
                            response_bytes: 5,
                            error: None,
                            ..
                        }
                    ]
                ),
                "tap {i}: {kinds:?}"
            );
        }
    }
    assert!(events_rx.try_recv().is_err(), "nothing more");
    assert_eq!(tap.dropped(), 0);
}

#[tokio::test]
async fn a_tap_whose_reader_stopped_holds_no_request_and_counts_what_it_loses() {
    let tap = Tap::new();
    let (app, _app) = app(&tap, Held::default()).await;
    let (admin, _admin) = admin(&tap).await;

    // A client that opens a tap and never reads a byte of it, with as
    // small a receive buffer as the system gives.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut stalled = socket.connect(admin).await.unwrap();
    stalled
        .write_all(format!("GET /tap?max_rps=10000 HTTP/1.1\r\nhost: {admin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    while tap.open() < 1 {
        tokio::task::yield_now().await;
    }

    // Requests go on being answered, one after the other, long after the
    // stalled tap's socket, its server's buffers and its queue are full.
    let mut client = Client::h1(app).await;
    let mut sent = 0;
    while tap.dropped() == 0 {
        let req = Request::get("/api")
            .header("host", "web")
            .body(Empty::new());
        assert_eq!(client.send(req.unwrap()).await, "hello");
        sent += 1;
        assert!(sent < 100 * QUEUE, "nothing was lost after {sent} requests");
    }
    // The queue does not grow: from now on, each request's three events
    // are lost and counted, whole.
    let lost = tap.dropped();
    for _ in 0..10 {
        let req = Request::get("/api")
            .header("host", "web")
            .body(Empty::new());
        assert_eq!(client.send(req.unwrap()).await, "hello");
    }
    assert_eq!(tap.dropped(), lost + 30);

    // Gone: its place is free, and nothing is tapped any more.
    drop(stalled);
    while tap.open() > 0 {
        let req = Request::get("/api")
            .header("host", "web")
            .body(Empty::new());
        client.send(req.unwrap()).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_tap_opened_mid_request_sees_none_of_it_and_the_next_request_whole() {
    let tap = Tap::new();
    let held = Held::default();
    let (app, _app) = app(&tap, held.clone()).await;
    let mut early = tap.subscribe(TapFilter::default()).unwrap();

    let first = tokio::spawn(async move {
        let mut client = Client::h2(app).await;
        let req = Request::get("http://web:80/held").body(Empty::new());
        client.send(req.unwrap()).await
    });
    assert!(matches!(
        early.next().await.unwrap().kind,
        TapEventKind::Req { .. }
    ));
    while held.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    // Opened while the first request waits for its answer.
    let mut late = tap.subscribe(TapFilter::default()).unwrap();
    held.lock().unwrap().pop().unwrap().send(()).unwrap();
    assert_eq!(first.await.unwrap(), "held");

    let mut client = Client::h1(app).await;
    let req = Request::get("/second")
        .header("host", "web")
        .body(Empty::new());
    assert_eq!(client.send(req.unwrap()).await, "hello");

    // The early tap saw both whole; the late one the second only, from
    // its request event.
    let mut early_events = Vec::new();
    while early_events.len() < 5 {
        early_events.push(early.next().await.unwrap());
    }
    let mut late_events = Vec::new();
    while late_events.len() < 3 {
        late_events.push(late.next().await.unwrap());
    }
    let early_requests = by_request(&early_events);
    assert_eq!(early_requests.len(), 2, "{early_events:?}");
    let late_requests = by_request(&late_events);
    let (id, kinds) = late_requests.iter().next().unwrap();
    assert_eq!(late_requests.len(), 1, "{late_events:?}");
    assert_eq!(path(kinds[0]), "/second");
    assert!(matches!(kinds[1], TapEventKind::Rsp { status: 200, .. }));
    assert!(matches!(kinds[2], TapEventKind::End { error: None, .. }));
    assert_eq!(early_requests.keys().last(), Some(id));
    assert_eq!(tap.dropped(), 0);
}

#[tokio::test]
async fn a_grpc_calls_end_carries_its_status_from_the_trailers_or_a_trailers_only_head() {
    let tap = Tap::new();
    let (app, _app) = app(&tap, Held::default()).await;
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let mut client = Client::h2(app).await;
    for path in ["/grpc", "/grpc-only"] {
        let req = Request::post(format!("http://web:80{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Empty::new());
        client.send(req.unwrap()).await;
    }
    let mut events = Vec::new();
    while events.len() < 6 {
        events.push(sub.next().await.unwrap());
    }
    let ends: Vec<(Option<u16>, u64, Option<String>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            TapEventKind::End {
                grpc_status,
                response_bytes,
                error,
                ..
            } => Some((*grpc_status, *response_bytes, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [(Some(14), 15, None), (Some(5), 0, None)],
        "{events:?}"
    );
    let lines: Vec<String> = events.iter().map(ToString::to_string).collect();
    assert!(lines[2].contains(" grpc-status=Unavailable "), "{lines:?}");
    assert!(lines[5].contains(" grpc-status=NotFound "), "{lines:?}");
}
