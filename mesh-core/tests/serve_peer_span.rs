//! Every line logged while a connection is served names its peer and the
//! port it came in on, through the connection's span,
//! `conn{peer=<addr> port=<port>}`: the accept hook's (a TLS handshake
//! refused), which is handed the stream alone and could not name the peer
//! itself, and a request's service's. The line said once a connection
//! closed with an error names the peer itself, and only once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture::Logs;

use std::{
    convert::Infallible,
    fmt::{self, Write as _},
    future::{Ready, ready},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::{body::Incoming, client::conn};
use hyper_util::rt::TokioIo;
use mesh_core::{
    BoxError,
    serve::{Accept, Accepted, Server, ServerConfig, shutdown},
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};
use tracing::{
    Event, Id, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Record},
    subscriber::Interest,
};

/// The lines logged on this thread while the guard lives, each laid out
/// as tracing-subscriber's formatter does: the spans it was logged in,
/// outermost first (`name{field=value ...}:`), then its message and
/// fields. The binary's forwarding capture ([`Logs`]) keeps no span.
///
/// This one is the thread's default, which races tracing's callsite
/// cache only while no subscriber says "sometimes" for every callsite:
/// the binary's forwarding capture is installed first, and says it. It
/// tells tracing no current span (the type that would is tracing-core's,
/// not a dependency here), so a future spawned `in_current_span` is in no
/// span under it.
#[derive(Clone, Default)]
struct SpanLines(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Each span made: its `name{fields}`, and its metadata.
    spans: Mutex<Vec<(String, &'static Metadata<'static>)>>,
    /// The spans entered, innermost last.
    stack: Mutex<Vec<u64>>,
    lines: Mutex<Vec<String>>,
}

impl SpanLines {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        drop(Logs::capture());
        let lines = Self::default();
        let guard = tracing::subscriber::set_default(lines.clone());
        (lines, guard)
    }

    /// The lines whose message, after their spans, starts with `message`.
    fn find(&self, message: &str) -> Vec<String> {
        let lines = self.0.lines.lock().unwrap();
        lines
            .iter()
            .filter(|line| {
                let text = line.rsplit_once("}: ").map_or(line.as_str(), |(_, t)| t);
                text.starts_with(message)
            })
            .cloned()
            .collect()
    }
}

/// A message, and the other fields as ` name=value` each.
#[derive(Default)]
struct Fields {
    message: String,
    fields: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for SpanLines {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        let text = format!(
            "{}{{{}}}",
            span.metadata().name(),
            fields.fields.trim_start()
        );
        let mut spans = self.0.spans.lock().unwrap();
        spans.push((text, span.metadata()));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = self.0.spans.lock().unwrap();
        let mut line = String::new();
        for id in self.0.stack.lock().unwrap().iter() {
            let _ = write!(line, "{}:", spans[*id as usize - 1].0);
        }
        if !line.is_empty() {
            line.push(' ');
        }
        let _ = write!(line, "{}{}", fields.message, fields.fields);
        self.0.lines.lock().unwrap().push(line);
    }

    fn enter(&self, span: &Id) {
        self.0.stack.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut stack = self.0.stack.lock().unwrap();
        if let Some(at) = stack.iter().rposition(|id| *id == span.into_u64()) {
            stack.remove(at);
        }
    }
}

/// An accept hook that refuses every connection, logging why as
/// mesh-tls's does: with no word of the peer, which it is not told.
#[derive(Clone)]
struct Refusing;

impl Accept<TcpStream> for Refusing {
    type Io = TcpStream;
    type Future = Ready<Result<Accepted<TcpStream>, BoxError>>;

    fn accept(&self, _: TcpStream) -> Self::Future {
        tracing::debug!(reason = "tls_plaintext", "inbound tls refused");
        ready(Err("plaintext refused".into()))
    }
}

/// A server whose service logs each request it answers.
async fn serve<A: Accept<TcpStream>>(accept: A) -> (SocketAddr, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, signal) = shutdown::channel();
    let http = tower::service_fn(|req: Request<Incoming>| async move {
        tracing::info!(version = ?req.version(), "answering");
        Ok::<_, Infallible>(Response::new(mesh_core::body::full("ok")))
    });
    let server = Server::new(ServerConfig::default()).with_accept(accept);
    tokio::spawn(server.serve_http(listener, http, signal));
    (addr, trigger)
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("http://a/").body(Empty::new()).unwrap()
}

#[tokio::test]
async fn a_refused_handshakes_line_names_the_peer_and_the_port() {
    let (lines, _guard) = SpanLines::capture();
    let (addr, _trigger) = serve(Refusing).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    // The server closes the connection it refused.
    assert_eq!(tcp.read(&mut [0; 1]).await.unwrap(), 0);

    let refused = lines.find("inbound tls refused");
    assert_eq!(
        refused,
        [format!(
            "conn{{peer={peer} port={}}}: inbound tls refused reason=\"tls_plaintext\"",
            addr.port()
        )]
    );
    // Said when the connection is done, out of its span: the peer once.
    let closed = lines.find("connection closed with an error");
    let [line] = closed.as_slice() else {
        panic!("one line expected: {closed:?}");
    };
    assert_eq!(line.matches(&peer.to_string()).count(), 1, "{line}");
    assert!(line.contains(&format!("peer={peer}")), "{line}");
    assert!(line.contains("plaintext refused"), "{line}");
}

#[tokio::test]
async fn a_services_lines_name_the_peer() {
    let (lines, _guard) = SpanLines::capture();
    let (addr, _trigger) = serve(mesh_core::serve::PlaintextAccept).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let (mut send, conn) = conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    send.send_request(request()).await.unwrap();

    assert_eq!(
        lines.find("answering"),
        [format!(
            "conn{{peer={peer} port={}}}: answering version=HTTP/1.1",
            addr.port()
        )]
    );
}
