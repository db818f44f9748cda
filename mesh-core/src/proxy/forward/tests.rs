use std::{convert::Infallible, future::Ready, net::SocketAddr};

use http::{HeaderMap, Request, Response, Version};
use tower::{Service, ServiceExt};

use super::Forward;

/// A client that answers with the URI and headers it was sent, in the
/// response's headers and extensions.
type Echo = tower::util::ServiceFn<fn(Request<()>) -> Ready<Result<Response<()>, Infallible>>>;

#[derive(Clone, Debug)]
struct Sent {
    uri: http::Uri,
    headers: HeaderMap,
}

fn echo() -> Echo {
    tower::service_fn(|req: Request<()>| {
        let mut res = Response::new(());
        res.extensions_mut().insert(Sent {
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        });
        std::future::ready(Ok(res))
    })
}

async fn sent(req: Request<()>) -> Result<Sent, Infallible> {
    let endpoint = SocketAddr::from(([10, 0, 0, 1], 8080));
    let forward = Forward::new(echo(), [endpoint]).unwrap();
    let res = forward.oneshot(req).await.unwrap();
    Ok(res.extensions().get::<Sent>().unwrap().clone())
}

#[tokio::test]
async fn an_absolute_form_target_replaces_the_host_header() {
    // RFC 9112 §3.2.2: a proxy ignores the Host a client sent with an
    // absolute-form target and uses the target's authority.
    let req = Request::get("http://emoji.example:8080/list")
        .header("host", "other.example")
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    assert_eq!(sent.uri, "http://10.0.0.1:8080/list");
    assert_eq!(sent.headers["host"], "emoji.example:8080");
    assert_eq!(sent.headers.get_all("host").iter().count(), 1);
}

#[tokio::test]
async fn an_absolute_form_target_without_a_host_header_keeps_its_authority() {
    // An HTTP/1.0 client may send no Host at all.
    let req = Request::get("http://emoji.example/list")
        .version(Version::HTTP_10)
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    assert_eq!(sent.headers["host"], "emoji.example");
}

#[tokio::test]
async fn userinfo_in_the_target_does_not_reach_the_host_header() {
    let req = Request::get("http://user:secret@emoji.example/list")
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    assert_eq!(sent.headers["host"], "emoji.example");
}

#[tokio::test]
async fn an_origin_form_target_keeps_the_host_header() {
    let req = Request::get("/list")
        .header("host", "emoji.example")
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    assert_eq!(sent.headers["host"], "emoji.example");
}

#[tokio::test]
async fn an_http2_request_carries_its_authority_in_the_uri_and_no_host_header() {
    let req = Request::get("http://emoji.example/list")
        .version(Version::HTTP_2)
        .header("host", "emoji.example")
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    // The URI's authority becomes `:authority`: the client made for the
    // endpoint connects there whatever the URI names.
    assert_eq!(sent.uri, "http://emoji.example/list");
    // nginx answers 400 to an HTTP/2 request with `Host` beside
    // `:authority`, even an equal one.
    assert_eq!(sent.headers.get("host"), None);
}

#[tokio::test]
async fn an_http2_request_without_an_authority_is_sent_for_its_host_else_the_endpoint() {
    let req = Request::get("/list")
        .version(Version::HTTP_2)
        .header("host", "emoji.example:8080")
        .body(())
        .unwrap();
    assert_eq!(
        sent(req).await.unwrap().uri,
        "http://emoji.example:8080/list"
    );
    let req = Request::get("/list")
        .version(Version::HTTP_2)
        .body(())
        .unwrap();
    assert_eq!(sent(req).await.unwrap().uri, "http://10.0.0.1:8080/list");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_for_http_and_status_14_for_grpc() {
    let failing = tower::service_fn(|_: Request<()>| async {
        Err::<Response<()>, _>(std::io::Error::other("refused"))
    });
    let endpoint = SocketAddr::from(([10, 0, 0, 1], 8080));
    let mut forward = Forward::new(failing, [endpoint]).unwrap();
    let res = forward
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let grpc = Request::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = forward.ready().await.unwrap().call(grpc).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["grpc-status"], "14");
}

#[tokio::test]
async fn a_request_carried_between_proxies_as_http2_keeps_its_host() {
    use crate::proxy::orig_proto;
    // The sending proxy points the URI at this proxy, and carries the
    // client's authority in Host.
    let mut req = Request::get("http://10.0.0.9:4143/list")
        .header("host", "emoji.example")
        .body(())
        .unwrap();
    assert!(orig_proto::upgrade(&mut req));
    let downgrade =
        tower::Layer::layer(&orig_proto::DowngradeLayer::new(), tower::service_fn(sent));
    let sent = downgrade.oneshot(req).await.unwrap();
    assert_eq!(sent.headers["host"], "emoji.example");
    assert_eq!(sent.uri, "http://10.0.0.1:8080/list");
}

