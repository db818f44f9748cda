//! Failure accrual of gRPC calls through a `Forward`, over real sockets:
//! a gRPC server answers `200` and gives its status in trailers, or in the
//! head when it fails before any message, and both count against its
//! endpoint when they are server errors; a caller's own mistakes and
//! cancellations do not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::accrual;

use accrual::{
    grpc_call, grpc_h1_upstream, grpc_stream_upstream, grpc_upstream_watching_hangs, h2_upstream,
    proxy, strict,
};
use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};

use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    BoxError,
    body::{BoxBody, boxed, full},
    client::{Client, ClientConfig},
    proxy::{BalancerView, EndpointState, Forward},
};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// An HTTP/2 upstream answering every call with a trailers-only gRPC
/// response of status `code`, as a gRPC server that fails before any
/// message does.
async fn grpc_upstream(code: &'static str) -> SocketAddr {
    h2_upstream(move |_: Request<Incoming>| async move {
        Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", code)
            .body(full(""))
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn a_grpc_server_error_in_a_trailers_only_answer_counts_against_the_endpoint() {
    // gRPC answers its failures with HTTP 200: a server that is
    // UNAVAILABLE on every call is failing as surely as one answering
    // 503, and a NOT_FOUND describes the call, as a 404 does.
    for (code, state) in [
        ("14", EndpointState::Failing),
        ("13", EndpointState::Failing),
        ("5", EndpointState::Ready),
        ("0", EndpointState::Ready),
    ] {
        let endpoint = grpc_upstream(code).await;
        let client = Client::<BoxBody>::new(&ClientConfig::default());
        let forward = Forward::new(client, [endpoint])
            .unwrap()
            .with_failure_accrual(strict());
        let view = forward.balancer_view().unwrap();
        let call = Request::post("http://emoji/emoji.EmojiService/ListAll")
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .body(full(""))
            .unwrap();
        let res = forward.clone().oneshot(call).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], code);
        assert_eq!(
            view.endpoints().unwrap(),
            [(endpoint, state)],
            "grpc-status {code}"
        );
    }
}

/// A `Forward` to `endpoint` that takes it out at its first failure, and
/// the balancer's view.
fn strict_forward(endpoint: SocketAddr) -> (Forward<Client<BoxBody>>, BalancerView) {
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    (forward, view)
}

/// Sends a call through a strict `Forward` to a fresh
/// [`grpc_stream_upstream`] whose trailers carry `code`, reads it to its
/// end, and says what became of the endpoint.
async fn state_after_trailers(code: &str) -> EndpointState {
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    let call = grpc_call(&format!("trailers:{code}"));
    let res = forward.clone().oneshot(call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("grpc-status").is_none());
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], code);
    let [(addr, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    assert_eq!(addr, endpoint);
    state
}

#[tokio::test]
async fn a_grpc_server_error_in_trailers_after_a_message_counts_against_the_endpoint() {
    // The server sent its headers and a message before it failed: the
    // status comes in trailers, and only at the end of the body.
    for code in ["14", "13"] {
        let state = state_after_trailers(code).await;
        assert_eq!(state, EndpointState::Failing, "grpc-status {code}");
    }
}

#[tokio::test]
async fn a_grpc_status_in_trailers_that_is_no_server_error_leaves_the_endpoint_in() {
    // NOT_FOUND describes the call, as a 404 does.
    for code in ["0", "5"] {
        let state = state_after_trailers(code).await;
        assert_eq!(state, EndpointState::Ready, "grpc-status {code}");
    }
}

#[tokio::test]
async fn an_endpoint_is_judged_by_linkerds_grpc_codes_as_its_metrics_are() {
    // Failure accrual reads a `grpc-status` by the codes the metrics
    // count as failures, Linkerd's by default, as linkerd2-proxy's breaker
    // reads its classifier's verdict: PERMISSION_DENIED counts against the
    // endpoint, UNIMPLEMENTED does not, in the head and in the trailers.
    for (code, state) in [("7", EndpointState::Failing), ("12", EndpointState::Ready)] {
        let endpoint = grpc_stream_upstream().await;
        let (forward, view) = strict_forward(endpoint);
        let call = grpc_call(&format!("only:{code}"));
        let res = forward.clone().oneshot(call).await.unwrap();
        assert_eq!(res.headers()["grpc-status"], code);
        assert_eq!(
            view.endpoints().unwrap(),
            [(endpoint, state)],
            "trailers-only grpc-status {code}"
        );
        let in_trailers = state_after_trailers(code).await;
        assert_eq!(in_trailers, state, "grpc-status {code} in trailers");
    }
}

#[tokio::test]
async fn a_grpc_call_its_server_resets_or_ends_without_a_status_counts_against_the_endpoint() {
    // A reset is the server's failure; a stream that ends without its
    // status is one every gRPC client fails.
    for end in ["reset", "none"] {
        let endpoint = grpc_stream_upstream().await;
        let (forward, view) = strict_forward(endpoint);
        let res = forward.clone().oneshot(grpc_call(end)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let _ = res.into_body().collect().await;
        assert_eq!(
            view.endpoints().unwrap(),
            [(endpoint, EndpointState::Failing)],
            "{end}"
        );
    }
}

#[tokio::test]
async fn a_caller_that_drops_a_grpc_response_before_its_end_does_not_count_against_the_endpoint() {
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    let res = forward.clone().oneshot(grpc_call("hang")).await.unwrap();
    let mut body = res.into_body();
    let message = body.frame().await.unwrap().unwrap();
    assert!(message.is_data());
    drop(body);
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller went away, not the endpoint"
    );
    let res = forward.oneshot(grpc_call("trailers:0")).await.unwrap();
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn a_grpc_call_whose_callers_upload_fails_mid_stream_does_not_count_against_the_endpoint() {
    // The server answered at once and streams back; then the caller's
    // own request body fails, and the client resets the stream on its
    // behalf. The response body ends in that reset: the caller's, not
    // the endpoint's.
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    let (fail, failed) = tokio::sync::oneshot::channel::<()>();
    let upload = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"part")))]).chain(
        futures_util::stream::once(async move {
            let _ = failed.await;
            Err::<Frame<Bytes>, BoxError>("the client went away".into())
        }),
    );
    let mut call = grpc_call("hang");
    *call.body_mut() = boxed(StreamBody::new(upload));
    let res = forward.clone().oneshot(call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    fail.send(()).unwrap();
    assert!(body.collect().await.is_err(), "the reset ends the body");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller's body failed, not the endpoint"
    );
}

