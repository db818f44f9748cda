//! Telling the proxy that a request or its response body was cut short
//! by a timeout.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use http::Request;

/// A request extension by which a layer that times requests out (a
/// route's response timeout, idle timeout or request deadline, applied
/// above [`Forward`](super::Forward)) tells failure accrual that the
/// request it drops, or the response body it drops, was cut by the
/// timeout, and that its caller did not simply go away.
///
/// Why: dropped from above, an unanswered request or a response whose
/// body stalls (judged when its body ends: see
/// [`ResponseBody`](super::ResponseBody)) looks like a caller that went
/// away, which counts nothing for a request or a gRPC stream, and the
/// head's success for any other response, so an endpoint that never
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
/// body it cuts. Dropped with its handle expired since it was sent, a
/// request with no response yet, or a body whose verdict waits for its
/// end, counts against its endpoint; dropped otherwise, it counts as
/// the caller going away. A request without one is judged as before. A
/// response whose head was a failure was counted then, and its body's
/// end changes nothing.
///
/// Only a cut made while waiting on the upstream is the endpoint's: a
/// deadline that passes while the caller is slow to read frames that
/// were ready is not, and should not expire the handle.
///
/// A retry clones its request, this handle with it: a cut of an earlier
/// try (its per-try timeout) is that try's, so each request judges only
/// the cuts made after it was sent.
///
/// mesh-retry's timeout layers and route stack do not put one on yet:
/// doing so costs an allocation per request on every route with a
/// timeout, which the route stack's per-request budget has no room for.
/// So in the reference sidecar a stream its route's timeout cuts still
/// counts nothing against its endpoint.
#[derive(Clone, Debug, Default)]
pub struct TimedOut(Arc<AtomicU32>);

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
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether [`expire`](Self::expire) was called.
    pub fn expired(&self) -> bool {
        self.cuts() > 0
    }

    /// The cuts made so far: a request sent now is cut if there are more
    /// when it is dropped ([`Since`]).
    fn cuts(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// This handle, for a request sent now.
    pub(super) fn since_now(self) -> Since {
        let cuts = self.cuts();
        Since { handle: self, cuts }
    }
}

/// A [`TimedOut`] as a request sent at one moment reads it: cut if
/// [`expire`](TimedOut::expire) was called since.
#[derive(Debug)]
pub(super) struct Since {
    handle: TimedOut,
    cuts: u32,
}

impl Since {
    /// Whether a timeout cut the request after it was sent.
    pub(super) fn expired(&self) -> bool {
        self.handle.cuts() != self.cuts
    }
}
