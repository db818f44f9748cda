//! `grpc-timeout` as the gRPC specification writes it (`1*8DIGIT unit`),
//! at its edges: read, honoured and passed on reduced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderMap, HeaderValue, Request, Response};
use mesh_core::body::{BoxBody, Proxied, empty, full};
use mesh_retry::{
    RequestTimeoutLayer, Timeouts,
    deadline::{GRPC_TIMEOUT, encode_grpc_timeout, parse_grpc_timeout},
};
use tower::{Layer, ServiceExt, service_fn};

fn parse(text: &str) -> Option<Duration> {
    parse_grpc_timeout(&HeaderValue::from_str(text).unwrap())
}

#[test]
fn grpc_timeouts_are_one_to_eight_digits_and_a_unit() {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    for (text, expected) in [
        ("1H", hours(1)),
        ("99999999H", hours(99_999_999)),
        ("99999999n", Duration::from_nanos(99_999_999)),
        ("00000001S", Duration::from_secs(1)),
        // Zero is a deadline already passed.
        ("0n", Duration::ZERO),
        ("00000000H", Duration::ZERO),
    ] {
        assert_eq!(parse(text), Some(expected), "{text}");
    }
    for garbage in [
        "",
        "H",
        "100000000n",
        "1h",
        "1s",
        "1ms",
        "1 S",
        " 1S",
        "1S ",
        "+1S",
        "-1S",
        "1.5S",
        "0x1S",
        "1e3m",
        "1SS",
        "S1",
        "١S",
    ] {
        let value = HeaderValue::from_bytes(garbage.as_bytes()).unwrap();
        assert_eq!(parse_grpc_timeout(&value), None, "{garbage:?}");
    }
}

#[test]
fn the_longest_timeouts_are_written_in_hours_and_never_overflow() {
    for (timeout, expected) in [
        (Duration::from_secs(99_999_999 * 3600), "99999999H"),
        (Duration::MAX, "99999999H"),
        (Duration::from_nanos(99_999_999), "99999999n"),
        (Duration::from_nanos(100_000_000), "100000u"),
        (Duration::from_nanos(1), "1n"),
    ] {
        assert_eq!(encode_grpc_timeout(timeout), expected, "{timeout:?}");
    }
}

type Heads = Arc<Mutex<Vec<HeaderMap>>>;

fn upstream(
    heads: Heads,
) -> impl tower::Service<
    Request<BoxBody>,
    Response = Response<Proxied<BoxBody>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Proxied<BoxBody>>, Infallible>>,
> + Clone {
    service_fn(move |req: Request<BoxBody>| {
        heads.lock().unwrap().push(req.headers().clone());
        async { Ok::<_, Infallible>(Response::new(Proxied::from(full("done")))) }
    })
}

fn grpc_call(timeout: &str) -> Request<BoxBody> {
    Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .header(GRPC_TIMEOUT, timeout)
        .body(empty())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_longest_grpc_timeout_is_honoured_and_passed_on() {
    let heads = Heads::default();
    let svc = RequestTimeoutLayer::new(Timeouts::default()).layer(upstream(heads.clone()));
    let res = svc.oneshot(grpc_call("99999999H")).await.unwrap();
    assert!(!res.headers().contains_key("grpc-status"));
    assert_eq!(heads.lock().unwrap()[0][GRPC_TIMEOUT], "99999999H");
}

#[tokio::test(start_paused = true)]
async fn a_zero_grpc_timeout_in_any_unit_is_answered_without_being_sent() {
    for zero in ["0n", "0S", "00000000H"] {
        let heads = Heads::default();
        let svc = RequestTimeoutLayer::new(Timeouts::default()).layer(upstream(heads.clone()));
        let res = svc.oneshot(grpc_call(zero)).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], "4", "{zero}");
        assert!(res.headers().contains_key("mesh-error"), "{zero}");
        assert!(heads.lock().unwrap().is_empty(), "{zero}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_grpc_timeout_that_does_not_parse_is_replaced_by_the_routes_own() {
    let heads = Heads::default();
    let timeouts = Timeouts {
        request: Some(Duration::from_secs(2)),
        ..Timeouts::default()
    };
    let svc = RequestTimeoutLayer::new(timeouts).layer(upstream(heads.clone()));
    svc.oneshot(grpc_call("123456789S")).await.unwrap();
    assert_eq!(heads.lock().unwrap()[0][GRPC_TIMEOUT], "2000000u");
}
