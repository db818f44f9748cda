//! The body type the engine speaks.
//!
//! Layers stay generic over their body types. The engine itself needs one
//! concrete type so that a forwarded response and a response the mesh
//! synthesized can leave through the same server: that type is [`BoxBody`].

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

use crate::error::BoxError;

/// A type-erased body of [`Bytes`] frames. Its [`Default`] is an empty body,
/// which is what synthesized error responses carry.
pub type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// Erases a body's type.
pub fn boxed<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty body.
pub fn empty() -> BoxBody {
    boxed(Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// A body that holds `bytes` in one frame.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    boxed(Full::new(bytes.into()).map_err(|never| match never {}))
}

pin_project_lite::pin_project! {
    /// A body forwarded from a peer, or an empty one when the mesh answered
    /// the request itself.
    ///
    /// Its [`Default`] is the empty body, so layers that synthesize responses
    /// (`B: Default`) can answer in the same type a forwarded response has,
    /// without boxing.
    #[derive(Debug)]
    pub struct Proxied<B> {
        #[pin]
        inner: Option<B>,
    }
}

impl<B> Default for Proxied<B> {
    fn default() -> Self {
        Self { inner: None }
    }
}

impl<B> From<B> for Proxied<B> {
    fn from(body: B) -> Self {
        Self { inner: Some(body) }
    }
}

impl<B: Body> Body for Proxied<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), Body::size_hint)
    }
}
