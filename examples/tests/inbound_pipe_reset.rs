//! The inbound opaque pipe, when the application answers and closes while
//! its client is still sending: the application's kernel resets the
//! connection for the bytes it left unread, and a client talking to it
//! directly would still read the answer, which arrived before the reset;
//! through the sidecar it must too. A copy that ends at the first error
//! of either direction (tokio's `copy_bidirectional`) drops the answer
//! when its next write of the client's bytes meets the reset first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// How much the application reads before it answers: enough that the
/// client's stream is under way through the sidecar.
const READ_FIRST: usize = 64 * 1024;

/// A sidecar whose one inbound port serves `app` as opaque TCP.
fn yaml(app: SocketAddr) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    )
}

/// Reads what `conn` receives until it ends, by a close or a reset.
async fn read_until_the_end(mut conn: tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        let read = tokio::time::timeout(support::WAIT_BOUND, conn.read(&mut buf))
            .await
            .expect("the connection never ended");
        match read {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The client sends without pause, so that the sidecar always has its
/// bytes to pass on to the application; the application reads the first
/// of them, answers `bye` and closes with more unread, which resets the
/// connection right after the answer. Each round is one connection: the
/// sidecar may see the answer before the reset or after it, and the
/// client must read it either way.
#[tokio::test]
async fn an_applications_answer_before_its_reset_reaches_a_client_still_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sidecar = support::sidecar(&yaml(listener.local_addr().unwrap()));
    for round in 0..10 {
        let (read, mut write) = TcpStream::connect(sidecar.inbound[0])
            .await
            .unwrap()
            .into_split();
        let sending = tokio::spawn(async move {
            let chunk = vec![b'x'; 16 * 1024];
            while write.write_all(&chunk).await.is_ok() {}
        });
        let (mut app, _) = listener.accept().await.unwrap();
        let mut first = vec![0; READ_FIRST];
        app.read_exact(&mut first).await.unwrap();
        // More is there, left unread: the close resets the connection.
        let mut peek = [0; 1];
        app.peek(&mut peek).await.unwrap();
        app.write_all(b"bye").await.unwrap();
        drop(app);

        assert_eq!(read_until_the_end(read).await, b"bye", "round {round}");
        sending.abort();
    }
    support::stop(sidecar).await;
}