/// Takes `endpoint` out through `forward` with a trailers-only
/// `UNAVAILABLE`, and waits out its penalty on tokio's paused clock.
async fn take_out_and_wait(forward: &Forward<Client<BoxBody>>, view: &BalancerView) {
    let res = forward.clone().oneshot(grpc_call("only:14")).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    let [(_, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    assert_eq!(state, EndpointState::Failing);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();
}

#[tokio::test]
async fn a_probe_whose_status_comes_in_trailers_is_judged_at_its_end() {
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    take_out_and_wait(&forward, &view).await;

    let res = forward
        .clone()
        .oneshot(grpc_call("trailers:0"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get("grpc-status").is_none(),
        "the probe's answer"
    );
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Probing)],
        "no verdict before the trailers"
    );
    // One probe at a time: a call made meanwhile waits for its verdict.
    // On tokio's paused clock it is still waiting 2 s on, short of the
    // fail-fast timeout (3 s); nothing else runs meanwhile.
    let mut meanwhile = tokio::spawn(forward.clone().oneshot(grpc_call("trailers:0")));
    tokio::time::pause();
    let early = tokio::time::timeout(Duration::from_secs(2), &mut meanwhile).await;
    tokio::time::resume();
    assert!(early.is_err(), "answered before the probe's end: {early:?}");
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
    // The probe's success lets it go, to the endpoint.
    let meanwhile = meanwhile.await.unwrap().unwrap();
    assert_eq!(meanwhile.status(), StatusCode::OK);
    assert!(
        meanwhile.headers().get("mesh-error").is_none(),
        "{:?}",
        meanwhile.headers()
    );
    let body = meanwhile.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
}

#[tokio::test]
async fn a_probe_whose_caller_drops_its_response_lets_the_next_request_probe() {
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    take_out_and_wait(&forward, &view).await;

    let res = forward.clone().oneshot(grpc_call("hang")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(res);
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Probing)],
        "a probe given up on decides nothing"
    );
    let res = forward
        .clone()
        .oneshot(grpc_call("trailers:0"))
        .await
        .unwrap();
    assert!(res.headers().get("mesh-error").is_none(), "the next probe");
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
}

