//! Failure accrual of requests a timeout above the proxy cuts, over real
//! sockets and tokio's paused clock: one whose upstream never answers,
//! and a gRPC stream that stalls after its first message. The layer that
//! times them out says so through a `TimedOut` on the request, and they
//! count against their endpoint, as Linkerd counts a request or stream
//! its endpoint stack times out. A caller that simply gives up still
//! counts nothing.
//!
//! The clock is paused only once the request is with the upstream: a
//! paused clock jumps to the next timer whenever the runtime has nothing
//! ready, and a connection still being set up over real sockets would
//! then meet the client's one-second connect timeout before the kernel
//! had finished it, on a loaded machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::accrual;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use accrual::{grpc_call, grpc_stream_upstream, strict};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::{
    body::BoxBody,
    client::{Client, ClientConfig},
    proxy::{BalancerView, EndpointState, Forward, TimedOut},
};
use tokio::{net::TcpListener, sync::Notify};
use tower::ServiceExt;

/// How long the stream may stall before the timeout above cuts it.
const IDLE: Duration = Duration::from_secs(5);

fn strict_forward(endpoint: SocketAddr) -> (Forward<Client<BoxBody>>, BalancerView) {
    let client = Client::<BoxBody>::new(&ClientConfig::default());
    let forward = Forward::new(client, [endpoint])
        .unwrap()
        .with_failure_accrual(strict());
    let view = forward.balancer_view().unwrap();
    (forward, view)
}

/// Sends a call whose upstream sends one message and then stalls, reads
/// the message, and waits for the next frame for [`IDLE`] as an idle
/// timeout above the proxy does. On timeout, the body is dropped:
/// `cut_by_timeout` says whether the timeout says so first. Returns the
/// endpoint's state after.
async fn stalled_stream(cut_by_timeout: bool) -> (SocketAddr, EndpointState) {
    let endpoint = grpc_stream_upstream().await;
    let (forward, view) = strict_forward(endpoint);
    let mut call = grpc_call("hang");
    let timeout = TimedOut::on(&mut call);
    let res = forward.clone().oneshot(call).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let message = body.frame().await.unwrap().unwrap();
    assert!(message.is_data());
    // The stream is open and stalls: no real I/O is left to race the
    // paused clock.
    tokio::time::pause();
    let next = tokio::time::timeout(IDLE, body.frame()).await;
    assert!(next.is_err(), "the stream stalls: {next:?}");
    if cut_by_timeout {
        timeout.expire();
    }
    drop(body);
    let [(addr, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    (addr, state)
}

#[tokio::test]
async fn a_grpc_stream_a_timeout_cuts_before_its_end_counts_against_the_endpoint() {
    let (addr, state) = stalled_stream(true).await;
    assert_eq!(
        state,
        EndpointState::Failing,
        "{addr} stalled the stream until its timeout"
    );
}

#[tokio::test]
async fn a_grpc_stream_its_caller_drops_while_it_stalls_does_not_count_against_the_endpoint() {
    let (addr, state) = stalled_stream(false).await;
    assert_eq!(state, EndpointState::Ready, "{addr}: the caller went away");
}

#[test]
fn timeout_layers_nested_in_one_another_share_one_handle() {
    let mut req = http::Request::new(());
    let outer = TimedOut::on(&mut req);
    let inner = TimedOut::on(&mut req);
    assert!(!outer.expired());
    inner.expire();
    assert!(
        outer.expired(),
        "the outer layer's handle sees the inner's cut"
    );
}

/// An HTTP/2 upstream that never answers, and notifies `arrived` of each
/// request it takes.
async fn unanswering_upstream(arrived: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let arrived = arrived.clone();
            let svc = hyper::service::service_fn(move |_: Request<Incoming>| {
                arrived.notify_one();
                std::future::pending::<Result<Response<BoxBody>, Infallible>>()
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), svc),
            );
        }
    });
    addr
}

/// Sends `req` through `forward` in real time until the upstream has it
/// (notified on `arrived`), then pauses the clock and waits for its
/// response for [`IDLE`], as a response timeout above the proxy does.
/// Returns the response future, still waiting.
async fn sent_then_waited_for(
    forward: &Forward<Client<BoxBody>>,
    req: Request<BoxBody>,
    arrived: &Notify,
) -> impl Future + use<> {
    let mut res = Box::pin(forward.clone().oneshot(req));
    tokio::select! {
        () = arrived.notified() => {}
        early = res.as_mut() => panic!("answered before the upstream took it: {early:?}"),
    }
    tokio::time::pause();
    let waited = tokio::time::timeout(IDLE, res.as_mut()).await;
    assert!(waited.is_err(), "no answer comes: {waited:?}");
    res
}

/// Sends a request to an upstream that never answers, and waits for its
/// response for [`IDLE`], as a response timeout above the proxy does.
/// Then the response future is dropped: `cut_by_timeout` says whether the
/// timeout says so first. Returns the endpoint's state after.
async fn unanswered(cut_by_timeout: bool) -> (SocketAddr, EndpointState) {
    let arrived = Arc::new(Notify::new());
    let endpoint = unanswering_upstream(arrived.clone()).await;
    let (forward, view) = strict_forward(endpoint);
    let mut call = grpc_call("hang");
    let timeout = TimedOut::on(&mut call);
    let res = sent_then_waited_for(&forward, call, &arrived).await;
    if cut_by_timeout {
        timeout.expire();
    }
    drop(res);
    let [(addr, state)] = view.endpoints().unwrap()[..] else {
        panic!("one endpoint")
    };
    (addr, state)
}

#[tokio::test]
async fn a_request_a_timeout_cuts_before_its_response_counts_against_the_endpoint() {
    let (addr, state) = unanswered(true).await;
    assert_eq!(state, EndpointState::Failing, "{addr} never answered");
}

#[tokio::test]
async fn a_request_its_caller_gives_up_on_before_its_response_does_not_count_against_the_endpoint()
{
    let (addr, state) = unanswered(false).await;
    assert_eq!(state, EndpointState::Ready, "{addr}: the caller went away");
}

#[tokio::test]
async fn a_retry_after_a_per_try_timeout_that_its_caller_gives_up_on_counts_nothing() {
    // The first try's timeout expired the handle the retry's request
    // carries too (a retry clones its request, extensions and all): that
    // cut was the first try's, not the retry's.
    let arrived = Arc::new(Notify::new());
    let endpoint = unanswering_upstream(arrived.clone()).await;
    let (forward, view) = strict_forward(endpoint);
    let mut first = grpc_call("hang");
    let timeout = TimedOut::on(&mut first);
    timeout.expire();
    let mut retry = grpc_call("hang");
    retry.extensions_mut().insert(timeout.clone());
    let res = sent_then_waited_for(&forward, retry, &arrived).await;
    drop(res);
    assert_eq!(
        view.endpoints().unwrap(),
        [(endpoint, EndpointState::Ready)],
        "the caller went away"
    );
}
