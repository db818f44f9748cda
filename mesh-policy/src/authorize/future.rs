//! The future of [`Authorize`](super::Authorize).

/// The inner service's response, or the layer's own refusal.
pub type ResponseFuture<F, B> = mesh_core::route::OrRespond<F, B>;
