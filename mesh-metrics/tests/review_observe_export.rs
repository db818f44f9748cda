//! A collector that takes the connection and never answers costs the
//! requests it traces nothing: each is answered at once, one batch waits
//! on the collector, the queue holds `QUEUE` spans, and the rest are
//! dropped and counted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use mesh_metrics::trace::{MAX_BATCH, QUEUE, TraceLayer, Tracer};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};

#[tokio::test]
async fn a_collector_that_never_answers_holds_no_request_and_one_batch() {
    // Takes connections, reads nothing, answers nothing, closes nothing.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = hung.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = hung.accept().await {
            count.fetch_add(1, SeqCst);
            held.push(tcp);
        }
    });
    let (tracer, exporter) =
        Tracer::new(format!("http://{collector}").parse().unwrap(), Vec::new());
    tokio::spawn(exporter.run());

    let app = service_fn(|_: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
    });
    let stack = TraceLayer::inbound(Some(tracer.clone())).layer(app);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, stack, signal));

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let over = 64;
    let requests = QUEUE + MAX_BATCH + over;
    for i in 0..requests {
        sender.ready().await.unwrap();
        let req = Request::get("/")
            .header("host", "web")
            .header(
                "traceparent",
                format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01", i + 1),
            )
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    // One batch (at most MAX_BATCH spans) waits on the collector, the
    // queue holds QUEUE, and every other span was dropped and counted.
    assert!(
        tracer.dropped() >= over as u64,
        "dropped {} of {requests}",
        tracer.dropped()
    );
    assert!(tracer.dropped() <= (requests - QUEUE) as u64);
    assert_eq!(tracer.exported(), 0);
    assert_eq!(accepted.load(SeqCst), 1, "one batch in flight");
}
