//! A connection is counted closed at its first error, as Linkerd counts it:
//! the stream is dead then, even while its owner still holds it, and the
//! `errno` label is that first error's, whatever came after.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use mesh_core::{
    client::ClientConfig,
    conn::{NoTlsReason, Tls},
};
use mesh_metrics::{TcpConnect, TcpMetrics};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tower::{Service, ServiceExt, service_fn};

const OUTBOUND: &str = "direction=\"outbound\",peer=\"dst\",tls=\"disabled\"";

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The value of `series` (name and labels), if the scrape has it.
fn value(text: &str, series: &str) -> Option<i64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    Some(line.rsplit(' ').next()?.parse().unwrap())
}

fn open(text: &str) -> Option<i64> {
    value(text, &format!("tcp_open_connections{{{OUTBOUND}}}"))
}

fn closes(text: &str, errno: &str) -> Option<i64> {
    value(
        text,
        &format!("tcp_close_total{{{OUTBOUND},errno=\"{errno}\"}}"),
    )
}

/// The connection `connect` opens to `addr`, as a client's first request
/// would open it.
async fn dial<C>(mut connect: C, addr: SocketAddr) -> C::Response
where
    C: Service<http::Uri>,
    C::Error: std::fmt::Debug,
{
    connect
        .ready()
        .await
        .unwrap()
        .call(format!("http://{addr}").parse().unwrap())
        .await
        .unwrap()
}

/// A listener whose peer accepts one connection and resets it (linger 0).
async fn resetting_peer() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_zero_linger().unwrap();
        drop(tcp);
    });
    (addr, peer)
}

#[tokio::test]
async fn a_reset_stream_still_held_is_counted_closed_once() {
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let (addr, peer) = resetting_peer().await;
    let connect = TcpConnect::outbound(
        &tcp,
        &Tls::Plaintext(NoTlsReason::Disabled),
        ClientConfig::default().http_connector(),
    );
    let io = dial(connect, addr).await;
    peer.await.unwrap();
    assert_eq!(open(&scrape(&registry)), Some(1));
    let mut io = io.into_inner();
    let mut buf = [0; 16];
    let read = io.read(&mut buf).await;
    assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    // The owner still holds the stream: it is dead all the same.
    let text = scrape(&registry);
    assert_eq!(open(&text), Some(0), "{text}");
    assert_eq!(closes(&text, "ECONNRESET"), Some(1), "{text}");
    // A later failing call and the drop count nothing more.
    let _ = io.read(&mut buf).await;
    drop(io);
    let text = scrape(&registry);
    assert_eq!(open(&text), Some(0), "{text}");
    assert_eq!(closes(&text, "ECONNRESET"), Some(1), "{text}");
    assert_eq!(closes(&text, ""), Some(0), "{text}");
    assert_eq!(
        value(&text, &format!("tcp_open_total{{{OUTBOUND}}}")),
        Some(1),
        "{text}"
    );
}

/// A stream whose first read fails with an error that has no errno, as a
/// layer above the socket makes one; later reads go to the socket.
struct FailsFirst<T> {
    io: T,
    failed: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for FailsFirst<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.failed {
            self.failed = true;
            return Poll::Ready(Err(io::Error::other("framing")));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FailsFirst<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn the_first_error_names_the_close_even_without_an_errno() {
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let (addr, peer) = resetting_peer().await;
    let http = ClientConfig::default().http_connector();
    let inner = service_fn(move |uri: http::Uri| {
        let mut http = http.clone();
        async move {
            let io = http.call(uri).await?.into_inner();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(TokioIo::new(FailsFirst {
                io,
                failed: false,
            }))
        }
    });
    let connect = TcpConnect::outbound(&tcp, &Tls::Plaintext(NoTlsReason::Disabled), inner);
    let io = dial(connect, addr).await;
    peer.await.unwrap();
    let mut io = io.into_inner();
    let mut buf = [0; 16];
    let first = io.read(&mut buf).await.unwrap_err();
    assert!(first.raw_os_error().is_none());
    // The socket's own error comes second: it is not the one counted.
    let second = io.read(&mut buf).await.unwrap_err();
    assert_eq!(second.kind(), io::ErrorKind::ConnectionReset);
    // Counted closed at the first error, before the owner drops it.
    let text = scrape(&registry);
    assert_eq!(open(&text), Some(0), "{text}");
    assert_eq!(closes(&text, ""), Some(1), "{text}");
    assert_eq!(closes(&text, "ECONNRESET"), None, "{text}");
    drop(io);
    let text = scrape(&registry);
    assert_eq!(open(&text), Some(0), "{text}");
    assert_eq!(closes(&text, ""), Some(1), "{text}");
    assert_eq!(closes(&text, "ECONNRESET"), None, "{text}");
}
