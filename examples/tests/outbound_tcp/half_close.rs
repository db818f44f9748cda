//! A client that ends its side first still gets the answer, and one whose
//! application ended first can still send: each side's end is passed on
//! alone, through a TCP port and a `CONNECT` tunnel, over mutual TLS
//! (where the end travels as `close_notify`) and HTTP/2 (as
//! `END_STREAM`), while the other direction stays open.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{client_side, mtls_pair, server_side};
use crate::support::*;

/// An application that answers only once the client has ended its side:
/// it reads to the end, then writes how many bytes it read and closes.
async fn count_then_answer_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut read = Vec::new();
                if tcp.read_to_end(&mut read).await.is_ok() {
                    let answer = format!("read {} bytes", read.len());
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                }
            });
        }
    });
    addr
}

/// An application that speaks first and ends its side at once, then
/// reads to the end of the client's and reports how many bytes it read.
async fn greet_then_count_app() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                tcp.write_all(b"hello").await.unwrap();
                tcp.shutdown().await.unwrap();
                let mut read = Vec::new();
                let _ = tcp.read_to_end(&mut read).await;
                let _ = tx.send(read.len());
            });
        }
    });
    (addr, rx)
}

/// Writes `bytes` to `io`, ends its side, and reads the answer to the end.
async fn send_then_end<IO>(mut io: IO, bytes: &[u8]) -> String
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    io.write_all(bytes).await.unwrap();
    io.shutdown().await.unwrap();
    let mut answer = Vec::new();
    io.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn an_answer_sent_after_the_clients_end_crosses_two_sidecars_over_mtls() {
    let app = count_then_answer_app().await;
    let (_certs, db, web) = mtls_pair(|certs| server_side(certs, app));
    let sent = pattern(200 * 1024);

    let tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    assert_eq!(send_then_end(tcp, &sent).await, "read 204800 bytes");

    let (tunnel, head) = connect_head(web.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(send_then_end(tunnel, &sent).await, "read 204800 bytes");

    stop(web).await;
    stop(db).await;
}

#[tokio::test]
async fn an_http2_connect_passes_the_clients_end_stream_on_and_gets_the_answer() {
    let app = count_then_answer_app().await;
    let web = sidecar(&client_side(None, &[app], None));
    let req = http::Request::connect("db:5432")
        .version(http::Version::HTTP_2)
        .body(full(""))
        .unwrap();
    let mut res = h2_via(web.outbound, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
    let tunnel = hyper_util::rt::TokioIo::new(upgraded);
    assert_eq!(
        send_then_end(tunnel, b"over a stream").await,
        "read 13 bytes"
    );
    stop(web).await;
}

#[tokio::test]
async fn a_client_keeps_sending_after_the_applications_end_crosses_two_sidecars_over_mtls() {
    let (app, mut counts) = greet_then_count_app().await;
    let (_certs, db, web) = mtls_pair(|certs| server_side(certs, app));
    let sent = pattern(200 * 1024);

    let (tunnel, head) = connect_head(web.outbound, "db:5432").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let tcp = TcpStream::connect(web.outbound_ports[0]).await.unwrap();
    for mut io in [tunnel, tcp] {
        // The greeting, then the application's end...
        let mut greeting = Vec::new();
        io.read_to_end(&mut greeting).await.unwrap();
        assert_eq!(greeting, b"hello");
        // ... and the client's bytes still reach it.
        io.write_all(&sent).await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(counts.recv().await, Some(sent.len()));
    }
    stop(web).await;
    stop(db).await;
}
