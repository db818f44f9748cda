//! The upstream client notices an upstream that stopped answering without
//! closing: its host died, or the path to it dropped, and no FIN or RST
//! will ever come. Without a probe, requests sent on such a pooled
//! connection wait until the kernel gives up retransmitting, a quarter of
//! an hour later.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Empty;
use mesh_core::client::{Client, ClientConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn upstream_connections_get_tcp_keepalive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut connector = ClientConfig::default().http_connector();
    let io = tower::Service::call(&mut connector, format!("http://{addr}").parse().unwrap())
        .await
        .unwrap();
    let sock = socket2::SockRef::from(io.inner());
    assert!(sock.keepalive().unwrap(), "no TCP keepalive");
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(10));
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
}

#[tokio::test]
async fn an_http2_upstream_that_stops_answering_fails_the_request() {
    // An upstream that opens HTTP/2 and then answers nothing, not even a
    // ping: from the client's side, a host that died mid-request.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_request, request_arrived) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        // An empty SETTINGS frame, then silence; frames are read, and the
        // first HEADERS reported.
        conn.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let mut preface = [0; 24];
        conn.read_exact(&mut preface).await.unwrap();
        let mut got_request = Some(got_request);
        loop {
            let mut head = [0; 9];
            if conn.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            if conn.read_exact(&mut payload).await.is_err() {
                return;
            }
            if head[3] == 0x1
                && let Some(tx) = got_request.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let client = Client::<Empty<Bytes>>::new(&ClientConfig::default());
    let req = Request::get(format!("http://{addr}/"))
        .version(Version::HTTP_2)
        .body(Empty::new())
        .unwrap();
    let sent = tokio::spawn(tower::ServiceExt::oneshot(client, req));
    request_arrived.await.unwrap();
    // Only the client's timers are left: the paused clock jumps to them.
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(3600), sent)
        .await
        .expect("the request still waits after an hour")
        .unwrap();
    assert!(answer.is_err(), "an answer from a silent upstream");
    let waited = start.elapsed();
    assert!(waited <= Duration::from_secs(31), "{waited:?}");
}
