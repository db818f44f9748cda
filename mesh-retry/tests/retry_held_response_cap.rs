//! The failed response a retry holds through its backoff and its wait for
//! the service (to give back if the retry is then refused) is held only
//! when it is small: a large body, unread on an HTTP/2 stream, would keep
//! its share of the connection's flow-control window the whole time. The
//! retry layer and the route stack drop such a response when they decide
//! to retry, which resets its stream at once; a small one is still given
//! back, whole, when the service fails to get ready for the retry. Real
//! HTTP/2 over sockets on 127.0.0.1.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::body::empty;
use mesh_retry::{Budget, RetryPolicy};
use tokio::{sync::Notify, time::sleep};

use crate::support::retrying::{self, Endpoints, Layered};

/// What happened, in order.
type Events = Arc<Mutex<Vec<&'static str>>>;

/// A 503 body of `len` bytes, with a `content-length` when `exact`, sent
/// in 16 KiB chunks; its upstream notes when it is dropped (sent whole, or
/// its stream reset).
struct Failure {
    left: usize,
    exact: bool,
    events: Events,
    dropped: Arc<Notify>,
}

impl Body for Failure {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(16 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            true => SizeHint::with_exact(self.left as u64),
            false => SizeHint::new(),
        }
    }
}

impl Drop for Failure {
    fn drop(&mut self) {
        let whole = self.left == 0;
        self.events.lock().unwrap().push(match whole {
            true => "upstream sent the 503 whole",
            false => "upstream's 503 stream reset",
        });
        self.dropped.notify_one();
    }
}

