use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
    task::{Context, Poll},
};

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ConnHandles;

/// Where a connection's handles arrive once its labels are known: shared
/// between the [`CountingIo`] and whoever learns the labels (the accept
/// hook's future, after the handshake). It holds the bytes moved before
/// then (the handshake's), and adds them to the connection's series as
/// they arrive: a connection that stays idle after its handshake shows
/// them at once, not at a next read or write that may never come.
///
/// It also holds how the connection ended, if it ended before its handles
/// arrived: a stream that failed in the handshake, or that the hook
/// dropped, whether the hook then succeeded or failed. Such a connection
/// is counted open and closed at once when its handles arrive, so that every
/// connection counted open is counted closed exactly once, whichever of
/// the stream and the hook finishes first.
#[derive(Debug, Default)]
pub(crate) struct ConnSlot {
    handles: OnceLock<Arc<ConnHandles>>,
    /// What happened before the handles arrived. Taken only while they
    /// have not (during the handshake), at the stream's first error and at
    /// its drop: reads and writes of a connection with handles never lock.
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    read: u64,
    written: u64,
    end: End,
}

/// Where a connection is in its life, for counting its close exactly once.
#[derive(Clone, Copy, Debug, Default)]
enum End {
    /// Not ended.
    #[default]
    Open,
    /// Ended before the connection had its handles: at an error with this
    /// errno name (`None` for none), or dropped (a clean close). The close
    /// is counted when the handles arrive.
    Ended(Option<&'static str>),
    /// The close is counted.
    Closed,
}

impl ConnSlot {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding it; a poisoned lock still holds
        // consistent counts.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the connection its handles, counts it open and counts the
    /// bytes it moved so far; counts it closed too if it already ended.
    /// Only the first call has an effect.
    pub(crate) fn open(&self, handles: Arc<ConnHandles>) {
        let mut pending = self.pending();
        // Counting open again would leave the gauge one too high for good:
        // the connection is counted closed once.
        if self.handles.set(handles).is_err() {
            return;
        }
        let Some(handles) = self.handles.get() else {
            return;
        };
        handles.opened();
        // The stream counts into its handles from now on; what it counted
        // here before is moved over once.
        if pending.read > 0 {
            handles.read.inc_by(std::mem::take(&mut pending.read));
        }
        if pending.written > 0 {
            handles.write.inc_by(std::mem::take(&mut pending.written));
        }
        if let End::Ended(errno) = pending.end {
            handles.closed(errno);
            pending.end = End::Closed;
        }
    }

    /// Ends the connection with `errno` (`None`: cleanly), unless it ended
    /// already: counted closed now if it has its handles, else when they
    /// arrive.
    fn end(&self, errno: Option<&'static str>) {
        let mut pending = self.pending();
        if !matches!(pending.end, End::Open) {
            return;
        }
        pending.end = match self.handles.get() {
            Some(h) => {
                h.closed(errno);
                End::Closed
            }
            None => End::Ended(errno),
        };
    }
}

/// A stream that counts the bytes it reads and writes into the transport
/// families, and counts its close once: at its first error, or when it is
/// dropped if none came first. See the [module docs](super).
#[derive(Debug)]
pub struct CountingIo<T> {
    io: T,
    slot: Arc<ConnSlot>,
    /// Whether the stream returned an error, which ended the connection.
    failed: bool,
}

impl<T> CountingIo<T> {
    pub(crate) fn new(io: T, slot: Arc<ConnSlot>) -> Self {
        Self {
            io,
            slot,
            failed: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    fn count_read(&mut self, n: u64) {
        if let Some(h) = self.slot.handles.get() {
            h.read.inc_by(n);
            return;
        }
        // The handles may arrive meanwhile: they are looked at again under
        // the lock they are set under, so these bytes are counted once.
        let mut pending = self.slot.pending();
        match self.slot.handles.get() {
            Some(h) => {
                h.read.inc_by(n);
            }
            None => pending.read += n,
        }
    }

    fn count_written(&mut self, n: u64) {
        if let Some(h) = self.slot.handles.get() {
            h.write.inc_by(n);
            return;
        }
        let mut pending = self.slot.pending();
        match self.slot.handles.get() {
            Some(h) => {
                h.write.inc_by(n);
            }
            None => pending.written += n,
        }
    }

    /// Counts the connection closed at the first error the stream returns,
    /// of any kind, as Linkerd's transport sensor does: the connection is
    /// dead then, even while its owner still holds the stream, and a later
    /// error (often the socket's own, once a layer above gave up) is only a
    /// consequence. `WouldBlock` is not an end.
    fn note<R>(&mut self, result: &Poll<io::Result<R>>) {
        if let Poll::Ready(Err(e)) = result
            && !self.failed
            && e.kind() != io::ErrorKind::WouldBlock
        {
            self.failed = true;
            self.slot.end(super::errno::label(e));
        }
    }
}

impl<T> Drop for CountingIo<T> {
    fn drop(&mut self) {
        if !self.failed {
            self.slot.end(None);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.count_read((buf.filled().len().saturating_sub(before)) as u64);
        }
        this.note(&result);
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.count_written(n as u64);
        }
        this.note(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.count_written(n as u64);
        }
        this.note(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.note(&result);
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.note(&result);
        result
    }
}

impl<T: Connection> Connection for CountingIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::conn::{NoTlsReason, Tls};
    use prometheus_client::{encoding::text::encode, registry::Registry};

    use super::*;
    use crate::{
        labels::{Direction, Peer},
        tcp::TcpMetrics,
    };

    #[test]
    fn a_connection_is_counted_open_once_however_often_its_slot_is_opened() {
        let mut registry = Registry::default();
        let tcp = TcpMetrics::register(&mut registry);
        let tls = Tls::Plaintext(NoTlsReason::Disabled);
        let slot = Arc::new(ConnSlot::default());
        let io = CountingIo::new(tokio::io::empty(), slot.clone());
        slot.open(tcp.conn(Direction::Inbound, Peer::Src, &tls));
        slot.open(tcp.conn(Direction::Inbound, Peer::Src, &tls));
        let scrape = || {
            let mut text = String::new();
            encode(&mut text, &registry).unwrap();
            text
        };
        let labels = r#"direction="inbound",peer="src",tls="disabled""#;
        let text = scrape();
        assert!(
            text.contains(&format!("tcp_open_total{{{labels}}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcp_open_connections{{{labels}}} 1\n")),
            "{text}"
        );
        // One close: the gauge is back to zero, not stuck at one.
        drop(io);
        let text = scrape();
        assert!(
            text.contains(&format!("tcp_open_connections{{{labels}}} 0\n")),
            "{text}"
        );
    }

    /// A stream whose reads fail with the error `make` builds.
    struct Failing(fn() -> io::Error);

    impl AsyncRead for Failing {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err((self.0)()))
        }
    }

