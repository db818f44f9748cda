//! The body type the engine speaks.
//!
//! Layers stay generic over their body types. The engine itself needs one
//! concrete type so that a forwarded response and a response the mesh
//! synthesized can leave through the same server: that type is [`BoxBody`].

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

use crate::error::BoxError;

/// A type-erased body of [`Bytes`] frames. Its [`Default`] is an empty body,
/// which is what synthesized error responses carry.
///
/// It is a type of its own, not an alias of `UnsyncBoxBody<Bytes, BoxError>`,
/// so that an axum handler can await a client whose requests carry it:
/// through the alias, rustc has to prove the handler's future `Send` for
/// every lifetime of the `dyn Error + Send + Sync` it names, and refuses
/// ("implementation of `Service` is not general enough").
///
/// Make one with [`BoxBody::new`] (or [`boxed`]) from any body of [`Bytes`]
/// whose error converts into a [`BoxError`], or with [`empty`] and [`full`].
/// It is no larger than the boxed body it wraps.
pub struct BoxBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
}

impl BoxBody {
    /// Erases a body's type.
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: body.map_err(Into::into).boxed_unsync(),
        }
    }
}

impl Default for BoxBody {
    fn default() -> Self {
        empty()
    }
}

impl fmt::Debug for BoxBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxBody").finish_non_exhaustive()
    }
}

/// Takes a body `http-body-util` already boxed as it is, without boxing it
/// again.
impl From<UnsyncBoxBody<Bytes, BoxError>> for BoxBody {
    fn from(inner: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        Self { inner }
    }
}

impl Body for BoxBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        // The boxed body is itself pinned on the heap, so `BoxBody` is
        // `Unpin` and needs no projection.
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Erases a body's type: [`BoxBody::new`].
pub fn boxed<B>(body: B) -> BoxBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxBody::new(body)
}

/// An empty body.
pub fn empty() -> BoxBody {
    BoxBody::new(Empty::<Bytes>::new().map_err(|never| match never {}))
}

/// A body that holds `bytes` in one frame.
pub fn full(bytes: impl Into<Bytes>) -> BoxBody {
    BoxBody::new(Full::new(bytes.into()).map_err(|never| match never {}))
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
