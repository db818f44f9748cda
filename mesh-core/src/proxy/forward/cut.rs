//! Telling the proxy that a request or its response body was cut short
//! by a timeout.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use http::Request;

/// A request extension by which a layer that times requests out (a
/// route's response timeout, idle timeout or request deadline, applied
/// above [`Forward`](super::Forward)) tells failure accrual that the
/// request it drops, or the response body it drops, was cut by the
/// timeout, and that its caller did not simply go away.
///
/// Why: dropped from above, an unanswered request or a gRPC stream that
/// stalls (one whose status comes in trailers, judged when its body
/// ends: see [`ResponseBody`](super::ResponseBody)) looks like a caller
/// that went away, which counts nothing, so an endpoint that never
/// answers, or stalls every stream, would never be taken out. Linkerd
/// enforces route timeouts in its endpoint stack, below the classifier
/// its failure accrual reads, so there a timed-out request or stream is
/// an error and a failure of its endpoint, while a body its caller drops
/// is classified as ended without trailers, no failure for gRPC
/// (linkerd2-proxy `linkerd/app/outbound/src/http/endpoint.rs`,
/// `linkerd/app/core/src/classify.rs`).
///
/// How: the timeout layer puts one on the request with [`on`](Self::on)
/// before sending it on (layers nested in one another share it) and
/// calls [`expire`](Self::expire) before it drops the response future or
/// body it cuts. Dropped with its handle expired, a request with no
/// response yet, or a body whose verdict waits for its end, counts
/// against its endpoint; dropped otherwise, it counts nothing. A request
/// without one is judged as before. A response judged at its head (every
/// one but a gRPC answer whose status comes in trailers) was counted
/// then, and its body's end changes nothing.
///
/// Only a cut made while waiting on the upstream is the endpoint's: a
/// deadline that passes while the caller is slow to read frames that
/// were ready is not, and should not expire the handle.
#[derive(Clone, Debug, Default)]
pub struct TimedOut(Arc<AtomicBool>);

impl TimedOut {
    /// The handle `req` carries, put on it first if it carries none.
    pub fn on<B>(req: &mut Request<B>) -> Self {
        req.extensions_mut()
            .get_or_insert_default::<TimedOut>()
            .clone()
    }

    /// Says that the request, or its response body, is being cut short
    /// by a timeout: call it before dropping the future or the body.
    pub fn expire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`expire`](Self::expire) was called.
    pub fn expired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
