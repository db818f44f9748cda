//! `/metrics` gzipped for a client whose `Accept-Encoding` allows it, as
//! Prometheus' scrapes do and linkerd2-proxy answers them; the text as it
//! is for every other client. Over real sockets, with a real client.

use std::{io::Read as _, net::SocketAddr};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    admin::{Admin, Readiness},
    serve::{Server, ServerConfig, shutdown},
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

/// Prometheus' own `Accept`, which prefers OpenMetrics.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    direction: &'static str,
    status_code: u16,
}

/// An admin server over a registry of a few dozen series; its address.
async fn admin() -> (SocketAddr, shutdown::ShutdownTrigger) {
    let mut registry = Registry::default();
    let responses = Family::<Labels, Counter>::default();
    registry.register("response", "Responses sent", responses.clone());
    for direction in ["inbound", "outbound"] {
        for status_code in 200..220 {
            responses
                .get_or_create(&Labels {
                    direction,
                    status_code,
                })
                .inc_by(u64::from(status_code));
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let admin = Admin::new(registry, Readiness::new());
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, signal));
    (addr, trigger)
}

/// Sends `method /metrics` with these headers, over HTTP/2 if `h2`;
/// the answer's status, headers and body, as it came.
async fn send(
    addr: SocketAddr,
    method: Method,
    headers: &[(header::HeaderName, &str)],
    h2: bool,
) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<Empty<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/metrics"));
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test]
async fn a_scrape_that_accepts_gzip_gets_the_same_text_gzipped() {
    let (addr, _trigger) = admin().await;
    for accept in [None, Some(PROMETHEUS_ACCEPT)] {
        let accept: Vec<_> = accept.map(|a| (header::ACCEPT, a)).into_iter().collect();
        let (status, plain_headers, plain) = send(addr, Method::GET, &accept, false).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!plain_headers.contains_key(header::CONTENT_ENCODING));
        assert_eq!(plain_headers[header::VARY], "accept, accept-encoding");
        let plain = String::from_utf8(plain.to_vec()).unwrap();
        assert!(plain.contains("direction=\"outbound\""), "{plain}");

        // Prometheus sends `Accept-Encoding: gzip` on every scrape.
        for encoding in ["gzip", "deflate, gzip, br, zstd", "gzip;q=0.5", "*"] {
            let mut with = accept.clone();
            with.push((header::ACCEPT_ENCODING, encoding));
            for h2 in [false, true] {
                let (status, headers, body) = send(addr, Method::GET, &with, h2).await;
                let case = format!("{accept:?} {encoding} h2={h2}");
                assert_eq!(status, StatusCode::OK, "{case}");
                assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "{case}");
                assert_eq!(headers[header::VARY], "accept, accept-encoding", "{case}");
                assert_eq!(
                    headers[header::CONTENT_TYPE],
                    plain_headers[header::CONTENT_TYPE],
                    "{case}"
                );
                assert!(body.len() < plain.len() / 2, "{case}: {}", body.len());
                assert_eq!(gunzip(&body), plain, "{case}");
            }
        }
    }
}

#[tokio::test]
async fn gzip_refused_or_not_asked_for_gets_the_text_as_it_is() {
    let (addr, _trigger) = admin().await;
    let (_, _, plain) = send(addr, Method::GET, &[], false).await;
    for encoding in [
        "gzip;q=0",
        "*, gzip;q=0",
        "gzip;q=0.5, identity",
        "identity",
        "br, deflate",
        "",
    ] {
        let with = [(header::ACCEPT_ENCODING, encoding)];
        let (status, headers, body) = send(addr, Method::GET, &with, false).await;
        assert_eq!(status, StatusCode::OK, "{encoding}");
        assert!(
            !headers.contains_key(header::CONTENT_ENCODING),
            "{encoding}: {headers:?}"
        );
        assert_eq!(
            headers[header::VARY],
            "accept, accept-encoding",
            "{encoding}"
        );
        assert_eq!(body, plain, "{encoding}");
    }
}

#[tokio::test]
async fn head_with_gzip_answers_the_head_only_with_the_gzipped_length() {
    let (addr, _trigger) = admin().await;
    let gzip = [(header::ACCEPT_ENCODING, "gzip")];
    let (_, _, gzipped) = send(addr, Method::GET, &gzip, false).await;
    let (_, _, plain) = send(addr, Method::GET, &[], false).await;
    for h2 in [false, true] {
        let (status, headers, body) = send(addr, Method::HEAD, &gzip, h2).await;
        assert_eq!(status, StatusCode::OK, "h2={h2}");
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "h2={h2}");
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            gzipped.len().to_string().as_str(),
            "h2={h2}"
        );
        assert!(body.is_empty(), "h2={h2}: {body:?}");

        let (status, headers, body) = send(addr, Method::HEAD, &[], h2).await;
        assert_eq!(status, StatusCode::OK, "h2={h2}");
        assert!(!headers.contains_key(header::CONTENT_ENCODING), "h2={h2}");
        assert_eq!(
            headers[header::CONTENT_LENGTH],
            plain.len().to_string().as_str(),
            "h2={h2}"
        );
        assert!(body.is_empty(), "h2={h2}: {body:?}");
    }
}
