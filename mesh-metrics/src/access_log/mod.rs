//! HTTP access logs: a line per request, in Linkerd's two formats.
//!
//! Metrics count requests; an access log keeps each one, for audits and
//! for the question metrics cannot answer afterwards: who called what,
//! when, and what they got. Linkerd's proxy writes one when a workload
//! asks for it (`config.linkerd.io/access-log`), in the Apache Common Log
//! Format or as JSON, with the same fields; so does [`AccessLogLayer`]:
//!
//! ```text
//! 10.42.0.63:51160 spiffe://cluster.local/ns/booksapp/sa/traffic - [2022-08-23T20:28:20.071809491Z] "GET /authors HTTP/1.1" 200
//! ```
//!
//! ```text
//! {"client.addr":"10.42.0.63:51160","client.id":"spiffe://cluster.local/ns/booksapp/sa/traffic","host":"webapp:7000","method":"GET","processing_ns":"41210","request_bytes":"","response_bytes":"2160","status":200,"timestamp":"2022-08-23T20:28:20.071809491Z","total_ns":"1310202","trace_id":"","uri":"/authors","user_agent":"curl/8.5.0","version":"HTTP/1.1"}
//! ```
//!
//! The fields are Linkerd's: the client's address and mesh identity (`-`
//! without one; JSON leaves an unknown address empty), when the request arrived (UTC), its method, URI (less
//! any userinfo: credentials a client wrote into it) and version, the `host` and `user-agent` headers, the trace id from
//! `x-b3-traceid`, `x-request-id` or `x-amzn-trace-id`, the request's
//! `content-length` (empty when absent) and the response's (no field when
//! absent), the status, the
//! time from the request to the response head (`total_ns`), and the part
//! of it the proxy spent working on the request rather than waiting
//! (`processing_ns`).
//!
//! In the Apache format, the request's `"`, `\` and control characters
//! are escaped as Apache escapes them (`\"`, `\\`, `\xhh`), so that a
//! request target cannot end its quoted field; JSON escapes its own, and
//! DEL and C1 controls as `\u00hh` besides (JSON need not, but a terminal
//! that shows the log may act on them).
//!
//! The JSON fields are of the types Linkerd's are, so that a pipeline that
//! reads Linkerd's lines with typed fields reads these: `status` is a
//! number, and every other field a string, `total_ns` and `processing_ns`
//! too (nanoseconds in decimal digits: linkerd2-proxy records them with
//! `Display`).
//!
//! A line is written when the response head arrives. A request that gets
//! no response (the client went away first, or the request failed) is
//! logged too, as Linkerd logs it when its span closes: without a status
//! (`-` in the Apache format, no `status` nor `response_bytes` field in
//! JSON, as Linkerd leaves out a field it never recorded), and with
//! `total_ns` the time until then. Who called what is known, and an audit
//! must not lose the calls that timed out on the client's side. (Linkerd's
//! line leaves out `total_ns` and `processing_ns` too; ours keep them, of
//! the same type, because how long the client waited is what such an
//! audit asks.)
//!
//! # Writing without blocking
//!
//! A request never waits for the log: its entry goes through a bounded
//! queue ([`QUEUE`] lines) to an [`AccessLogWriter`] that the process runs
//! as a task, and that writes the lines where it is told (the sidecar:
//! standard error, as Linkerd's proxy does). The request path only copies
//! the entry's fields, into one allocation; the writer formats the line
//! straight into the buffer it writes. When the writer falls behind (the
//! queue holds [`QUEUE`] lines or [`MAX_QUEUED_BYTES`]), lines
//! are dropped and counted ([`AccessLog::dropped`], and
//! `access_log_dropped_lines_total` once [registered](AccessLog::register)),
//! rather than slowing the traffic down. A process stops its writer with
//! [`AccessLogWriter::run_until`] once its servers have drained: the
//! lines still queued are written then, not lost with the task.

mod format;
mod service;

