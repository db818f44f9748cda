//! A `Running` handle dropped without `shutdown` or `join` stops its
//! sidecar: the admin server's own trigger (for `POST /shutdown`) would
//! otherwise keep it serving for the rest of the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

#[tokio::test]
async fn a_dropped_handle_shuts_its_sidecar_down() {
    let running = support::sidecar(
        "admin:\n  listen: 127.0.0.1:0\noutbound:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n  shutdown_grace: 0s\n",
    );
    let admin = running.admin;
    let signal = running.shutdown_signal();
    assert!(!signal.is_triggered());
    drop(running);
    assert!(
        signal.is_triggered(),
        "dropping the handle starts a shutdown"
    );

    // And the listeners close: the admin port stops taking connections.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while tokio::net::TcpStream::connect(admin).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the admin listener is still open");
}
