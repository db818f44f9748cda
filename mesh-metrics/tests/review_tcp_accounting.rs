//! What the transport families count on each kind of I/O result, over a
//! stream whose results a test scripts: bytes are what the stream took or
//! gave (a partial write counts its part, a vectored write what it wrote,
//! a failed write nothing), an end of stream is no close, and a close is
//! counted once, at the first error of any operation (flush and shutdown
//! too) with that error's errno, or at the drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use mesh_core::serve::{Accept, PlaintextAccept};
use mesh_metrics::{TcpAccept, TcpMetrics, tcp::CountingIo};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const INBOUND: &str =
    "direction=\"inbound\",peer=\"src\",tls=\"no_identity\",no_tls_reason=\"no_tls_from_remote\"";

/// One scripted result of a stream operation.
enum Step {
    /// A read that gives these bytes (none: end of stream).
    Read(&'static [u8]),
    /// A write (plain or vectored) that takes at most this many bytes.
    Write(usize),
    /// Any operation that fails with this errno.
    Fail(i32),
    /// A flush or shutdown that succeeds.
    Done,
}

/// A stream that answers each operation with the next step of its script.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<VecDeque<Step>>>);

impl Scripted {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self(Arc::new(Mutex::new(steps.into_iter().collect())))
    }

    fn next(&self) -> Step {
        self.0.lock().unwrap().pop_front().expect("script ran out")
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(match self.next() {
            Step::Read(bytes) => {
                buf.put_slice(bytes);
                Ok(())
            }
            Step::Fail(errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => panic!("a read where the script has no read"),
        })
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.next() {
            Step::Write(most) => Ok(buf.len().min(most)),
            Step::Fail(errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => panic!("a write where the script has no write"),
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        Poll::Ready(match self.next() {
            Step::Write(most) => Ok(len.min(most)),
            Step::Fail(errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => panic!("a write where the script has no write"),
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.next() {
            Step::Done => Ok(()),
            Step::Fail(errno) => Err(io::Error::from_raw_os_error(errno)),
            _ => panic!("a flush where the script has none"),
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A registry with the transport families, and `script`'s stream accepted
/// through [`TcpAccept`] with the plaintext hook.
async fn accepted(script: Scripted) -> (Registry, CountingIo<Scripted>) {
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let io = TcpAccept::inbound(&tcp, PlaintextAccept)
        .accept(script)
        .await
        .unwrap()
        .io;
    (registry, io)
}

/// The value of `family{INBOUND<extra>}`, if the scrape has it.
fn value(registry: &Registry, family: &str, extra: &str) -> Option<i64> {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    let series = format!("{family}{{{INBOUND}{extra}}} ");
    let line = text.lines().find(|l| l.starts_with(&series))?;
    Some(line[series.len()..].parse().unwrap())
}

fn written(registry: &Registry) -> Option<i64> {
    value(registry, "tcp_write_bytes_total", "")
}

fn read(registry: &Registry) -> Option<i64> {
    value(registry, "tcp_read_bytes_total", "")
}

fn open(registry: &Registry) -> Option<i64> {
    value(registry, "tcp_open_connections", "")
}

fn closes(registry: &Registry, errno: &str) -> Option<i64> {
    value(registry, "tcp_close_total", &format!(",errno=\"{errno}\""))
}

#[tokio::test]
async fn a_partial_write_counts_the_part_the_stream_took() {
    let (registry, mut io) = accepted(Scripted::new([Step::Write(3), Step::Write(4)])).await;
    assert_eq!(io.write(b"0123456789").await.unwrap(), 3);
    assert_eq!(written(&registry), Some(3));
    assert_eq!(io.write(b"3456789").await.unwrap(), 4);
    assert_eq!(written(&registry), Some(7));
}

#[tokio::test]
async fn a_vectored_write_counts_what_it_wrote_of_all_its_slices() {
    let (registry, mut io) = accepted(Scripted::new([Step::Write(7), Step::Write(100)])).await;
    assert!(io.is_write_vectored());
    let bufs = [IoSlice::new(b"hello"), IoSlice::new(b"world")];
    assert_eq!(io.write_vectored(&bufs).await.unwrap(), 7);
    assert_eq!(written(&registry), Some(7));
    assert_eq!(io.write_vectored(&bufs).await.unwrap(), 10);
    assert_eq!(written(&registry), Some(17));
}

#[tokio::test]
async fn a_write_that_fails_after_part_was_sent_counts_the_part_and_one_close() {
    // write_all: 4 bytes go, then the peer is gone (EPIPE).
    let (registry, mut io) = accepted(Scripted::new([Step::Write(4), Step::Fail(32)])).await;
    let err = io.write_all(b"0123456789").await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(32));
    assert_eq!(written(&registry), Some(4));
    // Closed at the error, though the stream is still held.
    assert_eq!(open(&registry), Some(0));
    assert_eq!(closes(&registry, "EPIPE"), Some(1));
    drop(io);
    assert_eq!(open(&registry), Some(0));
    assert_eq!(closes(&registry, "EPIPE"), Some(1));
    assert_eq!(closes(&registry, ""), Some(0));
}

#[tokio::test]
async fn an_end_of_stream_is_no_close_and_the_drop_is_a_clean_one() {
    let (registry, mut io) = accepted(Scripted::new([
        Step::Read(b"abc"),
        Step::Read(b""),
        Step::Read(b""),
    ]))
    .await;
    let mut buf = Vec::new();
    assert_eq!(io.read_to_end(&mut buf).await.unwrap(), 3);
    assert_eq!(io.read(&mut [0; 8]).await.unwrap(), 0);
    assert_eq!(read(&registry), Some(3));
    // Half closed by the peer: we may still write, the connection is open.
    assert_eq!(open(&registry), Some(1));
    assert_eq!(closes(&registry, ""), Some(0));
    drop(io);
    assert_eq!(open(&registry), Some(0));
    assert_eq!(closes(&registry, ""), Some(1));
}

#[tokio::test]
async fn flush_and_shutdown_count_no_bytes_and_their_first_error_closes() {
    let (registry, mut io) = accepted(Scripted::new([
        Step::Write(5),
        Step::Done,
        Step::Fail(104),
        Step::Fail(107),
    ]))
    .await;
    io.write_all(b"hello").await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(written(&registry), Some(5));
    assert_eq!(open(&registry), Some(1));
    // The shutdown finds the connection reset; a second one, not
    // connected, is its consequence and no second close.
    assert!(io.shutdown().await.is_err());
    assert!(io.shutdown().await.is_err());
    drop(io);
    assert_eq!(written(&registry), Some(5));
    assert_eq!(open(&registry), Some(0));
    assert_eq!(closes(&registry, "ECONNRESET"), Some(1));
    assert_eq!(closes(&registry, "ENOTCONN"), None);
    assert_eq!(closes(&registry, ""), Some(0));
}

#[tokio::test]
async fn a_reset_a_timeout_and_a_broken_pipe_are_named_by_their_errno() {
    for (errno, name) in [(104, "ECONNRESET"), (110, "ETIMEDOUT"), (32, "EPIPE")] {
        let (registry, mut io) = accepted(Scripted::new([Step::Fail(errno)])).await;
        assert!(io.read(&mut [0; 8]).await.is_err());
        assert_eq!(closes(&registry, name), Some(1), "{name}");
        assert_eq!(open(&registry), Some(0), "{name}");
    }
}

#[tokio::test]
async fn a_would_block_error_is_no_close() {
    let (registry, mut io) = accepted(Scripted::new([Step::Fail(11), Step::Read(b"x")])).await;
    let e = io.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(open(&registry), Some(1));
    assert_eq!(io.read(&mut [0; 8]).await.unwrap(), 1);
    drop(io);
    assert_eq!(closes(&registry, ""), Some(1));
    assert_eq!(closes(&registry, "EAGAIN"), None);
}

#[tokio::test]
async fn an_accept_dropped_before_it_was_polled_is_counted_open_and_closed_once() {
    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let future = TcpAccept::inbound(&tcp, PlaintextAccept).accept(Scripted::default());
    drop(future);
    assert_eq!(value(&registry, "tcp_open_total", ""), Some(1));
    assert_eq!(open(&registry), Some(0));
    assert_eq!(closes(&registry, ""), Some(1));
    assert_eq!(read(&registry), Some(0));
}

#[tokio::test]
async fn a_connect_dropped_before_its_connection_opened_counts_nothing() {
    use std::future::pending;

    use futures_util::FutureExt;
    use mesh_core::conn::{NoTlsReason, Tls};
    use mesh_metrics::TcpConnect;
    use tower::{Service, ServiceExt, service_fn};

    let mut registry = Registry::default();
    let tcp = TcpMetrics::register(&mut registry);
    let never = service_fn(|_: http::Uri| {
        pending::<Result<hyper_util::rt::TokioIo<Scripted>, io::Error>>()
    });
    let mut connect = TcpConnect::outbound(&tcp, &Tls::Plaintext(NoTlsReason::Disabled), never);
    let future = connect
        .ready()
        .await
        .unwrap()
        .call("http://127.0.0.1:1".parse().unwrap());
    // Polled once, then given up, as a connect timeout gives it up.
    assert!(
        future.now_or_never().is_none(),
        "a connect that never opens"
    );
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        !text.contains("tcp_open_total{") && !text.contains("tcp_close_total{"),
        "{text}"
    );
}