/// An upstream, over HTTP/1.1 or HTTP/2, that answers every request with a
/// 503 whose body is `len` bytes long, its length told when `exact`
/// (chunked on HTTP/1.1 otherwise), but for the `ok_after`th and later,
/// answered 200.
async fn failing(
    len: usize,
    exact: bool,
    ok_after: usize,
    events: Events,
    dropped: Arc<Notify>,
) -> String {
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (events, dropped, seen) = (events.clone(), dropped.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (events, dropped) = (events.clone(), dropped.clone());
                    let ok = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= ok_after;
                    async move {
                        let _ = req.into_body().collect().await;
                        let body = Failure {
                            left: if ok { 0 } else { len },
                            exact,
                            events,
                            dropped,
                        };
                        let mut res = Response::builder().status(if ok { 200 } else { 503 });
                        if exact {
                            res = res.header("content-length", body.left);
                        }
                        Ok::<_, Infallible>(res.body(body).unwrap())
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/items")
}

/// mesh-core's client behind a balancer whose endpoints are gone once it
/// has sent the first attempt: asked to get ready for the retry, it waits
/// until the upstream has let go of the failed response (or a minute of
/// the paused clock), and then fails.
fn endpoints(events: Events, dropped: Arc<Notify>) -> Endpoints {
    Endpoints::after_first(move || {
        let (events, dropped) = (events.clone(), dropped.clone());
        Box::pin(async move {
            tokio::select! {
                () = dropped.notified() => {}
                () = sleep(Duration::from_secs(60)) => {}
            }
            events.lock().unwrap().push("retry refused");
            Err(retrying::no_endpoints())
        })
    })
}

/// Sends a GET over HTTP/2 to an upstream that fails it with a `len`-byte
/// body, through `layered` over a service that refuses the retry: the
/// events in order, and what the caller got (the status and the body's
/// length, or the error).
async fn refused_retry(
    layered: Layered,
    len: usize,
) -> (Vec<&'static str>, Result<(u16, usize), String>) {
    refused_retry_over(layered, len, Version::HTTP_2, true).await
}

/// [`refused_retry`], over `version`, the 503's length told when `exact`.
async fn refused_retry_over(
    layered: Layered,
    len: usize,
    version: Version,
    exact: bool,
) -> (Vec<&'static str>, Result<(u16, usize), String>) {
    let events = Events::default();
    let dropped = Arc::new(Notify::new());
    let uri = failing(len, exact, usize::MAX, events.clone(), dropped.clone()).await;
    let endpoints = endpoints(events.clone(), dropped);
    let budget = Arc::new(Budget::default());
    let req = Request::get(&uri).version(version).body(empty()).unwrap();
    let got = layered
        .send(RetryPolicy::default(), budget, None, endpoints, req)
        .await
        .map(|res| (res.status().as_u16(), res.body().len()))
        .map_err(|error| error.to_string());
    // A body the caller got was read whole, or dropped: either way the
    // upstream has let go of it by now.
    let events = events.lock().unwrap().clone();
    (events, got)
}

/// 3 MiB: more than an HTTP/2 stream's window, so the upstream is still
/// sending it when the retry is decided.
const LARGE: usize = 3 * 1024 * 1024;

/// 1 KiB: under the cap, sent whole at once.
const SMALL: usize = 1024;

fn assert_dropped_at_the_decision(events: &[&str], got: &Result<(u16, usize), String>) {
    assert_eq!(
        events,
        ["upstream's 503 stream reset", "retry refused"],
        "the large failure is let go before the retry's wait ends"
    );
    let error = got.as_ref().expect_err("nothing held to give back");
    assert!(error.contains("no endpoints"), "{error}");
}

fn assert_given_back(events: &[&str], got: &Result<(u16, usize), String>) {
    assert_eq!(got, &Ok((503, SMALL)), "the held 503 comes back whole");
    assert_eq!(events, ["upstream sent the 503 whole", "retry refused"]);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_drops_a_large_failure_when_it_decides_to_retry() {
    let (events, got) = refused_retry(Layered::Retry, LARGE).await;
    assert_dropped_at_the_decision(&events, &got);
}

#[tokio::test(start_paused = true)]
async fn so_does_the_route_stack() {
    let (events, got) = refused_retry(Layered::Stack, LARGE).await;
    assert_dropped_at_the_decision(&events, &got);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_gives_back_a_small_failure_its_retry_was_refused_for() {
    let (events, got) = refused_retry(Layered::Retry, SMALL).await;
    assert_given_back(&events, &got);
}

#[tokio::test(start_paused = true)]
async fn so_does_the_route_stack_for_a_small_failure() {
    let (events, got) = refused_retry(Layered::Stack, SMALL).await;
    assert_given_back(&events, &got);
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_a_failure_of_exactly_64_kib_and_not_a_byte_more() {
    // Over HTTP/2 the whole body has arrived, unread, when the retry is
    // decided: its exact size, not its end, decides.
    for layered in retrying::BOTH {
        let (_, got) = refused_retry(layered, 64 * 1024).await;
        assert_eq!(got, Ok((503, 64 * 1024)), "{layered:?}: held");
        let (_, got) = refused_retry(layered, 64 * 1024 + 1).await;
        let error = got.expect_err("dropped");
        assert!(error.contains("no endpoints"), "{layered:?}: {error}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_small_failure_of_unknown_length_is_dropped() {
    // A chunked HTTP/1.1 503 says nothing of its length: it is not held,
    // however short.
    for layered in retrying::BOTH {
        let (_, got) = refused_retry_over(layered, SMALL, Version::HTTP_11, false).await;
        let error = got.expect_err("dropped");
        assert!(error.contains("no endpoints"), "{layered:?}: {error}");
        // With its length told, it is held and given back.
        let (_, got) = refused_retry_over(layered, SMALL, Version::HTTP_11, true).await;
        assert_eq!(got, Ok((503, SMALL)), "{layered:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_dropped_http1_failure_is_answered_on_a_clean_connection() {
    // The large 503 is dropped unread at the decision: its connection is
    // not given back to the pool mid-body, and the retry gets the 200.
    for layered in retrying::BOTH {
        let uri = failing(LARGE, true, 1, Events::default(), Arc::new(Notify::new())).await;
        let ready = Endpoints::after_first(|| Box::pin(async { Ok(()) }));
        let req = Request::get(&uri)
            .version(Version::HTTP_11)
            .body(empty())
            .unwrap();
        let got = layered
            .send(
                RetryPolicy::default(),
                Arc::new(Budget::default()),
                None,
                ready.clone(),
                req,
            )
            .await
            .map(|res| (res.status().as_u16(), res.body().len()))
            .map_err(|error| error.to_string());
        assert_eq!(got, Ok((200, 0)), "{layered:?}");
        assert_eq!(ready.sent(), 2, "{layered:?}");
    }
}
