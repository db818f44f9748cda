//! The server tells its accept hook what the port carries, once per
//! listener: a hook whose handling of a silent peer depends on the port
//! (mesh-tls serves one on an opaque port as plaintext) learns it there,
//! at no cost per connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, Tls,
    conn::NoTlsReason,
    io::Io,
    serve::{self, Accept, Accepted, OpaqueConnection, Protocol, Retirement, Server, ServerConfig},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Accepts as plaintext, and says in the connection's TLS status whether
/// it was told the port is opaque; counts how often it was told.
#[derive(Clone, Debug, Default)]
struct Told {
    protocol: Option<Protocol>,
    calls: Arc<AtomicUsize>,
}

impl<I: Io> Accept<I> for Told {
    type Io = I;
    type Future = Ready<Result<Accepted<I>, BoxError>>;

    fn accept(&self, io: I) -> Self::Future {
        let reason = match self.protocol {
            Some(Protocol::Opaque) => NoTlsReason::PortSkipped,
            _ => NoTlsReason::NotProvidedByRemote,
        };
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(reason),
            alpn: None,
            retire: Retirement::never(),
        }))
    }

    fn for_protocol(&self, protocol: Protocol) -> Self {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Self {
            protocol: Some(protocol),
            calls: self.calls.clone(),
        }
    }
}

#[tokio::test]
async fn the_hook_is_told_the_ports_protocol_once_per_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hook = Told::default();
    let calls = hook.calls.clone();
    let config = ServerConfig {
        protocol: Protocol::Opaque,
        ..ServerConfig::default()
    };
    let http = tower::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("http")))
    });
    let opaque = tower::service_fn(|mut conn: OpaqueConnection| async move {
        let Tls::Plaintext(reason) = conn.info.tls else {
            return Err::<(), BoxError>("not plaintext".into());
        };
        conn.io.write_all(reason.as_label().as_bytes()).await?;
        conn.io.shutdown().await?;
        Ok(())
    });
    let (stop, shutdown) = serve::shutdown::channel();
    let server = tokio::spawn(
        Server::new(config)
            .with_accept(hook)
            .serve(listener, http, opaque, shutdown),
    );
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut seen = String::new();
        tcp.read_to_string(&mut seen).await.unwrap();
        assert_eq!(seen, "port_skipped");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    stop.trigger();
    server.await.unwrap();
}
