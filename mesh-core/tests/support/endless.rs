//! A response body that never ends, for tests of how long a server keeps
//! writing to a peer that reads none of it.

use std::convert::Infallible;

/// An endless response body of 64 KiB chunks that reports when it is
/// dropped, which is when the server gives up on the connection.
pub(crate) struct Endless(pub(crate) Option<tokio::sync::oneshot::Sender<()>>);

impl http_body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            &CHUNK,
        )))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        if let Some(dropped) = self.0.take() {
            let _ = dropped.send(());
        }
    }
}
