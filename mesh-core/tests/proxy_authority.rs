//! The authority a request was sent for reaches the upstream through a
//! `Forward`: over HTTP/2 as `:authority` (RFC 9113 §8.3.1 has an
//! intermediary build it from the original request's authority), over
//! HTTP/1.1 as `Host`, while the connection goes to the endpoint the
//! balancer picked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::{BoxBody, full},
    client::{Client, ClientConfig},
    proxy::{EndpointSet, Forward},
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// An upstream speaking HTTP/1.1 and HTTP/2 (prior knowledge) that
/// answers with its own address, the URI's authority it received (what
/// `:authority` carries over HTTP/2) and its `Host` header, one a line.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                let authority = req.uri().authority().map_or("-", |a| a.as_str());
                let host = req
                    .headers()
                    .get("host")
                    .map_or("-", |h| h.to_str().unwrap());
                let body = format!("{addr}\n{authority}\n{host}");
                Ok::<_, Infallible>(Response::new(full(body)))
            });
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(conn), svc).await;
            });
        }
    });
    addr
}

/// What the upstream that answered `req` saw: its address, the
/// authority and the `Host`.
async fn seen(forward: &Forward<Client<BoxBody>>, req: Request<BoxBody>) -> [String; 3] {
    let version = req.version();
    let res = forward.clone().oneshot(req).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{version:?}: {:?}",
        res.headers().get("mesh-error")
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    let lines: Vec<String> = body.lines().map(str::to_owned).collect();
    lines.try_into().unwrap()
}

fn forward(endpoints: &[SocketAddr]) -> Forward<Client<BoxBody>> {
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    Forward::new(client, endpoints.iter().copied()).unwrap()
}

#[tokio::test]
async fn an_http2_request_keeps_its_authority_and_goes_to_the_endpoint() {
    let endpoint = upstream().await;
    let forward = forward(&[endpoint]);
    let req = Request::get("http://web.ns.svc:8080/list")
        .version(Version::HTTP_2)
        .header("host", "web.ns.svc:8080")
        .body(full(""))
        .unwrap();
    let [at, authority, host] = seen(&forward, req).await;
    assert_eq!(at, endpoint.to_string());
    assert_eq!(authority, "web.ns.svc:8080");
    // Over HTTP/2 the authority travels as `:authority` alone: nginx
    // answers 400 to an HTTP/2 request that also carries `Host`.
    assert_eq!(host, "-");
}

#[tokio::test]
async fn an_http2_request_with_a_host_header_alone_is_sent_for_that_host() {
    let endpoint = upstream().await;
    let forward = forward(&[endpoint]);
    let req = Request::get("/list")
        .version(Version::HTTP_2)
        .header("host", "web.ns.svc:8080")
        .body(full(""))
        .unwrap();
    let [at, authority, host] = seen(&forward, req).await;
    assert_eq!(at, endpoint.to_string());
    assert_eq!(authority, "web.ns.svc:8080");
    assert_eq!(host, "-");
}

#[tokio::test]
async fn an_http2_request_that_names_no_authority_is_sent_for_the_endpoint() {
    let endpoint = upstream().await;
    let forward = forward(&[endpoint]);
    let req = Request::get("/list")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let [_, authority, _] = seen(&forward, req).await;
    assert_eq!(authority, endpoint.to_string());
}

#[tokio::test]
async fn userinfo_never_reaches_the_http2_authority() {
    let endpoint = upstream().await;
    let forward = forward(&[endpoint]);
    let req = Request::get("http://user:secret@web.ns.svc:8080/list")
        .version(Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let [_, authority, host] = seen(&forward, req).await;
    assert_eq!(authority, "web.ns.svc:8080");
    assert_eq!(host, "-");
}

#[tokio::test]
async fn an_http1_request_keeps_its_host() {
    let endpoint = upstream().await;
    let forward = forward(&[endpoint]);
    let req = Request::get("/list")
        .header("host", "web.ns.svc:8080")
        .body(full(""))
        .unwrap();
    let [at, _, host] = seen(&forward, req).await;
    assert_eq!(at, endpoint.to_string());
    assert_eq!(host, "web.ns.svc:8080");
}

#[tokio::test]
async fn each_endpoint_of_a_set_gets_http2_requests_for_the_same_authority() {
    let (a, b) = (upstream().await, upstream().await);
    let set = EndpointSet::new([a]).unwrap();
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::with_endpoints(client, &set);
    let req = || {
        Request::get("http://web.ns.svc:8080/")
            .version(Version::HTTP_2)
            .body(full(""))
            .unwrap()
    };
    let [at, authority, _] = seen(&forward, req()).await;
    assert_eq!((at, authority.as_str()), (a.to_string(), "web.ns.svc:8080"));
    // One authority, another endpoint: the connection follows the set.
    set.update([b]).unwrap();
    let [at, authority, _] = seen(&forward, req()).await;
    assert_eq!((at, authority.as_str()), (b.to_string(), "web.ns.svc:8080"));
}
