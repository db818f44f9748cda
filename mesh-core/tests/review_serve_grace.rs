//! A request still unanswered when the shutdown grace period ends leaves
//! nothing behind: its service future is dropped, on HTTP/2 too, whose
//! streams run in tasks of their own outside the server's, and its
//! client sees it fail rather than wait for ever.
#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::Instant,
};

const GRACE: Duration = Duration::from_secs(5);

/// Counts its drops: held by a service future.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_unanswered_at_the_end_of_the_grace_period_is_dropped() {
    for http2 in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Notify::new());
        let http = {
            let (dropped, started) = (dropped.clone(), started.clone());
            tower::service_fn(move |_: Request<Incoming>| {
                let guard = Dropped(dropped.clone());
                let started = started.clone();
                async move {
                    let _guard = guard;
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, Infallible>(Response::new(mesh_core::body::empty()))
                }
            })
        };
        let (trigger, signal) = shutdown::channel();
        let config = ServerConfig {
            shutdown_grace: GRACE,
            ..ServerConfig::default()
        };
        let server = tokio::spawn(Server::new(config).serve_http(listener, http, signal));

        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let req = Request::get(format!("http://{addr}/"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = if http2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            tokio::spawn(async move { send.send_request(req).await.map(drop) })
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            tokio::spawn(async move { send.send_request(req).await.map(drop) })
        };
        started.notified().await;

        let start = Instant::now();
        trigger.trigger();
        server.await.unwrap();
        assert_eq!(start.elapsed(), GRACE, "http2: {http2}");
        let failed = answer.await.unwrap();
        assert!(failed.is_err(), "http2: {http2}");
        // A stream's task learns its connection is gone when it next runs.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "http2: {http2}");
    }
}
