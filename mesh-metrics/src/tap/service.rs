//! The layer that taps requests, its response future and its body.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use mesh_core::{
    classify::{ErrorKind, GrpcCode},
    error::{BoxError, GRPC_STATUS},
};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use super::{Tap, TapEventKind, Tapped};
use crate::{
    body_rule::{CUT_SHORT, Remaining},
    labels::Direction,
};

/// What a client that went away before the end is reported with.
const CANCEL: &str = "cancel";

/// Taps the requests through the services it wraps, on one side of the
/// proxy. See the [module docs](super).
#[derive(Clone, Debug)]
pub struct TapLayer {
    tap: Tap,
    direction: Direction,
}

impl TapLayer {
    /// Taps a stack's requests as `direction`'s through `tap`.
    pub fn new(tap: &Tap, direction: Direction) -> Self {
        Self {
            tap: tap.clone(),
            direction,
        }
    }
}

impl<S> Layer<S> for TapLayer {
    type Service = TapService<S>;

    fn layer(&self, inner: S) -> TapService<S> {
        TapService {
            inner,
            tap: self.tap.clone(),
            direction: self.direction,
        }
    }
}

/// A service whose requests are tapped. See [`TapLayer`].
#[derive(Clone, Debug)]
pub struct TapService<S> {
    inner: S,
    tap: Tap,
    direction: Direction,
}

impl<S, B, RB> Service<Request<B>> for TapService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body,
{
    type Response = Response<TapBody<RB>>;
    type Error = BoxError;
    type Future = TapFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let tapped = self.tap.start(self.direction, &req);
        TapFuture {
            inner: self.inner.call(req),
            tapped,
        }
    }
}

pin_project! {
    /// Sends the response event when the head arrives, and hands the rest
    /// to the [`TapBody`].
    #[derive(Debug)]
    pub struct TapFuture<F> {
        #[pin]
        inner: F,
        tapped: Option<Tapped>,
    }

    impl<F> PinnedDrop for TapFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut tapped) = this.project().tapped.take() {
                let took = tapped.start.elapsed();
                end(&mut tapped, None, took, 0, Some(CANCEL));
            }
        }
    }
}

impl<F, RB, E> Future for TapFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    RB: Body,
{
    type Output = Result<Response<TapBody<RB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        let Some(mut tapped) = this.tapped.take() else {
            return Poll::Ready(result.map(|res| res.map(TapBody::untapped)));
        };
        Poll::Ready(match result {
            Ok(res) => {
                let now = Instant::now();
                tapped.send(TapEventKind::Rsp {
                    status: res.status().as_u16(),
                    latency_us: micros(now.saturating_duration_since(tapped.start)),
                });
                let grpc_status = grpc_status(res.headers());
                let over = res.body().is_end_stream() || !tapped.body_rule.has_body(res.status());
                let mut recording = Recording {
                    tapped,
                    response_at: now,
                    bytes: 0,
                    grpc_status,
                    remaining: if over {
                        Remaining::NONE
                    } else {
                        Remaining::of(&res)
                    },
                };
                if over {
                    // Nobody will read a body: the exchange is over, and
                    // nothing of the length the head declared (a `HEAD`'s,
                    // a 304's) is missing.
                    recording.end(None, None);
                    Ok(res.map(TapBody::untapped))
                } else {
                    Ok(res.map(|body| TapBody {
                        inner: body,
                        recording: Some(Box::new(recording)),
                    }))
                }
            }
            Err(error) => {
                let kind = ErrorKind::of(&*error).as_label();
                let took = tapped.start.elapsed();
                end(&mut tapped, None, took, 0, Some(kind));
                Err(error)
            }
        })
    }
}

/// What the body of a tapped response sends at its end.
#[derive(Debug)]
struct Recording {
    tapped: Tapped,
    response_at: Instant,
    bytes: u64,
    grpc_status: Option<u16>,
    /// What is left of the body's declared length: a body dropped once
    /// it is all out ended, unread to its end by a server that needs no
    /// more; one whose stream ends before was cut short.
    remaining: Remaining,
}

impl Recording {
    /// The stream ended, with `trailers` if it had any: cleanly, unless
    /// short of its declared length, which its client reads as an
    /// incomplete message, as [`CUT_SHORT`].
    fn ended(&mut self, trailers: Option<&HeaderMap>) {
        let error = self.remaining.ends_short().then(|| CUT_SHORT.as_label());
        self.end(trailers, error);
    }

    fn end(&mut self, trailers: Option<&HeaderMap>, error: Option<&'static str>) {
        let grpc_status = trailers.and_then(grpc_status).or(self.grpc_status);
        let took = self.response_at.elapsed();
        end(&mut self.tapped, grpc_status, took, self.bytes, error);
    }
}

fn end(
    tapped: &mut Tapped,
    grpc_status: Option<u16>,
    took: Duration,
    bytes: u64,
    error: Option<&str>,
) {
    tapped.send(TapEventKind::End {
        grpc_status,
        duration_us: micros(took),
        response_bytes: bytes,
        error: error.map(str::to_owned),
    });
}

fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    GrpcCode::from_header(headers.get(&GRPC_STATUS)?).map(GrpcCode::as_u16)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pin_project! {
    /// A response body that sends the end event of a tapped request when
    /// its stream ends (`reset` if short of its declared length), fails,
    /// or is dropped before its end (`cancel`).
    /// Untapped, it only passes frames on.
    #[derive(Debug)]
    pub struct TapBody<B> {
        #[pin]
        inner: B,
        // Boxed: an untapped body, the usual one, is moved with every
        // response, and stays the size of the body it wraps plus a
        // pointer.
        recording: Option<Box<Recording>>,
    }

    impl<B> PinnedDrop for TapBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut recording) = this.project().recording.take() {
                let error = (!recording.remaining.is_sent()).then_some(CANCEL);
                recording.end(None, error);
            }
        }
    }
}

impl<B> TapBody<B> {
    fn untapped(inner: B) -> Self {
        Self {
            inner,
            recording: None,
        }
    }

    /// Whether a tap waits for this body's end.
    #[cfg(test)]
    pub(super) fn is_tapped(&self) -> bool {
        self.recording.is_some()
    }
}

/// An empty body that reports nothing, for layers outside the tap that
/// answer without calling it.
impl<B: Default> Default for TapBody<B> {
    fn default() -> Self {
        Self::untapped(B::default())
    }
}

impl<B> Body for TapBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some(recording) = this.recording.as_mut() else {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        };
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let n = bytes::Buf::remaining(data) as u64;
                    recording.bytes += n;
                    recording.remaining.sent(n);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    recording.ended(Some(trailers));
                    *this.recording = None;
                } else if this.inner.is_end_stream() {
                    recording.ended(None);
                    *this.recording = None;
                }
                Some(Ok(frame))
            }
            Some(Err(error)) => {
                let error = error.into();
                recording.end(None, Some(ErrorKind::of(&*error).as_label()));
                *this.recording = None;
                Some(Err(error))
            }
            None => {
                recording.ended(None);
                *this.recording = None;
                None
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
