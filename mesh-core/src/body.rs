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
