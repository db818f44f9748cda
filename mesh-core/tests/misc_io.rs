//! `PrefixedIo` over real sockets: a half-close goes through to the peer
//! while the replayed bytes and the rest of the stream can still be read,
//! and a read error after the prefix is the stream's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use mesh_core::io::PrefixedIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

#[tokio::test]
async fn a_half_close_reaches_the_peer_and_reading_goes_on() {
    let (mut peer, conn) = pair().await;
    let mut io = PrefixedIo::new(Bytes::from_static(b"GET "), conn);
    io.write_all(b"answer").await.unwrap();
    io.shutdown().await.unwrap();
    // The peer sees what was written, then the end of the stream.
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"answer");
    // Its own direction is still open: the prefix, then what it sends.
    peer.write_all(b"/ HTTP/1.1\r\n").await.unwrap();
    peer.shutdown().await.unwrap();
    let mut read = Vec::new();
    io.read_to_end(&mut read).await.unwrap();
    assert_eq!(read, b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn a_reset_after_the_prefix_is_the_streams_error() {
    let (peer, conn) = pair().await;
    let mut io = PrefixedIo::new(Bytes::from_static(b"abc"), conn);
    // A peer that closes with a zero linger resets the connection.
    peer.set_zero_linger().unwrap();
    drop(peer);
    let mut buf = [0; 3];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc");
    let error = io.read(&mut buf).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
}
