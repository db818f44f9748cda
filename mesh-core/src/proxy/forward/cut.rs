//! Telling the proxy that a response body was cut short by a timeout.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use http::Request;

/// A request extension by which a layer that times a response body out
/// (a route's idle timeout or request deadline, applied above
/// [`Forward`](super::Forward)) tells failure accrual that the body it
/// drops was cut by the timeout, and its caller did not simply go away.
///
/// Why: a gRPC stream whose status comes in trailers is judged when its
/// body ends (see [`ResponseBody`](super::ResponseBody)). A stream that
/// stalls until the timeout ends when the layer above drops it, which
/// alone looks like a caller that went away and counts nothing, so an
/// endpoint that stalls every stream would never be taken out. Linkerd
/// enforces route timeouts in its endpoint stack, below the classifier
/// its failure accrual reads, so there a timed-out body is a stream
/// error and a failure of its endpoint, while a body its caller drops is
/// classified as ended without trailers, which is no failure for gRPC
/// (linkerd2-proxy `linkerd/app/outbound/src/http/endpoint.rs`,
/// `linkerd/app/core/src/classify.rs`).
///
/// How: the timeout layer puts one on the request with [`on`](Self::on)
/// before sending it on (layers nested in one another share it) and
/// calls [`expire`](Self::expire) before it drops the body it cuts. A
/// body dropped with its handle expired counts against its endpoint; one
/// dropped otherwise counts nothing. A request without one is judged as
/// before. Only responses judged at their body's end read it: any other
/// was judged at its head.
#[derive(Clone, Debug, Default)]
pub struct BodyTimeout(Arc<AtomicBool>);

impl BodyTimeout {
    /// The handle `req` carries, put on it first if it carries none.
    pub fn on<B>(req: &mut Request<B>) -> Self {
        req.extensions_mut()
            .get_or_insert_default::<BodyTimeout>()
            .clone()
    }

    /// Says that the response body of the request is being cut short by
    /// a timeout: call it before dropping the body.
    pub fn expire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`expire`](Self::expire) was called.
    pub fn expired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