#[tokio::test]
async fn a_grpc_stream_ended_without_a_status_counts_even_when_the_callers_server_knows_its_length()
{
    // Over HTTP/1 the caller's server writes a body of known length (0,
    // or the message's) and stops there, never polling for an end that
    // has already come: the verdict is given as soon as the body says it
    // has ended, at its head or with its last message.
    for end in ["empty", "whole"] {
        let endpoint = grpc_h1_upstream().await;
        let (addr, view, _trigger) = proxy(endpoint).await;
        let conn = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
            .await
            .unwrap();
        tokio::spawn(conn);
        let call = Request::post("/emoji.EmojiService/ListAll")
            .header("host", "emoji")
            .header("content-type", "application/grpc")
            .header("x-end", end)
            .body(full(""))
            .unwrap();
        let res = sender.send_request(call).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{end}");
        assert!(res.headers().get("mesh-error").is_none(), "{end}: answered");
        assert!(res.headers().get("grpc-status").is_none(), "{end}");
        let body = res.into_body().collect().await.unwrap();
        assert!(body.trailers().is_none(), "{end}");
        assert_eq!(
            view.endpoints().unwrap(),
            [(endpoint, EndpointState::Failing)],
            "{end}: no status, a failure"
        );
    }
}

#[tokio::test]
async fn a_grpc_stream_ended_at_its_head_without_a_status_passes_on_ended_and_counts_at_once() {
    // A server that ends the stream on its headers, with no status: the
    // caller gets those headers ending the stream, as they came (not an
    // empty message after them), and the endpoint failed.
    let endpoint = grpc_stream_upstream().await;
    let (addr, view, _trigger) = proxy(endpoint).await;
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(grpc_call("empty")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("mesh-error").is_none(), "answered");
    assert!(res.body().is_end_stream(), "END_STREAM on the headers");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
}

#[tokio::test]
async fn a_probe_its_caller_cancels_over_http2_counts_nothing_and_lets_the_next_request_probe() {
    // The caller resets its stream mid-call: the caller's server drops the
    // response, and the reset that then goes upstream is this side's, not
    // the endpoint's.
    let (gone_tx, mut gone) = tokio::sync::mpsc::unbounded_channel();
    let endpoint = grpc_upstream_watching_hangs(gone_tx).await;
    let (addr, view, _trigger) = proxy(endpoint).await;
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn))
            .await
            .unwrap();
    tokio::spawn(conn);

    let res = sender.send_request(grpc_call("only:14")).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Failing)]
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::time::resume();

    let res = sender.send_request(grpc_call("hang")).await.unwrap();
    assert!(res.headers().get("mesh-error").is_none(), "the probe");
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    drop(body);
    gone.recv().await.unwrap();
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Probing)],
        "a cancelled probe decides nothing"
    );

    let res = sender.send_request(grpc_call("trailers:0")).await.unwrap();
    assert!(res.headers().get("mesh-error").is_none(), "the next probe");
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)]
    );
}

#[tokio::test]
async fn a_grpc_call_answered_by_a_page_that_is_not_grpc_counts_against_the_endpoint() {
    // An endpoint that answers gRPC calls with an HTML `200` (a web server
    // where a gRPC server should be) fails every call: its clients read
    // UNKNOWN. A `404` page describes the call, as for HTTP; and the same
    // `200` answering a request that is not gRPC is a success.
    for (status, grpc_call, state) in [
        (200, true, EndpointState::Failing),
        (404, true, EndpointState::Ready),
        (200, false, EndpointState::Ready),
    ] {
        let endpoint = h2_upstream(move |_: Request<Incoming>| async move {
            Response::builder()
                .status(status)
                .header("content-type", "text/html")
                .body(full("<html></html>"))
                .unwrap()
        })
        .await;
        let (forward, view) = strict_forward(endpoint);
        let content_type = if grpc_call {
            "application/grpc"
        } else {
            "application/json"
        };
        let call = Request::post("http://emoji/emoji.EmojiService/ListAll")
            .version(Version::HTTP_2)
            .header("content-type", content_type)
            .body(full(""))
            .unwrap();
        let res = forward.clone().oneshot(call).await.unwrap();
        assert_eq!(res.status(), status);
        res.into_body().collect().await.unwrap();
        assert_eq!(
            view.endpoints().unwrap(),
            [(endpoint, state)],
            "{status} to a grpc call: {grpc_call}"
        );
    }
}