#[tokio::test]
async fn an_h2c_upgrade_goes_upstream_as_a_plain_request() {
    let req = Request::get("/")
        .header("host", "emoji.example")
        .header("upgrade", "h2c")
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("http2-settings", "AAMAAABkAAQAAP__")
        .body(())
        .unwrap();
    let sent = sent(req).await.unwrap();
    let mut names: Vec<_> = sent.headers.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(names, ["host"]);
}

#[tokio::test]
async fn a_connect_is_answered_501_and_never_sent_upstream() {
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = called.clone();
    let client = tower::service_fn(move |_: Request<()>| {
        seen.store(true, std::sync::atomic::Ordering::Relaxed);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    });
    let endpoint = SocketAddr::from(([10, 0, 0, 1], 8080));
    let forward = Forward::new(client, [endpoint]).unwrap();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let req = Request::connect("db.example:5432")
            .version(version)
            .body(())
            .unwrap();
        let res = forward.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 501, "{version:?}");
        assert_eq!(res.headers()["mesh-error"], "connect not supported");
        assert_eq!(
            res.extensions().get::<crate::error::ProxyErrorKind>(),
            Some(&crate::error::ProxyErrorKind::Unsupported),
            "labelled as the mesh's answer"
        );
        assert_eq!(res.headers()["content-length"], "0");
    }
    assert!(!called.load(std::sync::atomic::Ordering::Relaxed));
}

#[tokio::test]
async fn a_request_counts_against_its_endpoint_until_its_response_head() {
    // An upstream that answers when told to.
    let (answer, answered) = tokio::sync::oneshot::channel::<()>();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Some(answered)));
    let client = tower::service_fn(move |_: Request<()>| {
        let answered = answered.lock().unwrap().take();
        async move {
            if let Some(answered) = answered {
                let _ = answered.await;
            }
            Ok::<_, Infallible>(Response::new(()))
        }
    });
    let a = SocketAddr::from(([10, 0, 0, 1], 8080));
    let b = SocketAddr::from(([10, 0, 0, 2], 8080));
    let mut forward = Forward::new(client, [a, b]).unwrap();
    let balancer = forward.endpoints.peek();
    let in_flight = || balancer.pending_of(a).unwrap() + balancer.pending_of(b).unwrap();
    let mut res = std::pin::pin!(forward.call(Request::new(())));
    // Polled while the upstream has not answered, it still counts.
    for _ in 0..2 {
        let poll = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(res.as_mut(), cx))
        });
        assert!(poll.await.is_pending());
    }
    assert_eq!(in_flight(), 1);
    answer.send(()).unwrap();
    res.await.unwrap();
    assert_eq!(in_flight(), 0);
}

/// An HTTP/1.1 upstream that sends its response head at once and its
/// body, one chunk, `delay` later: a server that is quick to say it has
/// an answer and slow to give it.
async fn slow_body_upstream(delay: std::time::Duration) -> SocketAddr {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                let late = futures_util::stream::once(async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(http_body::Frame::data(bytes::Bytes::from_static(b"late")))
                });
                std::future::ready(Ok::<_, Infallible>(Response::new(
                    http_body_util::StreamBody::new(late),
                )))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

#[tokio::test(start_paused = true)]
async fn a_response_whose_body_comes_late_is_a_slow_sample_and_in_flight_until_then() {
    // Linkerd's balancer samples a request's latency, and stops counting
    // it in flight, at the response's first body frame
    // (`PendingUntilFirstData`): an endpoint that answers its head at
    // once and its body a second later is a second slow.
    use http_body_util::BodyExt;
    let delay = std::time::Duration::from_secs(1);
    let a = slow_body_upstream(delay).await;
    let b = slow_body_upstream(delay).await;
    let client =
        crate::client::Client::<crate::body::BoxBody>::new(&crate::client::ClientConfig::default());
    let forward = Forward::new(client, [a, b]).unwrap();
    let balancer = forward.endpoints.peek();
    let in_flight = || balancer.pending_of(a).unwrap() + balancer.pending_of(b).unwrap();
    let slowest = || {
        balancer
            .estimate_of(a)
            .unwrap()
            .max(balancer.estimate_of(b).unwrap())
    };
    let get = Request::get("/")
        .header("host", "web")
        .body(crate::body::empty())
        .unwrap();
    let sent = tokio::time::Instant::now();
    let res = forward.oneshot(get).await.unwrap();
    assert!(sent.elapsed() < delay, "the head comes at once");
    assert_eq!(in_flight(), 1, "in flight until the body's first frame");
    assert!(slowest() < delay, "no sample yet: {:?}", slowest());
    let mut body = res.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "late");
    assert_eq!(in_flight(), 0);
    assert!(
        slowest() >= delay,
        "the sample ends at the first frame: {:?}",
        slowest()
    );
}
