//! Detection on real sockets, with first bytes cut the ways clients cut
//! them: a byte and a wait, the HTTP/2 preface over many writes or alone
//! without its end, a request line longer than detection reads, a TLS
//! ClientHello in pieces, and a connection closed before a byte. Each is
//! served, forwarded or closed as `detect` documents, told to the error
//! hook as documented, and none outlasts the detection timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Mutex,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::serve::{
    ConnectionErrorKind, OpaqueConnection, Protocol, Server, ServerConfig,
    shutdown::{self, ShutdownTrigger},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Instant,
};

const DETECT: Duration = Duration::from_secs(3);

struct Served {
    addr: SocketAddr,
    /// What the error hook was told.
    told: mpsc::UnboundedReceiver<(ConnectionErrorKind, String)>,
    /// What each opaque connection carried, to its end.
    opaque: mpsc::UnboundedReceiver<Vec<u8>>,
    _trigger: ShutdownTrigger,
}

/// Answers with the length of the request's path.
async fn path_len(
    req: Request<Incoming>,
) -> Result<Response<mesh_core::body::BoxBody>, Infallible> {
    let len = req.uri().path().len();
    Ok(Response::new(mesh_core::body::full(format!("path={len}"))))
}

async fn serve(config: ServerConfig) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (told_tx, told) = mpsc::unbounded_channel();
    let told_tx = Mutex::new(told_tx);
    let (opaque_tx, opaque) = mpsc::unbounded_channel();
    let server = Server::new(ServerConfig {
        detect_timeout: DETECT,
        ..config
    })
    .on_connection_error(move |e| {
        let _ = told_tx.lock().unwrap().send((e.kind, e.error.to_string()));
    });
    let app = tower::service_fn(move |mut conn: OpaqueConnection| {
        let opaque_tx = opaque_tx.clone();
        async move {
            let mut all = Vec::new();
            conn.io.read_to_end(&mut all).await?;
            let _ = opaque_tx.send(all);
            Ok::<_, std::io::Error>(())
        }
    });
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(server.serve(listener, tower::service_fn(path_len), app, signal));
    Served {
        addr,
        told,
        opaque,
        _trigger: trigger,
    }
}

fn protocol(protocol: Protocol) -> ServerConfig {
    ServerConfig {
        protocol,
        ..ServerConfig::default()
    }
}

async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut read = Vec::new();
    let _ = tcp.read_to_end(&mut read).await;
    read
}

#[tokio::test(start_paused = true)]
async fn first_bytes_that_decide_nothing_end_at_the_detection_timeout() {
    // A byte and a wait; the HTTP/2 preface without its end.
    for first in [&b"G"[..], b"P", b"PRI * HTTP/2.0", b"PRI * HTTP/2.0\r\n"] {
        let name = String::from_utf8_lossy(first);
        // An HTTP-only port closes, and tells of a detection timeout.
        let mut http = serve(protocol(Protocol::Http)).await;
        let mut tcp = TcpStream::connect(http.addr).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let start = Instant::now();
        assert_eq!(read_to_close(&mut tcp).await, b"", "{name:?}");
        assert_eq!(start.elapsed(), DETECT, "{name:?}");
        let (kind, error) = http.told.recv().await.unwrap();
        assert_eq!(
            kind,
            ConnectionErrorKind::DetectTimeout,
            "{name:?}: {error}"
        );

        // A detecting port forwards it at the timeout, the bytes read
        // first and once.
        let mut detect = serve(protocol(Protocol::Detect)).await;
        let mut tcp = TcpStream::connect(detect.addr).await.unwrap();
        tcp.write_all(first).await.unwrap();
        tokio::time::sleep(DETECT * 2).await;
        tcp.write_all(b" and more").await.unwrap();
        tcp.shutdown().await.unwrap();
        let got = detect.opaque.recv().await.unwrap();
        assert_eq!(got, [first, b" and more"].concat(), "{name:?}");
        assert!(detect.told.try_recv().is_err(), "{name:?}");
    }
}

#[tokio::test]
async fn a_request_line_longer_than_detection_reads_is_served_whole() {
    // Detection decides at 16 KiB of a line; hyper reads the rest.
    for port in [Protocol::Http, Protocol::Detect] {
        let served = serve(protocol(port)).await;
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        let request = format!(
            "GET /{} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            "a".repeat(40_000)
        );
        for piece in request.as_bytes().chunks(3000) {
            tcp.write_all(piece).await.unwrap();
        }
        let answer = String::from_utf8(read_to_close(&mut tcp).await).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{port:?}: {answer:.100}"
        );
        assert!(answer.ends_with("path=40001"), "{port:?}: {answer}");
    }
}

#[tokio::test]
async fn a_tls_client_hello_in_pieces_is_not_http_and_an_empty_connection_is_nothing() {
    // The start of a ClientHello, a record header and then the
    // handshake's, sent two bytes at a time.
    let hello: &[u8] = b"\x16\x03\x01\x00\xf4\x01\x00\x00\xf0\x03\x03\xaa\xbb\xcc\xdd";
    let mut http = serve(protocol(Protocol::Http)).await;
    let mut tcp = TcpStream::connect(http.addr).await.unwrap();
    for piece in hello.chunks(2) {
        // Closed as soon as it is decided, maybe before the last pieces.
        let _ = tcp.write_all(piece).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(read_to_close(&mut tcp).await, b"");
    let (kind, error) = http.told.recv().await.unwrap();
    assert_eq!(kind, ConnectionErrorKind::NotHttp, "{error}");

    let mut detect = serve(protocol(Protocol::Detect)).await;
    let mut tcp = TcpStream::connect(detect.addr).await.unwrap();
    for piece in hello.chunks(2) {
        tcp.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    tcp.shutdown().await.unwrap();
    assert_eq!(detect.opaque.recv().await.unwrap(), hello);

    // Closed before a byte: gone, neither told of nor forwarded. A
    // connection served after it shows the server got that far.
    for served in [&mut http, &mut detect] {
        drop(TcpStream::connect(served.addr).await.unwrap());
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        assert!(read_to_close(&mut tcp).await.starts_with(b"HTTP/1.1 200"));
        assert!(served.told.try_recv().is_err());
        assert!(served.opaque.try_recv().is_err());
    }
}

/// A stream that writes at most three bytes a call: the HTTP/2 preface
/// and every frame come in many pieces.
struct Trickle(TcpStream);

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(3);
        Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn an_http2_preface_in_many_writes_is_served_as_http2() {
    for port in [Protocol::Http, Protocol::Detect] {
        for stream_idle_timeout in [None, Some(Duration::from_secs(60))] {
            let served = serve(ServerConfig {
                stream_idle_timeout,
                ..protocol(port)
            })
            .await;
            let tcp = TcpStream::connect(served.addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut send, conn) = hyper::client::conn::http2::handshake(
                TokioExecutor::new(),
                TokioIo::new(Trickle(tcp)),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            let req = Request::get(format!("http://{}/abc", served.addr))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "path=4", "{port:?} {stream_idle_timeout:?}");
        }
    }
}
