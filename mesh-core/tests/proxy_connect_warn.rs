//! An upstream that cannot be reached is an operator's business at the
//! default log level, but once per streak of failures, not once per
//! request: the first connection an endpoint refuses after it last
//! answered is a warning, the rest of the streak only debug lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{log_capture::Logs, refused::refused_addr};

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::Level;

const FAILED: &str = "upstream request failed";

fn get() -> Request<Empty<Bytes>> {
    Request::get("/")
        .header("host", "web")
        .body(Empty::new())
        .unwrap()
}

/// A port on 127.0.0.1 that nothing listens on.
async fn refusing() -> SocketAddr {
    refused_addr()
}

/// Answers one request on `listener` with a `200`, and closes the
/// connection, so that the client keeps none to reuse.
async fn answer_once(listener: TcpListener) {
    let (stream, _) = listener.accept().await.unwrap();
    let service = hyper::service::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("connection", "close")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
        .unwrap();
}

fn forward(endpoint: SocketAddr) -> Forward<Client<Empty<Bytes>>> {
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    Forward::new(client, [endpoint]).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_refusing_upstream_is_warned_of_once_per_streak() {
    let (logs, _guard) = Logs::capture();
    let endpoint = refusing().await;
    let forward = forward(endpoint);
    for _ in 0..3 {
        let res = forward.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    let warned = logs.find_at(Level::WARN, FAILED);
    let [line] = warned.as_slice() else {
        panic!("one warning expected for the streak: {warned:?}");
    };
    assert!(line.contains(&format!("endpoint={endpoint}")), "{line}");
    // The whole chain, down to the cause.
    assert!(line.contains("refused"), "{line}");
    // The others of the streak are still there, for whoever looks.
    let quiet = logs.find_at(Level::DEBUG, FAILED);
    assert_eq!(quiet.len(), 2, "{quiet:?}");

    // The endpoint answers: the streak is over.
    let listener = TcpListener::bind(endpoint).await.unwrap();
    let server = tokio::spawn(answer_once(listener));
    let res = forward.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    server.await.unwrap();

    // It refuses again: a new streak, a new warning, then quiet again.
    for _ in 0..2 {
        let res = forward.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    let warned = logs.find_at(Level::WARN, FAILED);
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(
        warned[1].contains(&format!("endpoint={endpoint}")),
        "{warned:?}"
    );
    let quiet = logs.find_at(Level::DEBUG, FAILED);
    assert_eq!(quiet.len(), 3, "{quiet:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_upstream_that_closes_the_connection_it_took_is_not_warned_of() {
    let (logs, _guard) = Logs::capture();
    // It takes every connection, and closes it unread.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        }
    });
    let forward = forward(endpoint);
    for _ in 0..2 {
        let res = forward.clone().oneshot(get()).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_ne!(res.headers()["mesh-error"], "upstream connect error");
    }
    // Not a connection that could not be made: the request's own
    // failure, at debug as before.
    assert!(logs.find_at(Level::WARN, FAILED).is_empty());
    assert_eq!(logs.find_at(Level::DEBUG, FAILED).len(), 2);
}
