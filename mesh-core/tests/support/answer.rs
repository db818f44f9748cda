//! A service for tests that care about the server around it, not what it
//! answers: every request gets the same `200`.

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::body::BoxBody;

/// Answers every request `200` with the body `text`.
pub(crate) fn answering(
    text: &'static str,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<BoxBody>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: Request<Incoming>| async move {
        Ok::<_, Infallible>(Response::new(mesh_core::body::full(text)))
    })
}
