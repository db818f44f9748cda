//! How [`Metrics`](super::Metrics) reads the error of the service it wraps.

use std::{convert::Infallible, error::Error};

use mesh_core::error::BoxError;

/// An error [`Metrics`](super::Metrics) and
/// [`TraceService`](crate::trace::TraceService) can read as a
/// [`dyn Error`](Error), to count a request that failed by its kind (the
/// `error` label, the error families) or name it in its span's
/// `error.type`, before passing it on unchanged.
///
/// The service keeps the error type of the service it wraps, rather than
/// boxing it, so that a service that cannot fail (`Infallible`, as axum's
/// `Router::layer` requires of what it wraps) still cannot fail through
/// it; and reading an error in place allocates nothing.
///
/// It is implemented for tower's usual [`BoxError`], for `Infallible`,
/// and for the errors of the services the mesh's crates build on (I/O,
/// hyper, hyper-util's client, tokio's timeout, mesh-core's client).
/// Implement it for an error type of your own with
/// `fn as_dyn_error(&self) -> &(dyn Error + 'static) { self }`, or box
/// other errors into a [`BoxError`] (tower's `map_err(Into::into)`) below
/// the layer: that includes an error of another crate's type, which the
/// orphan rule keeps you from implementing this for (`tonic::Status`,
/// `reqwest::Error`), and a `String` or `&'static str` error.
///
/// It is not implemented for every `Error` type at once: such an impl
/// would overlap with the one for [`BoxError`] (which is not an `Error`
/// itself) as soon as the standard library made it one, and Rust's
/// coherence rules refuse it for that reason.
pub trait AsDynError {
    /// The error, as the classifiers read it.
    fn as_dyn_error(&self) -> &(dyn Error + 'static);
}

impl AsDynError for BoxError {
    fn as_dyn_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

/// Implements [`AsDynError`] for `Error` types, each read as itself.
macro_rules! as_itself {
    ($($error:ty),* $(,)?) => {
        $(
            impl AsDynError for $error {
                fn as_dyn_error(&self) -> &(dyn Error + 'static) {
                    self
                }
            }
        )*
    };
}

as_itself!(
    Infallible,
    std::io::Error,
    hyper::Error,
    hyper_util::client::legacy::Error,
    tokio::time::error::Elapsed,
    mesh_core::client::ClientError,
);