    /// The `tcp_close_total` text after one connection over `io` failed a
    /// read and was dropped.
    async fn close_after_failed_read(make: fn() -> io::Error) -> String {
        let mut registry = Registry::default();
        let tcp = TcpMetrics::register(&mut registry);
        let tls = Tls::Plaintext(NoTlsReason::Disabled);
        let slot = Arc::new(ConnSlot::default());
        let mut io = CountingIo::new(Failing(make), slot.clone());
        slot.open(tcp.conn(Direction::Outbound, Peer::Dst, &tls));
        let mut buf = [0; 8];
        let read = tokio::io::AsyncReadExt::read(&mut io, &mut buf).await;
        assert!(read.is_err());
        drop(io);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with("tcp_close_total{"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_socket_error_is_labelled_with_its_errno_name_whatever_it_is() {
        let labels = r#"direction="outbound",peer="dst",tls="disabled""#;
        // ENETDOWN (100 on Linux): a name, not a catch-all.
        let text = close_after_failed_read(|| io::Error::from_raw_os_error(100)).await;
        assert!(
            text.contains(&format!("tcp_close_total{{{labels},errno=\"ENETDOWN\"}} 1")),
            "{text}"
        );
        let text = close_after_failed_read(|| io::Error::from_raw_os_error(104)).await;
        assert!(
            text.contains(&format!(
                "tcp_close_total{{{labels},errno=\"ECONNRESET\"}} 1"
            )),
            "{text}"
        );
        // A number Linux does not define.
        let text = close_after_failed_read(|| io::Error::from_raw_os_error(4000)).await;
        assert!(
            text.contains(&format!(
                "tcp_close_total{{{labels},errno=\"UNKNOWN_ERRNO\"}} 1"
            )),
            "{text}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn errno_names_are_linux_numbers() {
        for (code, name) in [
            (1, "EPERM"),
            (32, "EPIPE"),
            (40, "ELOOP"),
            (42, "ENOMSG"),
            (59, "EBFONT"),
            (101, "ENETUNREACH"),
            (103, "ECONNABORTED"),
            (104, "ECONNRESET"),
            (107, "ENOTCONN"),
            (110, "ETIMEDOUT"),
            (111, "ECONNREFUSED"),
            (113, "EHOSTUNREACH"),
            (133, "EHWPOISON"),
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(super::super::errno::label(&e), Some(name), "{code}");
        }
        for code in [0, 41, 58, 134, -1] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(
                super::super::errno::label(&e),
                Some("UNKNOWN_ERRNO"),
                "{code}"
            );
        }
    }

    #[tokio::test]
    async fn an_error_without_an_errno_closes_with_an_empty_one() {
        // Made up above the socket: no errno to name, so no errno label
        // value, as Linkerd's sensor reads `raw_os_error`.
        let text =
            close_after_failed_read(|| io::Error::new(io::ErrorKind::TimedOut, "deadline")).await;
        assert!(
            text.contains(
                r#"tcp_close_total{direction="outbound",peer="dst",tls="disabled",errno=""} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("ETIMEDOUT"), "{text}");
    }
}
