//! A request body is recorded for the retries that may still replay it,
//! and no longer: once the retry layer has handed the response on (a
//! client-streaming or bidirectional gRPC call whose answer began while
//! the caller still sends), no attempt can follow, and what the request
//! still sends is not kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied, boxed, full},
};
use mesh_retry::{
    Budget, BudgetConfig, RetryLayer, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody,
};
use tokio::sync::{mpsc, oneshot};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Counts the chunks whose bytes were freed: the last `Bytes` that
/// shares one drops its owner.
struct Owner {
    bytes: Vec<u8>,
    freed: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.freed.fetch_add(1, Ordering::Relaxed);
    }
}

fn chunk(text: &str, freed: &Arc<AtomicUsize>) -> Bytes {
    Bytes::from_owner(Owner {
        bytes: text.as_bytes().to_vec(),
        freed: freed.clone(),
    })
}

/// A body the test sends frames into.
fn channel_body() -> (mpsc::Sender<Result<Frame<Bytes>, BoxError>>, BoxBody) {
    let (tx, rx) = mpsc::channel(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    (tx, boxed(StreamBody::new(stream)))
}

#[tokio::test]
async fn a_body_is_not_recorded_once_its_replay_is_gone() {
    let freed = Arc::new(AtomicUsize::new(0));
    let (tx, body) = channel_body();
    let (mut first, replay) = ReplayBody::try_new(body, 64 * 1024).unwrap();
    // No further attempt can be made.
    drop(replay);
    tx.send(Ok(Frame::data(chunk("hello", &freed))))
        .await
        .unwrap();
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.data_ref().unwrap(), "hello");
    drop(frame);
    assert_eq!(freed.load(Ordering::Relaxed), 1, "the chunk was kept");
}

/// A route whose upstream answers at once and reads the request body
/// after: the response reaches the caller while the body still streams.
/// Each chunk the caller sends after that is freed once the upstream
/// has read it and let go.
async fn stream_after_the_answer<L>(layer: L)
where
    L: tower::Layer<
            tower::util::BoxCloneService<
                Request<ReplayBody<BoxBody>>,
                Response<Proxied<BoxBody>>,
                BoxError,
            >,
        >,
    L::Service: tower::Service<Request<BoxBody>, Error = BoxError> + Clone,
    <L::Service as tower::Service<Request<BoxBody>>>::Response: Send,
{
    let (give, take) = oneshot::channel();
    let give = Arc::new(std::sync::Mutex::new(Some(give)));
    let upstream = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let give = give.clone();
        async move {
            if let Some(give) = give.lock().unwrap().take() {
                let _ = give.send(req.into_body());
            }
            Ok::<_, BoxError>(Response::new(Proxied::from(full("streaming answer"))))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(tower::util::BoxCloneService::new(upstream));
    let freed = Arc::new(AtomicUsize::new(0));
    let (tx, body) = channel_body();
    let req = Request::post("http://emoji/stream")
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    drop(res);
    let mut sent = take.await.unwrap();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        tx.send(Ok(Frame::data(chunk(text, &freed)))).await.unwrap();
        let frame = sent.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap(), text);
        drop(frame);
        assert_eq!(
            freed.load(Ordering::Relaxed),
            i + 1,
            "chunk {text} was kept"
        );
    }
}

fn budget() -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetConfig::new(1.0, 100, Duration::from_secs(10)).unwrap(),
    ))
}

#[tokio::test]
async fn the_retry_layer_keeps_nothing_a_call_sends_after_its_answer() {
    // The default policy keeps a replay of a gRPC call's body, for a
    // failure the upstream did not process.
    stream_after_the_answer(RetryLayer::new(RetryPolicy::default(), budget())).await;
}

#[tokio::test]
async fn the_route_stack_keeps_nothing_a_call_sends_after_its_answer() {
    let layer = RouteStackLayer::new(RetryPolicy::default(), Timeouts::default(), budget());
    stream_after_the_answer(layer).await;
}