use std::{
    future::Future,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

use self::format::Entry;
pub use self::{
    format::AccessLogFormat,
    service::{AccessLogFuture, AccessLogLayer, AccessLogService},
};

/// The lines queued for the writer before further ones are dropped.
pub const QUEUE: usize = 4096;

/// The most bytes the lines waiting for the writer may hold: 16 MiB.
/// Each holds a copy of its request's URI and headers, which a client may
/// make hundreds of kilobytes long, so [`QUEUE`] lines alone bound nothing
/// that matters; past this, lines are dropped and counted as when the
/// queue is full. Lines of ordinary requests (a few hundred bytes) fill
/// the queue long before.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// The bytes of a batch's buffer the writer keeps for the next one.
const KEPT_BATCH: usize = 64 * 1024;

/// Where a layer's lines go: a handle on the queue to the writer.
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct AccessLog {
    format: AccessLogFormat,
    lines: mpsc::Sender<Box<Entry>>,
    /// The bytes the queued lines hold, shared with the writer.
    queued: Arc<AtomicUsize>,
    dropped: Counter,
}

/// Writes the lines of an [`AccessLog`]; run [`AccessLogWriter::run`]
/// once, as a task.
#[derive(Debug)]
pub struct AccessLogWriter {
    format: AccessLogFormat,
    lines: mpsc::Receiver<Box<Entry>>,
    queued: Arc<AtomicUsize>,
}

impl AccessLog {
    /// A log in `format`, and the writer that writes its lines.
    pub fn new(format: AccessLogFormat) -> (Self, AccessLogWriter) {
        let (lines, receiver) = mpsc::channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let log = Self {
            format,
            lines,
            queued: queued.clone(),
            dropped: Counter::default(),
        };
        let writer = AccessLogWriter {
            format,
            lines: receiver,
            queued,
        };
        (log, writer)
    }

    /// The format of its lines.
    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// How many lines were dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Registers `access_log_dropped_lines_total` in `registry`: the lines
    /// dropped because the writer fell behind.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "access_log_dropped_lines",
            "Access log lines dropped because the writer fell behind",
            self.dropped.clone(),
        );
    }

    fn write(&self, entry: Box<Entry>) {
        let size = entry.size();
        let before = self.queued.fetch_add(size, Ordering::Relaxed);
        if before + size > MAX_QUEUED_BYTES || self.lines.try_send(entry).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.dropped.inc();
        }
    }
}

impl AccessLogWriter {
    /// Writes every line to `out`, each followed by a newline, until every
    /// [`AccessLog`] handle is gone. A process that keeps a handle for as
    /// long as it runs never sees that happen, and stops its writer with
    /// [`AccessLogWriter::run_until`] instead.
    ///
    /// # Errors
    ///
    /// When `out` cannot be written; the lines not written yet are lost.
    pub async fn run<W: AsyncWrite + Unpin>(self, out: W) -> std::io::Result<()> {
        self.run_until(out, std::future::pending()).await
    }

    /// Like [`AccessLogWriter::run`], until `stop` resolves: then the queue
    /// closes (a line logged later is dropped and counted), the lines it
    /// holds are written, and the writer returns.
    ///
    /// A server stops its writer once every runtime that logs has drained,
    /// so that the lines of the last requests are written rather than lost
    /// with the task. A sink that does not take them holds the writer as
    /// it would [`run`](Self::run): bound the wait with a timeout of the
    /// caller's if the sink may block.
    ///
    /// # Errors
    ///
    /// When `out` cannot be written; the lines not written yet are lost.
    pub async fn run_until<W: AsyncWrite + Unpin>(
        mut self,
        mut out: W,
        stop: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut stop = pin!(stop);
        let mut stopped = false;
        let mut batch = Vec::new();
        loop {
            let next = tokio::select! {
                biased;
                () = &mut stop, if !stopped => {
                    // The lines queued stay to be received; none joins them.
                    self.lines.close();
                    stopped = true;
                    continue;
                }
                next = self.lines.recv() => next,
            };
            let Some(entry) = next else {
                return Ok(());
            };
            batch.clear();
            self.render(&entry, &mut batch);
            // Whatever else is queued goes out in the same write.
            while let Ok(entry) = self.lines.try_recv() {
                self.render(&entry, &mut batch);
            }
            out.write_all(&batch).await?;
            out.flush().await?;
            // A burst's buffer is not kept for ever.
            batch.shrink_to(KEPT_BATCH);
        }
    }

    /// Appends `entry`'s line to `batch`, and frees its room in the queue.
    fn render(&self, entry: &Entry, batch: &mut Vec<u8>) {
        entry.render(self.format, batch);
        batch.push(b'\n');
        self.queued.fetch_sub(entry.size(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
