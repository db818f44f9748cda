//! The per-try timeout layer with no per-try timeout of its own still
//! answers a request whose caller says no time is left, as every layer
//! here does (see `deadline`), rather than sending it on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Request, Response, StatusCode};
use mesh_core::{
    ProxyErrorKind,
    body::{BoxBody, Proxied, empty, full},
    error::MESH_ERROR,
};
use mesh_retry::{
    AttemptTimeoutLayer, Timeouts,
    deadline::{GRPC_TIMEOUT, MESH_DEADLINE},
    replay::ReplayBody,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn with_no_per_try_timeout_a_request_past_its_deadline_is_not_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let upstream = service_fn(move |_: Request<ReplayBody<BoxBody>>| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(Proxied::from(full("done")))) }
    });
    let svc = ServiceBuilder::new()
        .layer(AttemptTimeoutLayer::new(Timeouts::default()))
        .map_request(|req: Request<BoxBody>| req.map(ReplayBody::passthrough))
        .service(upstream);
    let http = Request::get("/")
        .header(MESH_DEADLINE, "0")
        .body(empty())
        .unwrap();
    let grpc = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, "0n")
        .body(empty())
        .unwrap();
    for (req, grpc) in [(http, false), (grpc, true)] {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::Timeout),
            "grpc: {grpc}"
        );
        assert_eq!(res.headers()[MESH_ERROR], "request timed out");
        if grpc {
            assert_eq!(res.headers()["grpc-status"], "4");
        } else {
            assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        }
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "nothing was sent");

    // Time left, or no deadline at all: sent as it came, header untouched.
    for value in [Some("1"), None] {
        let mut req = Request::get("/").body(empty()).unwrap();
        if let Some(value) = value {
            req.headers_mut()
                .insert(MESH_DEADLINE, value.parse().unwrap());
        }
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}
