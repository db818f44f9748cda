//! What `TraceLayer` allocates per request, beyond what the same request
//! allocates through a bare `service_fn`: nothing when the process does
//! not trace or the request carries no trace, and a bounded few for a
//! traced one. dhat counts every allocation of this test binary, which is
//! why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use http::{Request, Response};
use mesh_metrics::trace::{TraceLayer, Tracer};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn request(traceparent: Option<String>) -> Request<()> {
    let mut req = Request::get("http://emoji:8080/api/list")
        .header("user-agent", "curl/8.5.0")
        .body(())
        .unwrap();
    if let Some(value) = traceparent {
        req.headers_mut()
            .insert("traceparent", value.parse().unwrap());
    }
    req
}

async fn app(_req: Request<()>) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

/// The allocations of one request through `call`, averaged over many,
/// after a few to warm up. Each request is built before counting starts.
async fn allocations<F: Future>(
    traceparent: Option<&str>,
    mut call: impl FnMut(Request<()>) -> F,
) -> f64 {
    let n = 1000;
    let mut requests: Vec<_> = (0..n + 10)
        .map(|_| request(traceparent.map(str::to_owned)))
        .collect();
    for req in requests.drain(..10) {
        call(req).await;
    }
    let before = dhat::HeapStats::get().total_blocks;
    for req in requests {
        call(req).await;
    }
    (dhat::HeapStats::get().total_blocks - before) as f64 / f64::from(n)
}

#[tokio::test]
async fn untraced_requests_allocate_nothing_and_traced_ones_a_bounded_few() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let (tracer, _exporter) = Tracer::new("http://127.0.0.1:4318".parse().unwrap(), Vec::new());
    let bare = service_fn(app);
    let off = TraceLayer::inbound(None).layer(service_fn(app));
    let on = TraceLayer::inbound(Some(tracer)).layer(service_fn(app));

    let unsampled = format!("00-{TRACE}-00f067aa0ba902b7-00");
    let sampled = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let cases = [
        ("no tracer", &off, None, 0.0),
        ("no trace headers", &on, None, 0.0),
        // The rewritten header's value.
        ("unsampled traceparent", &on, Some(unsampled.as_str()), 1.0),
        // The header, and the span: its box, its attributes and their
        // strings (path, host), and a share of the queue's blocks of 32.
        ("sampled traceparent", &on, Some(sampled.as_str()), 7.1),
    ];
    for (case, layered, traceparent, most) in cases {
        let base = allocations(traceparent, |req| bare.oneshot(req)).await;
        let measured = allocations(traceparent, |req| layered.clone().oneshot(req)).await;
        let added = measured - base;
        println!("{case}: bare {base}, with TraceLayer {measured} (+{added})");
        assert!(
            added <= most,
            "{case}: {added} more allocations per request"
        );
    }
}
