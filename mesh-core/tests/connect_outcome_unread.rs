//! An HTTP/2 connect runs as a task of its own, which its request waits
//! for (see `mesh_core::proxy::balance::reconnect`). A connect that fails
//! just as its request is given up on (the task has handed the failure
//! over, and the request goes before it reads it) is one its request
//! never saw: it backs its endpoint off as a connect given up on does,
//! rather than being taken as reported by a request that is gone.
//!
//! The connect here is a real one, refused, that starts only on cue, so
//! that the request can be left unpolled while it ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::refused::refused_addr;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Uri, Version};
use http_body_util::Empty;
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use mesh_core::{
    BoxError,
    client::{Client, ClientConfig},
    proxy::{EndpointSet, EndpointState, Forward, balance::ConnectBackoff},
};
use tokio::{net::TcpStream, sync::Notify};
use tower::{Service, ServiceExt};

/// Plaintext TCP connects that each wait for `cue` before they start,
/// and say when one was asked for and when one ended.
#[derive(Clone)]
struct Cued {
    inner: HttpConnector,
    cue: Arc<Notify>,
    called: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
}

impl Service<Uri> for Cued {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.called.store(true, Ordering::SeqCst);
        let (mut inner, cue, ended) = (self.inner.clone(), self.cue.clone(), self.ended.clone());
        Box::pin(async move {
            cue.notified().await;
            let connected = inner.call(uri).await.map_err(Into::into);
            ended.store(true, Ordering::SeqCst);
            connected
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_connect_whose_request_goes_before_reading_it_backs_its_endpoint_off() {
    let dead = refused_addr();
    let cued = Cued {
        inner: ClientConfig::default().http_connector(),
        cue: Arc::new(Notify::new()),
        called: Arc::new(AtomicBool::new(false)),
        ended: Arc::new(AtomicBool::new(false)),
    };
    let client: Client<Empty<Bytes>, Cued> =
        Client::with_connector(&ClientConfig::default(), cued.clone());
    let minute =
        ConnectBackoff::new(Duration::from_secs(60), Duration::from_secs(60), 0.0).unwrap();
    let set = EndpointSet::new([dead])
        .unwrap()
        .with_connect_backoff(minute);
    let forward = Forward::with_endpoints(client, &set);
    let view = set.view();
    let state = || view.endpoints().unwrap()[0].1;

    let req = Request::get("/")
        .version(Version::HTTP_2)
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    let mut send = Box::pin(forward.oneshot(req));
    // Polled until its connect is asked for, and never after.
    for _ in 0..100 {
        if cued.called.load(Ordering::SeqCst) {
            break;
        }
        std::future::poll_fn(|cx| {
            assert!(send.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        tokio::task::yield_now().await;
    }
    assert!(cued.called.load(Ordering::SeqCst), "no connect");

    // The connect is refused; its task hands the failure over to the
    // request, which does not read it.
    cued.cue.notify_one();
    for _ in 0..5_000 {
        if cued.ended.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(cued.ended.load(Ordering::SeqCst), "the connect did not end");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(state(), EndpointState::Ready, "nothing known yet");

    // The request goes without having seen its connect fail.
    drop(send);
    assert_eq!(state(), EndpointState::Pending);
}
