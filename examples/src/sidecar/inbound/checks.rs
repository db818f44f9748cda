//! What the inbound side refuses before authorization, counted like every
//! other response it sends.
//!
//! A request whose `Host` names no one host ([`host`](super::host)) or
//! whose path cannot be put in normal form (mesh-core's
//! [`normalize_path`]) is answered `400 Bad Request` by the sidecar, or
//! gRPC's `INTERNAL` for a gRPC caller, with a `mesh-error` that says
//! which. Both checks come before authorization, which reads the host and
//! the path, and so before the metrics layer, which sits under
//! authorization to read the labels its decision attaches. Answered
//! there, those `400`s were sent but never counted: `request_total` and
//! `response_total` missed every request the sidecar refused, and a
//! dashboard's success rate missed the failures its callers saw. Linkerd
//! counts every response its proxy writes.
//!
//! So [`RequestChecks`] hands a refused request to a service of its own
//! under the same metrics ([`Refuse`] in a `Metrics`), which answers it
//! and counts it, with `error="invalid_request"` and the labels the
//! connection gives (no server, route or authorization: none was
//! decided). An accepted request costs nothing more than the checks did
//! before: one scan of `Host`, one of the path.

use std::{
    borrow::Cow,
    future::{Ready, ready},
    marker::PhantomData,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Request, Response, Uri, uri::PathAndQuery};
use mesh_core::{
    error::{BoxError, ProxyErrorKind, is_grpc},
    route::normalize_path,
};
use tower::{Layer, Service};

use super::host::{INVALID_HOST, authority_from_host};

/// The `mesh-error` (and `grpc-message`) of a path that cannot be put in
/// normal form.
const INVALID_PATH: &str = "invalid path";

/// Why a request was refused, for [`Refuse`] to answer with. A request
/// extension.
#[derive(Clone, Copy, Debug)]
struct Refusal(&'static str);

/// Builds [`RequestChecks`], whose refusals go to `refuse`.
#[derive(Clone, Debug)]
pub(crate) struct RequestChecksLayer<R> {
    refuse: R,
}

impl<R> RequestChecksLayer<R> {
    pub(crate) fn new(refuse: R) -> Self {
        Self { refuse }
    }
}

impl<S, R: Clone> Layer<S> for RequestChecksLayer<R> {
    type Service = RequestChecks<S, R>;

    fn layer(&self, inner: S) -> RequestChecks<S, R> {
        RequestChecks {
            inner,
            refuse: self.refuse.clone(),
        }
    }
}

/// Checks each request's `Host` (making an HTTP/2 request's URI name it)
/// and puts its path in normal form; sends it on to `inner`, or, refused,
/// to `refuse`. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct RequestChecks<S, R> {
    inner: S,
    refuse: R,
}

impl<S, R, B, RB> Service<Request<B>> for RequestChecks<S, R>
where
    S: Service<Request<B>, Response = Response<RB>>,
    R: Service<Request<B>, Response = Response<RB>, Error = S::Error>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // `refuse` answers at once; it is polled so that either may be
        // called.
        match self.refuse.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.inner.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let refusal = match authority_from_host(&mut req) {
            Ok(()) => normal_path(&mut req).err(),
            Err(_) => Some(INVALID_HOST),
        };
        match refusal {
            None => Either::Left(self.inner.call(req)),
            Some(reason) => {
                tracing::debug!(reason, "request refused");
                req.extensions_mut().insert(Refusal(reason));
                Either::Right(self.refuse.call(req))
            }
        }
    }
}

/// Puts `req`'s path in normal form; the [`INVALID_PATH`] reason when it
/// has none. A path already in normal form, nearly every one, is only
/// scanned.
fn normal_path<B>(req: &mut Request<B>) -> Result<(), &'static str> {
    let path = match normalize_path(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => return Ok(()),
        Ok(Cow::Owned(path)) => path,
        Err(_) => return Err(INVALID_PATH),
    };
    let uri = with_path(req.uri(), path).ok_or(INVALID_PATH)?;
    *req.uri_mut() = uri;
    Ok(())
}

/// `uri` with `path` in place of its path, its query kept.
fn with_path(uri: &Uri, mut path: String) -> Option<Uri> {
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
    Uri::from_parts(parts).ok()
}

/// Answers a request [`RequestChecks`] refused: `400` with the reason in
/// `mesh-error`, or gRPC's `INTERNAL` to a gRPC caller, and the
/// [`ProxyErrorKind::InvalidRequest`] that metrics label it with.
#[derive(Debug)]
pub(crate) struct Refuse<RB> {
    _body: PhantomData<fn() -> RB>,
}

impl<RB> Refuse<RB> {
    pub(crate) fn new() -> Self {
        Self { _body: PhantomData }
    }
}

impl<RB> Clone for Refuse<RB> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

/// It never fails, but its error is the one of the application's stack it
/// stands beside in [`RequestChecks`], which takes one error type for both.
impl<B, RB: Default> Service<Request<B>> for Refuse<RB> {
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Ready<Result<Response<RB>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let reason = req
            .extensions()
            .get::<Refusal>()
            .map_or(ProxyErrorKind::InvalidRequest.reason(), |r| r.0);
        let grpc = is_grpc(req.headers());
        ready(Ok(
            ProxyErrorKind::InvalidRequest.response_with_reason(grpc, reason)
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{StatusCode, header};
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// Checks over an inner service that answers with the URI it got,
    /// and a refusal that answers `418` with its reason.
    async fn checked(req: Request<()>) -> (StatusCode, String) {
        let inner = service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.uri().to_string()))
        });
        let refuse = service_fn(|req: Request<()>| async move {
            let reason = req.extensions().get::<Refusal>().unwrap().0;
            let mut res = Response::new(reason.to_owned());
            *res.status_mut() = StatusCode::IM_A_TEAPOT;
            Ok::<_, Infallible>(res)
        });
        let res = RequestChecksLayer::new(refuse)
            .layer(inner)
            .oneshot(req)
            .await
            .unwrap();
        (res.status(), res.into_body())
    }

    #[tokio::test]
    async fn accepted_requests_go_on_normalized_and_refused_ones_to_refuse() {
        let req = Request::get("/a/./b//c?x=%2e").body(()).unwrap();
        assert_eq!(checked(req).await, (StatusCode::OK, "/a/b/c?x=%2e".into()));
        let req = Request::get("/a%zz").body(()).unwrap();
        assert_eq!(
            checked(req).await,
            (StatusCode::IM_A_TEAPOT, "invalid path".into())
        );
        let req = Request::get("/")
            .header(header::HOST, "a")
            .header(header::HOST, "b")
            .body(())
            .unwrap();
        assert_eq!(
            checked(req).await,
            (StatusCode::IM_A_TEAPOT, "invalid host".into())
        );
    }

    #[tokio::test]
    async fn refuse_answers_with_the_reason_in_the_callers_protocol() {
        let mut req = Request::post("/pkg.Svc/M")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        req.extensions_mut().insert(Refusal(INVALID_PATH));
        let res: Response<String> = Refuse::new().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "13");
        assert_eq!(res.headers()["mesh-error"], "invalid path");
        assert_eq!(
            res.extensions().get::<ProxyErrorKind>(),
            Some(&ProxyErrorKind::InvalidRequest)
        );
    }
}
