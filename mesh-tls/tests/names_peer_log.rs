//! The acceptor's line for a refused handshake names the client: the
//! acceptor is handed the stream alone, and the server logs it in the
//! connection's span, `conn{peer=<addr> port=<port>}`, as it does every
//! line said while the connection is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    fmt::{self, Write as _},
    sync::{Arc, Mutex},
};

use mesh_tls::InboundMode;
use support::*;
use tracing::{
    Event, Id, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Record},
    subscriber::Interest,
};

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

/// The lines logged on this thread while the guard lives, each laid out
/// as tracing-subscriber's formatter does: the spans it was logged in,
/// outermost first (`name{field=value ...}:`), then its message and
/// fields. The binary's forwarding capture ([`Events`]) keeps no span.
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
        drop(Events::capture());
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

#[tokio::test]
async fn a_refused_handshakes_line_names_the_client() {
    let (lines, _guard) = SpanLines::capture();
    let server = serve(store(&ca(), WEB), InboundMode::Strict).await;
    // Plaintext, on a port that takes mutual TLS only.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let client = tcp.local_addr().unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(hyper_util::rt::TokioIo::new(tcp))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get("/")
        .body(http_body_util::Empty::new())
        .unwrap();
    send.send_request(req).await.expect_err("refused");
    let _ = conn.await;

    let refused = lines.find("inbound tls refused");
    let [line] = refused.as_slice() else {
        panic!("one line expected: {refused:?}");
    };
    let span = format!("conn{{peer={client} port={}}}: ", server.addr.port());
    assert!(line.starts_with(&span), "{line}");
    assert!(line.contains("reason=\"plaintext_refused\""), "{line}");
    server.stop().await;
}
