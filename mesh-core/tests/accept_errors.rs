//! The accept loop when the process is out of file descriptors: `accept`
//! fails with `EMFILE` until a connection closes somewhere. The loop must
//! neither end (the server would stop listening for good) nor retry at
//! once (it would spin a core while nothing changes). In a test binary of
//! its own, since it takes every descriptor the process may open.
#![allow(clippy::unwrap_used)]

#[path = "support/log_capture.rs"]
mod log_capture;

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::serve::{Server, ServerConfig, shutdown};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket},
};

#[tokio::test]
async fn accept_failing_for_want_of_descriptors_backs_off_and_recovers() {
    let (logs, _guard) = log_capture::Logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, http, shutdown));
    // The client's socket is made first; connecting takes no descriptor.
    let client = TcpSocket::new_v4().unwrap();

    // Take every descriptor left.
    let mut hoard = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(24), "{error}"); // EMFILE
                break;
            }
        }
    }
    let mut conn = client.connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    // A second of failing accepts, by the paused clock: the loop waits
    // between attempts, so the clock has timers to jump to; a loop that
    // retried at once would never let the runtime go idle.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::time::resume();
    assert!(!server.is_finished(), "the server stopped on EMFILE");
    // The failures are logged, saying which listener (a process has
    // several), but warned of once: twenty warnings a second, for as
    // long as descriptors run short, would flood the logs.
    let failed = logs.find("accept failed");
    assert!(failed.len() > 1, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|line| line.contains(&format!("listener={addr}"))),
        "{failed:?}"
    );
    let warned = logs.find_at(tracing::Level::WARN, "accept failed");
    assert_eq!(warned.len(), 1, "{warned:?}");

    // Descriptors come back: the waiting connection is served.
    drop(hoard);
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer:?}");
    // And the recovery is logged, with how many accepts failed.
    let again = logs.find_at(tracing::Level::INFO, "accepting connections again");
    let [again] = again.as_slice() else {
        panic!("{again:?}")
    };
    let (_, count) = again
        .split_once(&format!("listener={addr} failures="))
        .unwrap();
    assert!(count.parse::<usize>().unwrap() >= failed.len(), "{again}");
    trigger.trigger();
    server.await.unwrap();
}
