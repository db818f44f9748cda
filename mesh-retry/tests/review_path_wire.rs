//! A retry is the same request on the wire as its first attempt: the
//! upstream, a raw socket that records each request head's bytes, sees
//! the same request line and header lines, in the same order, but for the
//! `mesh-retry-attempt` line the retry adds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use mesh_core::body::{BoxBody, empty, full};
use mesh_retry::{
    Backoff, Budget, BudgetConfig, RetryLayer, RetryPolicy, RouteStackLayer, Timeouts,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{ServiceBuilder, ServiceExt};

use crate::support::client;

/// Each request's head, as bytes, and its body.
type Log = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

/// An HTTP/1.1 upstream on a raw socket: answers the first request 503 and
/// every later one 200, and records each request's head and body. Bodies
/// are read by their `content-length`.
async fn raw_upstream() -> (SocketAddr, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0; 4096];
                        let n = tcp.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let head: Vec<u8> = buf.drain(..end).collect();
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < len {
                        let mut chunk = [0; 4096];
                        let n = tcp.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the body ended early");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body: Vec<u8> = buf.drain(..len).collect();
                    let first = {
                        let mut log = seen.lock().unwrap();
                        log.push((head, body));
                        log.len() == 1
                    };
                    let status = if first {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    tcp.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (addr, log)
}

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_backoff(Backoff::none())
        .with_any_method(true)
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ))
}

/// A request with every kind of head the wire allows: an extension
/// method, a query with percent-encoding, a name sent twice around
/// another, a value with obs-text bytes, an empty value, a long value,
/// and a sensitive one.
fn request(addr: SocketAddr, body: BoxBody, method: &Method) -> Request<BoxBody> {
    let mut secret = HeaderValue::from_static("Bearer abc");
    secret.set_sensitive(true);
    Request::builder()
        .method(method.clone())
        .uri(format!(
            "http://{addr}/a%2Fb/c;p=1?x=1&y=%20z&y=2&e=caf%C3%A9&&z"
        ))
        .header("x-dup", "one")
        .header("x-mid", "middle")
        .header("x-dup", "two")
        .header(
            "x-obs",
            HeaderValue::from_bytes(b"caf\xe9 \x80\xff\tend").unwrap(),
        )
        .header("x-empty", "")
        .header("x-long", "v".repeat(16 * 1024))
        .header("authorization", secret)
        .header("x-dup", "three")
        .body(body)
        .unwrap()
}

/// The head's lines, without the retry's `mesh-retry-attempt` line.
fn lines(head: &[u8]) -> Vec<Vec<u8>> {
    head.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.to_ascii_lowercase().starts_with(b"mesh-retry-attempt:"))
        .collect()
}

async fn check(log: &Log, body: &[u8]) {
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2, "one retry");
    let (first, retry) = (&log[0], &log[1]);
    assert_eq!(
        lines(&first.0),
        lines(&retry.0),
        "the same head on the wire"
    );
    assert!(
        String::from_utf8_lossy(&retry.0)
            .to_ascii_lowercase()
            .contains("mesh-retry-attempt: 2\r\n")
    );
    assert_eq!(first.1, body);
    assert_eq!(retry.1, body);
}

async fn through_the_retry_layer(method: Method, body: &'static [u8]) {
    let (addr, log) = raw_upstream().await;
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy(), budget()))
        .service(client());
    let req_body = if body.is_empty() {
        empty()
    } else {
        full(Bytes::from_static(body))
    };
    let res = svc.oneshot(request(addr, req_body, &method)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    check(&log, body).await;
}

