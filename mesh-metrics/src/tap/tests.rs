#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::conn::{ConnectionInfo, Tls};
use tower::{Service, ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;

fn inbound_request(path: &str) -> Request<()> {
    let mut req = Request::get(path)
        .header("host", "web:80")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: "10.0.0.7:51324".parse().unwrap(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/emojivoto/sa/vote"
                .parse()
                .unwrap(),
        },
    });
    req
}

fn filter(query: &str) -> TapFilter {
    TapFilter::from_query(query).unwrap()
}

/// Every event queued for `sub` now.
fn drain(sub: &mut Subscription) -> Vec<TapEvent> {
    let mut events = Vec::new();
    while let Some(event) = sub.events.try_recv() {
        events.push(event);
    }
    events
}

/// An app that takes 3 ms to answer "hello" (5 bytes).
fn hello() -> impl tower::Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok::<_, Infallible>(Response::new(Full::from("hello")))
    })
}

#[tokio::test(start_paused = true)]
async fn a_tapped_request_sends_its_request_response_and_end() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(filter("path=/api")).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());

    let res = svc
        .clone()
        .oneshot(inbound_request("/api/list"))
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    // Off the path: not tapped.
    let res = svc.oneshot(inbound_request("/other")).await.unwrap();
    res.into_body().collect().await.unwrap();

    let lines: Vec<String> = drain(&mut sub).iter().map(ToString::to_string).collect();
    let head = "id=0 proxy=in  src=10.0.0.7:51324 dst=127.0.0.1:4143 tls=true";
    assert_eq!(
        lines,
        [
            format!("req {head} :method=GET :authority=web:80 :path=/api/list"),
            format!("rsp {head} :status=200 latency=3000µs"),
            format!("end {head} duration=0µs response-length=5B"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_end_carries_the_grpc_status_of_the_trailers_and_every_byte() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let app = service_fn(|_: Request<()>| async {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let frames = futures_util::stream::iter([
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"abc"))),
            Ok(http_body::Frame::data(Bytes::from_static(b"defg"))),
            Ok(http_body::Frame::trailers(trailers)),
        ]);
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    });
    let svc = TapLayer::new(&tap, Direction::Outbound).layer(app);
    let mut req = Request::get("http://emoji:8080/emojivoto.v1.EmojiService/ListAll")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo::plaintext(
        "127.0.0.1:4140".parse().unwrap(),
        "127.0.0.1:40000".parse().unwrap(),
    ));
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let events = drain(&mut sub);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[2].to_string(),
        "end id=0 proxy=out src=127.0.0.1:40000 dst=emoji:8080 \
         grpc-status=Unavailable duration=0µs response-length=7B"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_ends_its_tap_with_cancel() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());

    // Gone before the response.
    let pending = svc.clone().oneshot(inbound_request("/slow"));
    assert!(
        tokio::time::timeout(Duration::from_millis(1), pending)
            .await
            .is_err()
    );
    // Gone after the head, before the body.
    let res = svc.oneshot(inbound_request("/slow")).await.unwrap();
    tokio::time::advance(Duration::from_millis(2)).await;
    drop(res);

    let ends: Vec<TapEventKind> = drain(&mut sub)
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, TapEventKind::End { .. }))
        .collect();
    assert_eq!(
        ends,
        [
            TapEventKind::End {
                grpc_status: None,
                duration_us: 1000,
                response_bytes: 0,
                error: Some("cancel".into()),
            },
            TapEventKind::End {
                grpc_status: None,
                duration_us: 2000,
                response_bytes: 0,
                error: Some("cancel".into()),
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_request_ends_with_its_kind_of_error() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let refused = service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    });
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(refused);
    assert!(svc.oneshot(inbound_request("/")).await.is_err());
    let events = drain(&mut sub);
    assert_eq!(events.len(), 2, "a request and its end: {events:?}");
    assert!(
        matches!(&events[1].kind, TapEventKind::End { error: Some(e), .. } if e == "connect"),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tap_sees_at_most_its_rate() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(filter("max_rps=2")).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    for _ in 0..5 {
        let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let requests = |events: &[TapEvent]| {
        events
            .iter()
            .filter(|e| matches!(e.kind, TapEventKind::Req { .. }))
            .count()
    };
    assert_eq!(requests(&drain(&mut sub)), 2);
    // Half a second later, one more is let through.
    tokio::time::advance(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(requests(&drain(&mut sub)), 1);
}

#[tokio::test(start_paused = true)]
async fn closing_a_tap_stops_the_tapping_and_each_tap_filters_its_own() {
    let tap = Tap::new();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    let mut api = tap.subscribe(filter("path=/api")).unwrap();
    let outbound_only = tap.subscribe(filter("direction=outbound")).unwrap();
    assert_eq!(tap.open(), 2);

    let res = svc.clone().oneshot(inbound_request("/api")).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(drain(&mut api).len(), 3);

    drop(outbound_only);
    drop(api);
    assert_eq!(tap.open(), 0);
    let res = svc.oneshot(inbound_request("/api")).await.unwrap();
    assert!(!res.body().is_tapped(), "nothing taps: nothing records");
}

#[tokio::test(start_paused = true)]
async fn the_events_a_slow_tap_loses_are_counted() {
    let tap = Tap::new();
    let mut registry = prometheus_client::registry::Registry::default();
    tap.register(&mut registry);
    let mut sub = tap.subscribe(filter("max_rps=10000")).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    // Each request sends three events; the queue takes `QUEUE` of them.
    let requests = QUEUE / 3 + 10;
    for _ in 0..requests {
        let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let lost = (3 * requests - QUEUE) as u64;
    assert_eq!(tap.dropped(), lost);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(&format!("tap_events_dropped_total {lost}\n")),
        "{text}"
    );
    // A tap that keeps up loses nothing more.
    assert_eq!(drain(&mut sub).len(), QUEUE);
    let res = svc.oneshot(inbound_request("/")).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(drain(&mut sub).len(), 3);
    assert_eq!(tap.dropped(), lost);
}

#[tokio::test(start_paused = true)]
async fn events_of_a_tap_closed_meanwhile_are_not_counted_as_lost() {
    let tap = Tap::new();
    let sub = tap.subscribe(TapFilter::default()).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    let res = svc.oneshot(inbound_request("/")).await.unwrap();
    drop(sub);
    // The end event has no tap left to go to.
    res.into_body().collect().await.unwrap();
    assert_eq!(tap.dropped(), 0);
}

#[test]
fn a_web_page_of_another_site_cannot_open_a_tap() {
    // Any page open in a browser on the host can send GETs to loopback:
    // it cannot read the answer, but each one it leaves open holds one of
    // the MAX_TAPS places and makes the proxy tap for nobody.
    let tap = Tap::new();
    let from_browser = |headers: &[(&str, &str)]| {
        let mut req = Request::get("/tap").header("host", "127.0.0.1:4191");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let mut req = req.body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo::plaintext(
            "127.0.0.1:4191".parse().unwrap(),
            "127.0.0.1:50000".parse().unwrap(),
        ));
        req
    };
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "https://example.com")],
    ] {
        let res = tap.serve(&from_browser(headers));
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(tap.open(), 0, "{headers:?}");
    }
    // Typed into the address bar, or from the admin server's own pages,
    // or from a tool (no such header): served.
    for headers in [
        &[("sec-fetch-site", "none")][..],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:4191"),
        ],
        &[],
    ] {
        let res = tap.serve(&from_browser(headers));
        assert_eq!(res.status(), StatusCode::OK, "{headers:?}");
    }
}

