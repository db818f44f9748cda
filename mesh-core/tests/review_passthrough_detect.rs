//! A connection the accept hook passed through (`Tls::Passthrough`, the
//! application's own TLS) goes to the opaque handler without protocol
//! detection, on every port protocol: its bytes are never read as HTTP,
//! and a port that serves HTTP only does not close it. The hook here
//! passes plaintext through, so that its first bytes can be a request
//! line detection would take for HTTP/1 (or the HTTP/2 preface), which a
//! real ClientHello never is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    conn::{Sni, Tls},
    serve::{Accept, Accepted, OpaqueConnection, Protocol, Retirement, Server, ServerConfig},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const HTTP1: &[u8] = b"GET / HTTP/1.1\r\nhost: app.example\r\nconnection: close\r\n\r\n";
const HTTP2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An accept hook that passes every connection through, as mesh-tls's
/// does one whose ClientHello named another server.
#[derive(Clone)]
struct PassThrough;

impl Accept<TcpStream> for PassThrough {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, io: TcpStream) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Passthrough {
                sni: Sni::parse("app.example").unwrap(),
            },
            alpn: None,
            retire: Retirement::never(),
        }))
    }
}

struct Served {
    addr: SocketAddr,
    http: Arc<AtomicUsize>,
    opaque: Arc<AtomicUsize>,
}

/// Serves `protocol` with the pass-through hook: the HTTP service counts
/// its requests; the opaque handler counts its connections, checks it was
/// told of the passthrough, and answers `opaque:` and the first `len`
/// bytes it reads.
async fn serve(protocol: Protocol, len: usize) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (http_count, opaque_count) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let requests = http_count.clone();
    let http = tower::service_fn(move |_: Request<Incoming>| {
        requests.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(mesh_core::body::full("http"))) }
    });
    let connections = opaque_count.clone();
    let opaque = tower::service_fn(move |mut conn: OpaqueConnection| {
        connections.fetch_add(1, Ordering::Relaxed);
        async move {
            assert!(
                matches!(conn.info.tls, Tls::Passthrough { .. }),
                "{:?}",
                conn.info
            );
            let mut got = vec![0; len];
            conn.io.read_exact(&mut got).await?;
            conn.io.write_all(b"opaque:").await?;
            conn.io.write_all(&got).await?;
            conn.io.shutdown().await
        }
    });
    let (trigger, shutdown) = mesh_core::serve::shutdown::channel();
    // Serves for the rest of the test.
    std::mem::forget(trigger);
    let config = ServerConfig {
        protocol,
        ..ServerConfig::default()
    };
    let server = Server::new(config).with_accept(PassThrough);
    tokio::spawn(server.serve(listener, http, opaque, shutdown));
    Served {
        addr,
        http: http_count,
        opaque: opaque_count,
    }
}

/// Sends `bytes` to `addr` and reads the answer until the close.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut got),
    )
    .await
    .expect("the connection never closed")
    .unwrap();
    got
}

#[tokio::test]
async fn a_passed_through_connection_is_never_read_as_http() {
    for protocol in [Protocol::Http, Protocol::Detect, Protocol::Opaque] {
        for bytes in [HTTP1, HTTP2] {
            let served = serve(protocol, bytes.len()).await;
            let got = exchange(served.addr, bytes).await;
            assert_eq!(
                got,
                [b"opaque:".as_slice(), bytes].concat(),
                "{protocol:?}: {}",
                String::from_utf8_lossy(&got)
            );
            assert_eq!(served.opaque.load(Ordering::Relaxed), 1, "{protocol:?}");
            assert_eq!(served.http.load(Ordering::Relaxed), 0, "{protocol:?}");
        }
    }
}