async fn through_the_route_stack(method: Method, body: &'static [u8]) {
    let (addr, log) = raw_upstream().await;
    let svc = ServiceBuilder::new()
        .layer(RouteStackLayer::new(
            policy(),
            Timeouts::default(),
            budget(),
        ))
        .service(client());
    let req_body = if body.is_empty() {
        empty()
    } else {
        full(Bytes::from_static(body))
    };
    let res = svc.oneshot(request(addr, req_body, &method)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    check(&log, body).await;
}

#[tokio::test]
async fn a_retried_get_is_the_same_head_on_the_wire() {
    through_the_retry_layer(Method::GET, b"").await;
    through_the_route_stack(Method::GET, b"").await;
}

#[tokio::test]
async fn a_retried_put_with_a_body_is_the_same_request_on_the_wire() {
    through_the_retry_layer(Method::PUT, b"the body").await;
    through_the_route_stack(Method::PUT, b"the body").await;
}

#[tokio::test]
async fn a_retried_extension_method_is_the_same_request_on_the_wire() {
    let purge = Method::from_bytes(b"PURGE").unwrap();
    through_the_retry_layer(purge.clone(), b"x").await;
    through_the_route_stack(purge, b"x").await;
}

/// More header values than a `HeaderMap` reserves room for at once (an
/// HTTP/2 caller can send them under a raised head limit, HPACK sending a
/// repeated field in a byte): the retry rebuilt them all, where it
/// panicked on the task serving the request.
#[tokio::test]
async fn a_head_with_thirty_thousand_values_is_retried_whole() {
    use mesh_core::{BoxError, body::Proxied};
    use mesh_retry::replay::ReplayBody;

    let counts = Arc::new(Mutex::new(Vec::new()));
    let seen = counts.clone();
    let upstream = tower::service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let seen = seen.clone();
        async move {
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push(req.headers().get_all("x-many").iter().count());
                seen.len() == 1
            };
            let mut res = http::Response::new(Proxied::from(empty()));
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, BoxError>(res)
        }
    });
    let mut req = Request::get("http://emoji/list").body(empty()).unwrap();
    for i in 0..30_000_u32 {
        req.headers_mut().append("x-many", HeaderValue::from(i));
    }
    let svc = ServiceBuilder::new()
        .layer(RouteStackLayer::new(
            policy(),
            Timeouts::default(),
            budget(),
        ))
        .service(upstream);
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(*counts.lock().unwrap(), [30_000, 30_000]);
}

/// Over HTTP/2 the retry is the same request too: its `:method`,
/// `:scheme`, `:authority` and `:path`, and every header value in order,
/// but for the retry's `mesh-retry-attempt`.
#[tokio::test]
async fn a_retried_http2_request_is_the_same_request() {
    type Seen = (http::Method, http::Uri, Vec<(String, Vec<u8>)>, Bytes);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let addr = crate::support::serve(move |req| {
        let log = log.clone();
        Box::pin(async move {
            use http_body_util::BodyExt;
            assert_eq!(req.version(), http::Version::HTTP_2);
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| *name != "mesh-retry-attempt")
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            let first = {
                let mut log = log.lock().unwrap();
                log.push((parts.method, parts.uri, headers, body));
                log.len() == 1
            };
            let mut res = http::Response::new(http_body_util::Full::new(Bytes::new()));
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            res
        })
    })
    .await;
    for stack in ["layer", "route stack"] {
        seen.lock().unwrap().clear();
        let mut req = request(addr, full(Bytes::from_static(b"h2 body")), &Method::PUT);
        *req.version_mut() = http::Version::HTTP_2;
        // Within hyper's default 16 KiB header list.
        let long = HeaderValue::from_str(&"v".repeat(4096)).unwrap();
        req.headers_mut().insert("x-long", long);
        let res = if stack == "layer" {
            ServiceBuilder::new()
                .layer(RetryLayer::new(policy(), budget()))
                .service(client())
                .oneshot(req)
                .await
                .unwrap()
                .status()
        } else {
            ServiceBuilder::new()
                .layer(RouteStackLayer::new(
                    policy(),
                    Timeouts::default(),
                    budget(),
                ))
                .service(client())
                .oneshot(req)
                .await
                .unwrap()
                .status()
        };
        assert_eq!(res, StatusCode::OK, "{stack}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{stack}");
        assert_eq!(seen[0], seen[1], "{stack}");
        assert_eq!(seen[1].3, "h2 body");
        assert!(seen[1].2.iter().all(|(name, _)| name != "host"), "{stack}");
    }
}