#[test]
fn at_most_sixteen_taps_are_open() {
    let tap = Tap::new();
    let open: Vec<_> = (0..MAX_TAPS)
        .map(|_| tap.subscribe(TapFilter::default()).unwrap())
        .collect();
    assert_eq!(
        tap.subscribe(TapFilter::default()).unwrap_err(),
        TooManyTaps
    );
    drop(open);
    assert!(tap.subscribe(TapFilter::default()).is_ok());
}

#[tokio::test]
async fn serve_answers_loopback_only_and_names_a_bad_parameter() {
    let tap = Tap::new();
    let from = |ip: [u8; 4], uri: &str| {
        let mut req = Request::get(uri).body(()).unwrap();
        req.extensions_mut().insert(ConnectionInfo::plaintext(
            "127.0.0.1:4191".parse().unwrap(),
            (ip, 50000).into(),
        ));
        req
    };
    assert_eq!(
        tap.serve(&from([10, 0, 0, 7], "/tap")).status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        tap.serve(&Request::get("/tap").body(()).unwrap()).status(),
        StatusCode::FORBIDDEN
    );
    let bad = tap.serve(&from([127, 0, 0, 1], "/tap?max_rps=0"));
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let why = bad.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&why).contains("`max_rps`"),
        "{why:?}"
    );
    assert_eq!(tap.open(), 0);

    let streaming = tap.serve(&from([127, 0, 0, 1], "/tap?path=/api"));
    assert_eq!(streaming.status(), StatusCode::OK);
    assert_eq!(tap.open(), 1);
    drop(streaming);
    assert_eq!(tap.open(), 0, "a client that goes away closes its tap");
}

