use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::copy_both_ways;

/// One side of a copy: it gives `incoming` once, then ends as `then`
/// says (`None`: nothing more for now), and takes writes unless
/// `refuse_writes`, keeping what it took.
struct Side {
    incoming: &'static [u8],
    then: Option<io::ErrorKind>,
    refuse_writes: Option<io::ErrorKind>,
    /// Reads wait this many more times before they give anything, waking
    /// the task at once: readiness that lags what the side has.
    lag: usize,
    /// Reads end (`Ok(0)`) once `incoming` is given, whatever `then` says.
    ends: bool,
    /// `shutdown` fails with this.
    refuse_shutdown: Option<io::ErrorKind>,
    written: Vec<u8>,
}

impl Side {
    fn new(incoming: &'static [u8], then: Option<io::ErrorKind>, refuse_writes: bool) -> Self {
        let refuse_writes = refuse_writes.then_some(io::ErrorKind::ConnectionReset);
        Self {
            incoming,
            then,
            refuse_writes,
            lag: 0,
            ends: false,
            refuse_shutdown: None,
            written: Vec::new(),
        }
    }

    /// Reads end once `incoming` is given: the peer sent its end.
    fn ending(mut self) -> Self {
        self.ends = true;
        self
    }

    /// `shutdown` fails with `kind`.
    fn refusing_shutdown(mut self, kind: io::ErrorKind) -> Self {
        self.refuse_shutdown = Some(kind);
        self
    }

    /// Writes fail with `kind`.
    fn refusing_writes(mut self, kind: io::ErrorKind) -> Self {
        self.refuse_writes = Some(kind);
        self
    }

    /// The first `polls` reads wait, as a stream whose readiness is not
    /// yet known does.
    fn lagging(mut self, polls: usize) -> Self {
        self.lag = polls;
        self
    }
}

impl AsyncRead for Side {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.lag > 0 {
            self.lag -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if !self.incoming.is_empty() {
            let incoming = std::mem::take(&mut self.incoming);
            buf.put_slice(incoming);
            return Poll::Ready(Ok(()));
        }
        if self.ends {
            return Poll::Ready(Ok(()));
        }
        match self.then {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Pending,
        }
    }
}

impl AsyncWrite for Side {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(kind) = self.refuse_writes {
            return Poll::Ready(Err(kind.into()));
        }
        self.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.refuse_shutdown {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[tokio::test]
async fn bytes_received_before_the_other_direction_failed_are_still_passed_on() {
    // The client sends more; the endpoint reset: it takes no more, and
    // its answer is still to be read, then its reset.
    let mut client = Side::new(b"more", None, false);
    let mut endpoint = Side::new(b"bye", Some(io::ErrorKind::ConnectionReset), true);
    let error = copy_both_ways(&mut client, &mut endpoint)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(client.written, b"bye");
}

#[tokio::test]
async fn a_failure_ends_the_copy_though_the_other_side_has_nothing_yet() {
    // The client's side failed; the endpoint has nothing to send, and is
    // not waited for.
    let mut client = Side::new(b"", Some(io::ErrorKind::ConnectionReset), false);
    let mut endpoint = Side::new(b"", None, false);
    let error = copy_both_ways(&mut client, &mut endpoint)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn both_ends_passed_on_end_the_copy_with_the_counts() {
    let (mut client, mut a) = tokio::io::duplex(64);
    let (mut b, mut endpoint) = tokio::io::duplex(64);
    let copy = tokio::spawn(async move { copy_both_ways(&mut a, &mut b).await });
    client.write_all(b"ping").await.unwrap();
    client.shutdown().await.unwrap();
    endpoint.write_all(b"pong!").await.unwrap();
    endpoint.shutdown().await.unwrap();
    let (mut at_client, mut at_endpoint) = (Vec::new(), Vec::new());
    client.read_to_end(&mut at_client).await.unwrap();
    endpoint.read_to_end(&mut at_endpoint).await.unwrap();
    assert_eq!(at_client, b"pong!");
    assert_eq!(at_endpoint, b"ping");
    assert_eq!(copy.await.unwrap().unwrap(), (4, 5));
}

#[tokio::test]
async fn an_answer_a_reset_side_still_has_is_passed_on_though_its_readiness_lags() {
    // The endpoint reset: the client's next bytes fail to go, and its
    // answer, already received, is not known to be there yet when the
    // copy next looks.
    let mut client = Side::new(b"more", None, false);
    let mut endpoint = Side::new(b"bye", Some(io::ErrorKind::ConnectionReset), true).lagging(2);
    let error = copy_both_ways(&mut client, &mut endpoint)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(client.written, b"bye");
}

#[tokio::test]
async fn a_write_that_leaves_its_side_alive_does_not_wait_for_the_other_direction() {
    // The client's writes time out (it stopped reading), and it sends
    // nothing: the copy ends with the timeout, not waiting on it.
    let mut client = Side::new(b"", None, false).refusing_writes(io::ErrorKind::TimedOut);
    let mut endpoint = Side::new(b"answer", None, false);
    let error = copy_both_ways(&mut client, &mut endpoint)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert_eq!(endpoint.written, b"");
}

#[tokio::test]
async fn an_answer_a_reset_side_still_has_is_passed_on_when_passing_an_end_to_it_fails() {
    // The client sent its end; the endpoint had answered and reset, so
    // passing the end on fails (`ENOTCONN`, a reset socket's `shutdown`),
    // and its answer, already received, is not known to be there yet.
    let mut client = Side::new(b"", None, false).ending();
    let mut endpoint = Side::new(b"bye", Some(io::ErrorKind::ConnectionReset), false)
        .refusing_shutdown(io::ErrorKind::NotConnected)
        .lagging(2);
    let error = copy_both_ways(&mut client, &mut endpoint)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotConnected);
    assert_eq!(client.written, b"bye");
}
