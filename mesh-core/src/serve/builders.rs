//! The hyper connection builders a [`Server`](super::Server) serves with,
//! from its [`ServerConfig`].

use std::{sync::Arc, time::Duration};

use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioTimer;
use tracing::Instrument;

use super::{ServerConfig, idle::task::StreamTasks};

/// How much of a response an HTTP/2 stream queues ahead of the socket.
///
/// A client that grants large flow-control windows and reads its socket
/// at a trickle, just fast enough for the write stall bound, has each of
/// its streams' responses queue up in the server to this bound: hyper's
/// default of about 400 KiB let one connection's 200 streams pin 80 MiB.
/// At 64 KiB, four frames of the default size, a fast socket is still
/// kept fed.
const HTTP2_SEND_BUFFER: usize = 64 * 1024;

/// The smallest request head bound applied: hyper's HTTP/1 buffer holds
/// this much whatever is asked, and a head bound smaller than one common
/// request line and its cookies refuses real traffic.
const MIN_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// The most hyper's HTTP/1 connection buffer holds by default (hyper's
/// `DEFAULT_MAX_BUFFER_SIZE`, not exported), and so the largest HTTP/1
/// request head it can read, whatever `max_header_size` says.
const HYPER_HTTP1_BUFFER: usize = 8192 + 4096 * 100;

/// The HTTP/1 and HTTP/2 builders for `config`.
pub(super) fn hyper(config: &ServerConfig) -> (http1::Builder, http2::Builder<InSpan>) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(bounded(config.header_read_timeout))
        .max_header_size(head_bound(config));
    // A head bound past hyper's buffer would hold for HTTP/2 only: HTTP/1
    // would answer 431 once the buffer is full. The buffer may then grow
    // to the bound, with room for the bytes of a body read along with the
    // head; it only grows as a connection's reads need it.
    if head_bound(config) > HYPER_HTTP1_BUFFER {
        http1.max_buf_size(head_bound(config).saturating_add(MIN_REQUEST_HEAD_BYTES));
    }
    (http1, http2(config, InSpan::default()))
}

/// The HTTP/2 builder for `config`, whose streams' tasks `exec` spawns.
///
/// A server builds one; a connection whose streams are timed in their
/// tasks builds its own, as hyper's builder takes its executor only when
/// it is made, and the streams' clocks are handed over per connection.
pub(super) fn http2(config: &ServerConfig, exec: InSpan) -> http2::Builder<InSpan> {
    let mut http2 = http2::Builder::new(exec);
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(
            config
                .http2_keep_alive_interval
                .filter(|interval| !interval.is_zero())
                .map(bounded),
        )
        .keep_alive_timeout(bounded(config.http2_keep_alive_timeout))
        .max_send_buf_size(HTTP2_SEND_BUFFER)
        .max_concurrent_streams(config.http2_max_concurrent_streams.max(1))
        .max_header_list_size(u32::try_from(head_bound(config)).unwrap_or(u32::MAX));
    http2
}

/// The executor of HTTP/2 streams: each stream's task is spawned in the
/// span current when hyper spawns it, which is the connection's (see
/// `Server::serve`), so that what a request's service logs names the
/// connection's peer, as it does over HTTP/1, whose requests run in the
/// connection's own task. Linkerd's proxy spawns its HTTP/2 streams the
/// same way (its `TracingExecutor`). A span that is off costs a lookup of
/// the current span per stream, no allocation.
///
/// A connection whose HTTP/2 streams have a stream idle bound has one of
/// its own, which times each stream's task by the clock the service's
/// call handed over (see [`idle::task`](super::idle::task)).
#[derive(Clone, Debug, Default)]
pub(super) struct InSpan {
    tasks: Option<Arc<StreamTasks>>,
}

impl InSpan {
    /// An executor that times the stream tasks of the connection whose
    /// service's calls hand their clocks over in `tasks`.
    pub(super) fn timing(tasks: Arc<StreamTasks>) -> Self {
        Self { tasks: Some(tasks) }
    }
}

impl<F> hyper::rt::Executor<F> for InSpan
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let timed = self
            .tasks
            .as_ref()
            .and_then(|tasks| Some((tasks, tasks.take()?)));
        match timed {
            Some((tasks, ticket)) => {
                tokio::spawn(tasks.timed(fut, ticket).in_current_span());
            }
            None => {
                tokio::spawn(fut.in_current_span());
            }
        }
    }
}

/// [`ServerConfig::max_request_head_bytes`], raised to the smallest
/// bound applied.
fn head_bound(config: &ServerConfig) -> usize {
    config.max_request_head_bytes.max(MIN_REQUEST_HEAD_BYTES)
}

/// `timeout`, or about 30 years when it is longer: the timers add it to
/// the clock, which panics past its range, and tokio takes 30 years for
/// never too.
pub(super) fn bounded(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(30 * 365 * 86_400))
}
