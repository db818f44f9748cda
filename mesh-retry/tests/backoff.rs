//! Waits between attempts at the edges of what the clock can hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode, header::RETRY_AFTER};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{
    Backoff, Budget, RetryLayer, RetryPolicy, RouteStackLayer, Timeouts, deadline::FAR_FUTURE,
    replay::ReplayBody,
};
use tokio::time::{Instant, timeout};
use tower::{Layer, ServiceExt, service_fn, util::BoxCloneService};

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_clock_holds_is_waited_out_as_far_as_it_goes() {
    // A backoff with no cap, and a server that asks for more seconds than
    // a u64 holds before its retry.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let upstream = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        let first = counted.fetch_add(1, Ordering::Relaxed) == 0;
        async move {
            let mut res = Response::new(Proxied::from(full("reply")));
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res.headers_mut()
                    .insert(RETRY_AFTER, "99999999999999999999".parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    });
    let backoff = Backoff::new(Duration::from_millis(25), Duration::MAX).unwrap();
    let policy = RetryPolicy::default().with_backoff(backoff);
    let budget = Arc::new(Budget::default());
    let stack = RouteStackLayer::new(policy.clone(), Timeouts::default(), budget.clone())
        .layer(upstream.clone());
    // The retry layer alone waits as tokio's `sleep` does: as far as the
    // clock goes. The fused stack must too.
    let layer = RetryLayer::new(policy, budget).layer(upstream);
    let stack = stack.map_response(|res| res.status());
    let layer = layer.map_response(|res| res.status());
    for svc in [BoxCloneService::new(stack), BoxCloneService::new(layer)] {
        calls.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let call = svc.oneshot(Request::get("/").body(empty()).unwrap());
        let status = timeout(FAR_FUTURE * 2, call)
            .await
            .expect("the retry is made, not waited for for ever")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(start.elapsed(), FAR_FUTURE);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }
}
