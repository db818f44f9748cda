//! What `TraceLayer` allocates per request, beyond what the same request
//! allocates through a bare `service_fn`: nothing when the process does
//! not trace or the request carries no trace, and a bounded few for a
//! traced one. dhat counts every allocation of this test binary, which is
//! why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use mesh_metrics::trace::{TraceLayer, Tracer};
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What a request carries: whether it is gRPC, its `traceparent`, and
/// `tracestate`.
type Carried<'a> = (bool, Option<&'a str>, Option<&'a str>);

fn request((grpc, traceparent, tracestate): Carried<'_>) -> Request<()> {
    let mut req = if grpc {
        Request::post("http://emoji:8080/emoji.EmojiService/ListAll")
    } else {
        Request::get("http://emoji:8080/api/list")
    }
    .header("user-agent", "curl/8.5.0")
    .body(())
    .unwrap();
    let content_type = grpc.then_some("application/grpc");
    for (name, value) in [
        ("traceparent", traceparent),
        ("tracestate", tracestate),
        ("content-type", content_type),
    ] {
        if let Some(value) = value {
            req.headers_mut().insert(name, value.parse().unwrap());
        }
    }
    req
}

/// To a gRPC request, a message, then `grpc-status: 14` in the trailers;
/// to others, an answer with nothing after its head.
async fn app(req: Request<()>) -> Result<Response<Grpc>, Infallible> {
    let grpc = req.headers().get("content-type");
    let Some(content_type) = grpc else {
        return Ok(Response::new(Grpc(2)));
    };
    let mut res = Response::new(Grpc(0));
    res.headers_mut()
        .insert("content-type", content_type.clone());
    Ok(res)
}

/// A body of a message and trailers, from the frame it starts at: 0 for
/// both, 2 for none.
struct Grpc(u8);

impl Body for Grpc {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0 += 1;
        Poll::Ready(match self.0 {
            1 => Some(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))),
            2 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("14"));
                Some(Ok(Frame::trailers(trailers)))
            }
            _ => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0 >= 2
    }
}

/// One request through `svc`, its response read to its end.
async fn exchange<S, B>(svc: S, req: Request<()>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body<Error: std::fmt::Debug>,
{
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
}

/// The allocations of one request through `call`, averaged over many,
/// after a few to warm up. Each request is built before counting starts.
async fn allocations<F: Future>(
    carried: Carried<'_>,
    mut call: impl FnMut(Request<()>) -> F,
) -> f64 {
    let n = 1000;
    let mut requests: Vec<_> = (0..n + 10).map(|_| request(carried)).collect();
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
    let unsampled = format!("00-{TRACE}-00f067aa0ba902b7-00");
    let sampled = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let (unsampled, sampled) = (Some(unsampled.as_str()), Some(sampled.as_str()));
    let state = Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    let bare = service_fn(app);
    let off = TraceLayer::inbound(None).layer(service_fn(app));
    for (case, carried, most) in [
        ("no trace headers", (false, None, None), 0.0),
        ("untraced gRPC", (true, None, None), 0.0),
        // The rewritten header's value.
        ("unsampled traceparent", (false, unsampled, None), 1.0),
        // The header, and the span: its box, its attributes and their
        // strings (path, host), and a share of the queue's blocks of 32.
        ("sampled traceparent", (false, sampled, None), 7.1),
        // The same, and the span's name and its `rpc.service` and
        // `rpc.method` (three strings); the span moves into the body, and
        // its gRPC attributes fit the room its list was made with.
        (
            "sampled gRPC, status in trailers",
            (true, sampled, None),
            10.1,
        ),
        // And the span's copy of `tracestate`.
        (
            "sampled traceparent and tracestate",
            (false, sampled, state),
            8.1,
        ),
    ] {
        // The exporter never runs, and its queue holds one case's spans.
        let collector = "http://127.0.0.1:4318".parse().unwrap();
        let (tracer, _exporter) = Tracer::new(collector, Vec::new());
        let on = TraceLayer::inbound(Some(tracer.clone())).layer(service_fn(app));
        let base = allocations(carried, |req| exchange(bare, req)).await;
        for (layer, layered, most) in [("no tracer", &off, 0.0), ("tracer", &on, most)] {
            let measured = allocations(carried, |req| exchange(layered.clone(), req)).await;
            let added = measured - base;
            println!("{case}, {layer}: bare {base}, with TraceLayer {measured} (+{added})");
            assert!(
                added <= most,
                "{case}, {layer}: {added} more allocations per request"
            );
        }
        assert_eq!(tracer.dropped(), 0, "{case}: every span queued");
    }
}