#[test]
fn an_untapped_body_is_the_body_it_wraps_and_a_pointer() {
    // Every response through the layer is moved with its body, tapped or
    // not: the recording of a tapped one is boxed.
    assert_eq!(
        std::mem::size_of::<TapBody<Full<Bytes>>>(),
        std::mem::size_of::<Full<Bytes>>() + std::mem::size_of::<usize>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_without_connection_info_is_tapped_with_empty_addresses() {
    let tap = Tap::new();
    let mut sub = tap.subscribe(TapFilter::default()).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    let req = Request::get("/api").body(()).unwrap();
    svc.oneshot(req).await.unwrap();
    let events = drain(&mut sub);
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        assert_eq!((&*event.src, &*event.dst, &event.tls), ("", "", &None));
    }
}

#[tokio::test]
async fn a_loopback_client_refused_for_the_host_it_named_is_told_so() {
    // A tool on the host that names the sidecar by a name of its own is on
    // loopback; told only "loopback only", it would not know to name
    // localhost instead.
    let tap = Tap::new();
    let mut req = Request::get("/tap")
        .header("host", "sidecar.internal:4191")
        .body(())
        .unwrap();
    req.extensions_mut().insert(ConnectionInfo::plaintext(
        "127.0.0.1:4191".parse().unwrap(),
        ([127, 0, 0, 1], 50000).into(),
    ));
    let res = tap.serve(&req);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let why = res.into_body().collect().await.unwrap().to_bytes();
    let why = String::from_utf8_lossy(&why);
    assert!(why.contains("name localhost"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn a_tap_that_lost_a_request_gets_none_of_its_response() {
    // Linkerd's proxy taps a request only if its tap took the request's
    // first event: a response or an end without its request says nothing
    // a reader can place.
    let tap = Tap::new();
    let mut sub = tap.subscribe(filter("max_rps=10000")).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(hello());
    // The queue is full: 1023 events, and the request event of one more.
    for _ in 0..=QUEUE / 3 {
        let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let lost = tap.dropped();
    assert_eq!(lost, 2);
    // Called now, answered once awaited.
    fn call<S: Service<R>, R>(
        svc: &mut S,
        req: R,
    ) -> impl Future<Output = Result<S::Response, S::Error>> + use<S, R> {
        svc.call(req)
    }
    let mut late = svc.clone();
    let pending = call(late.ready().await.unwrap(), inbound_request("/late"));
    // The reader catches up while the request waits for its response.
    assert_eq!(drain(&mut sub).len(), QUEUE);
    let res = pending.await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(drain(&mut sub), []);
    assert_eq!(tap.dropped(), lost + 3, "all three of its events are lost");
    // The next request is seen whole.
    let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(drain(&mut sub).len(), 3);

    // A tap that keeps up sees the whole of a request another lost.
    for _ in 0..=QUEUE / 3 {
        let res = svc.clone().oneshot(inbound_request("/")).await.unwrap();
        res.into_body().collect().await.unwrap();
    }
    let mut other = tap.subscribe(filter("max_rps=10000")).unwrap();
    let lost = tap.dropped();
    let pending = call(late.ready().await.unwrap(), inbound_request("/late"));
    assert_eq!(drain(&mut sub).len(), QUEUE);
    let res = pending.await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(drain(&mut sub), []);
    let seen: Vec<String> = drain(&mut other).iter().map(ToString::to_string).collect();
    let kinds: Vec<&str> = seen.iter().map(|e| &e[..3]).collect();
    assert_eq!(kinds, ["req", "rsp", "end"], "{seen:?}");
    assert!(
        seen[0].starts_with("req ") && seen[0].ends_with(":path=/late"),
        "{seen:?}"
    );
    assert_eq!(tap.dropped(), lost + 3);
}
