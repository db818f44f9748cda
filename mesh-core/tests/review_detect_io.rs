//! What detection leaves with a connection it hands on: every byte it
//! read, replayed once, and, once they are read, not the buffer that held
//! them.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use mesh_core::{
    detect::{Detected, detect},
    io::PrefixedIo,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes that say when they are let go.
struct Tracked {
    bytes: Vec<u8>,
    freed: Arc<AtomicBool>,
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn replayed_bytes_are_let_go_once_read() {
    // Detection's buffer (a kibibyte at least, 16 KiB and more behind a
    // long request line) would otherwise stay with the connection for as
    // long as it is open: an opaque pipe, or a keep-alive connection, for
    // hours.
    let freed = Arc::new(AtomicBool::new(false));
    let prefix = Bytes::from_owner(Tracked {
        bytes: b"GET / HTTP/1.1\r\n".to_vec(),
        freed: freed.clone(),
    });
    let (mut peer, conn) = tokio::io::duplex(64);
    let mut io = PrefixedIo::new(prefix, conn);
    // Taken in two reads: the first leaves some to replay.
    let mut head = [0; 10];
    io.read_exact(&mut head).await.unwrap();
    assert!(!freed.load(Ordering::SeqCst), "bytes still to replay");
    let mut tail = [0; 6];
    io.read_exact(&mut tail).await.unwrap();
    assert_eq!([&head[..], &tail[..]].concat(), b"GET / HTTP/1.1\r\n");
    assert!(
        freed.load(Ordering::SeqCst),
        "the replayed bytes' buffer is held after they were all read"
    );
    // The stream goes on.
    peer.write_all(b"host: a\r\n").await.unwrap();
    drop(peer);
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"host: a\r\n");
}

#[tokio::test]
async fn a_request_sent_a_byte_at_a_time_is_replayed_whole_and_once() {
    // Each byte is a read of its own; detection decides at the line's end
    // and hands on every byte it read, then the stream where it stopped.
    let request = b"\r\nGET /a?b=c HTTP/1.1\r\nhost: a\r\n\r\n";
    let (mut peer, conn) = tokio::io::duplex(1);
    let writer = tokio::spawn(async move {
        for byte in request {
            peer.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let (detected, mut io) = detect(conn, Duration::from_secs(10)).await.unwrap();
    assert_eq!(detected, Some(Detected::Http1));
    let mut got = Vec::new();
    io.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    assert_eq!(got, request);
}
