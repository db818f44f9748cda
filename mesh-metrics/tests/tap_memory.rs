//! What a tap that is not read holds, whatever the size of the requests it
//! watches. dhat counts every allocation of this test binary, which is why
//! this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh_metrics::{
    Direction,
    tap::{MAX_QUEUED_BYTES, QUEUE, Tap, TapEventKind, TapFilter, TapLayer},
};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// A request path as long as a request head may carry: the client picks it.
const LONG_PATH: usize = 32 * 1024;

#[tokio::test(start_paused = true)]
async fn a_tap_that_is_not_read_holds_a_bounded_number_of_bytes() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let tap = Tap::new();
    let filter = TapFilter {
        max_rps: mesh_metrics::tap::MAX_MAX_RPS,
        ..TapFilter::default()
    };
    // An operator's tap, piped into a pager that stopped reading.
    let mut sub = tap.subscribe(filter).unwrap();
    let svc = TapLayer::new(&tap, Direction::Inbound).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
    }));
    let path = format!("/{}", "a".repeat(LONG_PATH));
    let send = |path: String| {
        let svc = svc.clone();
        async move {
            let req = Request::get(path).header("host", "web").body(()).unwrap();
            let res = svc.oneshot(req).await.unwrap();
            res.into_body().collect().await.unwrap();
        }
    };

    let before = dhat::HeapStats::get().curr_bytes;
    // Enough requests to fill the queue with their events several times.
    for _ in 0..QUEUE {
        send(path.clone()).await;
    }
    let held = dhat::HeapStats::get().curr_bytes - before;
    // The bytes the events hold, and room for the queue's own blocks.
    let bound = MAX_QUEUED_BYTES + 256 * 1024;
    assert!(
        held <= bound,
        "a tap nobody reads holds {held} bytes, over {bound}"
    );

    // What did not fit is counted as lost: far fewer than `QUEUE` events
    // of such requests fit in the bytes.
    assert!(tap.dropped() > 2 * QUEUE as u64, "{}", tap.dropped());

    // Once read, the room is free again: a new request's events get in.
    let mut read = 0;
    while let Ok(Some(_)) = tokio::time::timeout(std::time::Duration::ZERO, sub.next()).await {
        read += 1;
    }
    assert!(read > 0);
    send(path.clone()).await;
    let event = sub.next().await.unwrap();
    assert!(
        matches!(&event.kind, TapEventKind::Req { path: p, .. } if *p == path),
        "{event:?}"
    );
}
