//! The demo's traffic stops when told to, even when the mesh has stalled
//! and never answers: otherwise Ctrl-C waits forever, and the only way
//! out, `kill -9`, leaves the CA's keys behind. Real sockets on
//! 127.0.0.1: a server that accepts connections and never answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use mesh_core::serve::shutdown;
use mesh_examples::demo::{apps::Outcomes, traffic};
use tokio::{net::TcpListener, sync::mpsc};

/// A server that holds every connection open without a word; each
/// accepted connection is announced on the channel.
async fn silent_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
            let _ = tx.send(());
        }
    });
    (addr, rx)
}

/// A bound on a test that must end: far above the demo's own waits, so
/// that only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_bot_stops_when_no_request_is_ever_answered() {
    let (addr, mut accepted) = silent_server().await;
    let (stop, _) = shutdown::channel();
    let counts = Arc::new(Outcomes::default());
    let bot = tokio::spawn(traffic::vote_bot(
        addr,
        1000,
        stop.subscribe(),
        counts.clone(),
    ));
    // Every request holds a connection: 64 accepted means every permit
    // is out, and the load generator is waiting for one.
    for _ in 0..64 {
        accepted.recv().await.unwrap();
    }
    stop.trigger();
    let ended = tokio::time::timeout(HANG, bot).await;
    assert!(
        ended.is_ok(),
        "vote-bot did not stop with its requests unanswered"
    );
    // The unanswered requests count as failures, not as nothing.
    assert_eq!((counts.ok(), counts.failed()), (0, 64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_denied_call_stops_when_it_is_never_answered() {
    let (addr, mut accepted) = silent_server().await;
    let (stop, _) = shutdown::channel();
    let counts = Arc::new(traffic::DeniedCounts::default());
    let trespass = tokio::spawn(traffic::trespass(
        addr,
        Duration::from_millis(10),
        stop.subscribe(),
        counts.clone(),
    ));
    accepted.recv().await.unwrap();
    stop.trigger();
    let ended = tokio::time::timeout(HANG, trespass).await;
    assert!(
        ended.is_ok(),
        "the denied call did not stop while unanswered"
    );
}
