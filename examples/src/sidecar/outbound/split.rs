//! A route's traffic split: each request goes to one of the route's
//! backends, drawn at random in proportion to their weights, as an
//! `HTTPRoute` rule's weighted `backendRefs` ask.
//!
//! The split sits under the route's retries, as in Linkerd: a retry is a
//! new draw, so a request that failed on one backend may be retried on
//! another. Most routes have one backend (the service they are attached
//! to); they call it directly and draw nothing.
//!
//! A rule whose backends all have weight 0 has nowhere to send its
//! requests: the split answers each itself, [`Split::Nowhere`]. The
//! Gateway API accepts such a rule; a `BackendRef` of weight 0 gets no
//! traffic, and the requests an `HTTPRoute` rule cannot forward get a 500
//! (`BackendRef.weight` in `apis/v1/shared_types.go`, `HTTPRouteRule.backendRefs`
//! in `apis/v1/httproute_types.go` of kubernetes-sigs/gateway-api), those
//! of a `GRPCRoute` rule `UNAVAILABLE` (`apis/v1/grpcroute_types.go`).
//!
//! A backend the route names that is not an outbound service (a route
//! applied before the service it sends to, which Kubernetes allows) keeps
//! its weight: the requests drawn to it are answered `500` (gRPC
//! `UNAVAILABLE`), and the others go on as usual. The same Gateway API
//! docs ask this of an invalid backend: the share of the requests that
//! would have gone to it gets the 500, all of them when every backend of
//! the rule is invalid; and Linkerd's proxy gives such a backend a
//! dispatcher that fails each request with an error (`Dispatch::Fail` and
//! `DispatcherFailed` of linkerd2-proxy's outbound `concrete` stacks).
//! Here it is a [`Backend::Missing`]: it fails each request with a
//! [`MissingBackend`] error rather than a response, which the route's
//! retries never retry (a retry would be a new draw, and would shrink the
//! share the Gateway API has answered 500), and [`Rescue`], over the
//! retries, turns that error into the answer. Under the retries it is
//! counted as every backend is, by the route's per-backend metrics
//! (`error="FAIL_FAST"`).
//!
//! A backend that is down should not take its share of the errors with
//! it: when a canary has no endpoint ready, its callers would get a
//! `503` for every request drawn to it, while the stable backend could
//! have served them. So a backend in fail-fast (none of its endpoints
//! ready for the fail-fast timeout, `outbound.http_failfast_timeout`,
//! see mesh-core's `queue`) is passed over: a request drawn to it is
//! drawn again among the backends that are not, by their weights, as
//! Linkerd's proxy does (`RandomAvailable` in linkerd2-proxy's
//! `linkerd/distribute`, which draws again when the backend drawn is not
//! ready). Until the timeout has passed, a request drawn to it waits for
//! an endpoint as any request to a service does (with a zero timeout, the
//! first one drawn to it fails fast, `service in fail-fast`, and puts it
//! in fail-fast at once); each runtime of the
//! sidecar has its own balancers, and learns this on its own. When
//! every backend is in fail-fast, the draw stands and the request is
//! shed: `503` with `mesh-error: service unavailable`, as Linkerd's
//! shut gate sheds it. A backend that is not an
//! outbound service is never passed over: its share is the Gateway API's
//! 500. A backend leaves fail-fast as soon as one of its endpoints is
//! ready again (endpoints resolved, or one past its failure-accrual
//! penalty, which then takes the next request drawn to it as its probe),
//! and takes its share again. A route with one backend draws nothing,
//! and its requests are answered as the service's are.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Request, Response, StatusCode};
use mesh_core::{BoxError, ProxyErrorKind, error::is_grpc};
use pin_project_lite::pin_project;
use tower::{Service, ServiceExt};

use super::Endpoint;
use super::backend::{CallerDeadline, RouteTimeouts};

/// The `mesh-error` (and `grpc-message`) of a request [`Split::Nowhere`]
/// answers.
pub(crate) const NO_WEIGHT: &str = "no backend of the route has a weight above 0";

/// Sends each request to one backend. See the [module docs](self).
#[derive(Debug)]
pub(crate) enum Split<S> {
    /// Every request goes to this one.
    One(S),
    /// Each request goes to one of these, by weight.
    Weighted(Arc<Weighted<S>>),
    /// The route has backends, all of weight 0: each request is answered
    /// [`nowhere`], and goes to no backend.
    Nowhere,
}

/// Two or more backends with a weight above zero, and where each one's
/// share ends.
#[derive(Debug)]
pub(crate) struct Weighted<S> {
    first: S,
    rest: Box<[S]>,
    /// The running sum of the weights: backend `i` (`first`, then `rest`)
    /// takes the draws below `ends[i]` that the backends before it do not.
    ends: Box<[u64]>,
}

impl<S> Split<S> {
    /// A split over `backends` and their weights. Backends of weight 0 get
    /// nothing; `None` when none is left.
    pub(crate) fn new(backends: impl IntoIterator<Item = (S, u32)>) -> Option<Self> {
        let mut total = 0;
        let (backends, ends): (Vec<S>, Vec<u64>) = backends
            .into_iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(backend, weight)| {
                total += u64::from(weight);
                (backend, total)
            })
            .unzip();
        let mut backends = backends.into_iter();
        match (backends.next(), backends.len()) {
            (None, _) => None,
            (Some(one), 0) => Some(Self::One(one)),
            (Some(first), _) => Some(Self::Weighted(Arc::new(Weighted {
                first,
                rest: backends.collect(),
                ends: ends.into(),
            }))),
        }
    }
}

/// A backend that can tell whether it is in fail-fast, for a split to
/// pass it over. See the [module docs](self).
pub(crate) trait Failfast {
    /// Whether a request sent now would be refused at once (`service
    /// unavailable`: the service is in fail-fast).
    fn in_failfast(&self) -> bool;
}

impl Failfast for Endpoint {
    fn in_failfast(&self) -> bool {
        mesh_core::proxy::Forward::in_failfast(self)
    }
}

impl<S: Failfast> Failfast for Backend<S> {
    fn in_failfast(&self) -> bool {
        match self {
            Self::Service(service) => service.in_failfast(),
            // Its share is the Gateway API's 500, never the others'.
            Self::Missing(_) => false,
        }
    }
}

impl<S: Failfast> Weighted<S> {
    /// The backend a request goes to: one drawn by weight, or, when that
    /// one is in fail-fast, one drawn by weight among those that are not,
    /// if any is.
    fn draw(&self) -> &S {
        let drawn = self.backend(fastrand::u64(0..self.total()));
        if !drawn.in_failfast() {
            return drawn;
        }
        // One pass, each backend asked once: the `i`th not in fail-fast
        // replaces the choice with the odds of its weight over the sum of
        // the weights seen so far, which leaves each chosen in
        // proportion to its weight (weighted reservoir sampling).
        let mut seen = 0;
        let mut chosen = drawn;
        for (backend, weight) in self.weighted() {
            if backend.in_failfast() {
                continue;
            }
            seen += weight;
            if fastrand::u64(0..seen) < weight {
                chosen = backend;
            }
        }
        chosen
    }
}

impl<S> Weighted<S> {
    /// The backends, each with its weight.
    fn weighted(&self) -> impl Iterator<Item = (&S, u64)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        std::iter::once(&self.first)
            .chain(self.rest.iter())
            .zip(self.ends.iter().zip(starts))
            .map(|(backend, (end, start))| (backend, end - start))
    }

    /// The backend a draw of `at`, below the total weight, lands on. (A
    /// draw past the total, which a split never makes, lands on the
    /// first.)
    fn backend(&self, at: u64) -> &S {
        match self.ends.partition_point(|&end| end <= at).checked_sub(1) {
            None => &self.first,
            Some(i) => self.rest.get(i).unwrap_or(&self.first),
        }
    }

    fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }
}

impl<S: Clone> Clone for Split<S> {
    fn clone(&self) -> Self {
        match self {
            Self::One(backend) => Self::One(backend.clone()),
            Self::Weighted(weighted) => Self::Weighted(weighted.clone()),
            Self::Nowhere => Self::Nowhere,
        }
    }
}

/// The response future of a split's drawn backend: boxed, so that the
/// response future of every other route (which retries and timeouts move
/// around several times a request) stays the size of its backend's.
type Drawn<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// The answer to a request of a route whose backends all have weight 0:
/// the mesh's own, `500` with `mesh-error: `[`NO_WEIGHT`], or to a gRPC
/// caller (`grpc`) gRPC's `UNAVAILABLE` with that `grpc-message`, as the
/// Gateway API asks of an `HTTPRoute` and a `GRPCRoute` (see the
/// [module docs](self)). It carries [`ProxyErrorKind::Unavailable`], the
/// mesh having nowhere to send the request, which metrics label it with
/// (`error="unavailable"`); its status is the Gateway API's 500, not that
/// kind's 503, which would tell a client to try again later.
pub(crate) fn nowhere<RB: Default>(grpc: bool) -> Response<RB> {
    let mut res = ProxyErrorKind::Unavailable.response_with_reason(grpc, NO_WEIGHT);
    if !grpc {
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    res
}

/// A backend of a route: an outbound service's, or one the route names
/// that is not an outbound service (see the [module docs](self)).
#[derive(Clone, Debug)]
pub(crate) enum Backend<S> {
    /// The requests go to the service.
    Service(S),
    /// Each request fails with a [`MissingBackend`].
    Missing(Missing),
}

/// A backend the route names that is not an outbound service: its name,
/// and the reason its answers give, made once when the route is planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Missing {
    name: Arc<str>,
    reason: Arc<str>,
}

impl Missing {
    /// The backend `name` (as `name.namespace`), not an outbound service.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            reason: Arc::from(format!(
                "backend service {name} is not in outbound.services"
            )),
        }
    }

    /// The backend, as `name.namespace`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The failure of a request drawn to a [`Backend::Missing`]: the route's
/// retries do not retry it, and [`Rescue`] answers it over them.
#[derive(Debug)]
pub(crate) struct MissingBackend {
    reason: Arc<str>,
    /// Whether the request was a gRPC call, to be answered as one.
    grpc: bool,
}

impl std::fmt::Display for MissingBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for MissingBackend {}

impl MissingBackend {
    /// The mesh's answer: `500` with a `mesh-error` naming the backend,
    /// or to a gRPC caller `UNAVAILABLE` with that `grpc-message`, as
    /// [`nowhere`] answers and labels its own.
    fn answer<RB: Default>(&self) -> Response<RB> {
        let mut res = ProxyErrorKind::Unavailable.response_with_message(self.grpc, &self.reason);
        if !self.grpc {
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        res
    }
}

impl<S, B, RB> Service<Request<B>> for Backend<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: From<MissingBackend>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, std::future::Ready<Result<Response<RB>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::Service(service) => service.poll_ready(cx),
            Self::Missing(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self {
            Self::Service(service) => Either::Left(service.call(req)),
            Self::Missing(missing) => {
                let error = MissingBackend {
                    reason: missing.reason.clone(),
                    grpc: is_grpc(req.headers()),
                };
                Either::Right(std::future::ready(Err(error.into())))
            }
        }
    }
}

/// Answers, over the route's retries, a request whose backend was
/// [`Backend::Missing`]: the [`MissingBackend`] error they passed on
/// becomes the mesh's answer. Any other error is passed on as it is.
///
/// It sits right under the route's filters, where the request is as the
/// route's timeouts read it, so it also puts the deadline the request
/// carries there on the mesh's timeout answer ([`CallerDeadline`]), for
/// the route's counter over the filters to label the answer by the
/// deadline that ended it. Only a route with a per-try timeout reads the
/// header ([`of_route`](Self::of_route)): elsewhere the label does not
/// depend on it, and no request pays its lookup.
#[derive(Clone, Debug)]
pub(crate) struct Rescue<S> {
    inner: S,
    caller_deadline: bool,
}

impl<S> Rescue<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            caller_deadline: false,
        }
    }

    /// Reads the caller's deadline for a timeout answer when the route's
    /// `timeouts` make its label depend on it.
    pub(crate) fn of_route(mut self, timeouts: RouteTimeouts) -> Self {
        self.caller_deadline = timeouts.labels_by_caller();
        self
    }
}

impl<S, B, RB> Service<Request<B>> for Rescue<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Rescued<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let deadline = if self.caller_deadline {
            CallerDeadline::of(&req)
        } else {
            None
        };
        Rescued {
            inner: self.inner.call(req),
            deadline,
        }
    }
}

pin_project! {
    /// The response future of [`Rescue`].
    #[derive(Debug)]
    pub(crate) struct Rescued<F> {
        #[pin]
        inner: F,
        // The deadline the request carried, for a timeout answer.
        deadline: Option<CallerDeadline>,
    }
}

impl<F, RB> Future for Rescued<F>
where
    F: Future<Output = Result<Response<RB>, BoxError>>,
    RB: Default,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(match error.downcast::<MissingBackend>() {
                Ok(missing) => Ok(missing.answer()),
                Err(error) => Err(error),
            }),
            Poll::Ready(Ok(mut res)) => {
                if let Some(deadline) = *this.deadline
                    && res.extensions().get() == Some(&ProxyErrorKind::Timeout)
                {
                    res.extensions_mut().insert(deadline);
                }
                Poll::Ready(Ok(res))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, B, RB> Service<Request<B>> for Split<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Failfast + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<S::Future, Drawn<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::One(backend) => backend.poll_ready(cx),
            // The backend is not known until the call draws it; its clone
            // is driven to readiness there.
            Self::Weighted(_) | Self::Nowhere => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self {
            Self::One(backend) => Either::Left(backend.call(req)),
            Self::Weighted(weighted) => {
                Either::Right(Box::pin(weighted.draw().clone().oneshot(req)))
            }
            Self::Nowhere => {
                let res = nowhere(is_grpc(req.headers()));
                Either::Right(Box::pin(std::future::ready(Ok(res))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        convert::Infallible,
        future::{Ready, ready},
    };

    use super::*;

    /// A backend that answers with its name.
    #[derive(Clone, Debug)]
    struct Named(&'static str);

    impl Service<Request<()>> for Named {
        type Response = Response<&'static str>;
        type Error = Infallible;
        type Future = Ready<Result<Response<&'static str>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            ready(Ok(Response::new(self.0)))
        }
    }

    impl Failfast for Named {
        fn in_failfast(&self) -> bool {
            false
        }
    }

    async fn shares(split: &Split<Named>, requests: usize) -> HashMap<&'static str, usize> {
        let mut shares = HashMap::new();
        for _ in 0..requests {
            let name = split
                .clone()
                .oneshot(Request::new(()))
                .await
                .unwrap()
                .into_body();
            *shares.entry(name).or_default() += 1;
        }
        shares
    }

    #[test]
    fn each_draw_lands_on_the_backend_whose_share_holds_it() {
        let Some(Split::Weighted(weighted)) =
            Split::new([(Named("a"), 1), (Named("none"), 0), (Named("b"), 3)])
        else {
            panic!("two backends of weight above 0 are a weighted split");
        };
        let at = |draw| weighted.backend(draw).0;
        assert_eq!(weighted.total(), 4);
        assert_eq!([at(0), at(1), at(2), at(3)], ["a", "b", "b", "b"]);
    }

    #[tokio::test]
    async fn requests_are_shared_in_proportion_to_the_weights() {
        let split = Split::new([(Named("stable"), 90), (Named("canary"), 10)]).unwrap();
        let shares = shares(&split, 4_000).await;
        // 400 expected, with a standard deviation of 19: this band is
        // more than seven of them wide on each side.
        let canary = shares.get("canary").copied().unwrap_or(0);
        assert!((260..=540).contains(&canary), "{shares:?}");
        assert_eq!(shares.values().sum::<usize>(), 4_000);
    }

    #[tokio::test]
    async fn a_single_backend_or_none_draws_nothing() {
        let split = Split::new([(Named("only"), 5), (Named("drained"), 0)]).unwrap();
        assert!(matches!(split, Split::One(Named("only"))));
        assert_eq!(shares(&split, 10).await.get("only"), Some(&10));
        assert!(Split::new([(Named("drained"), 0)]).is_none());
        assert!(Split::<Named>::new([]).is_none());
    }

    /// A backend that answers with its name, in fail-fast if `down`.
    #[derive(Clone, Debug)]
    struct Flagged(&'static str, bool);

    impl Service<Request<()>> for Flagged {
        type Response = Response<&'static str>;
        type Error = Infallible;
        type Future = Ready<Result<Response<&'static str>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            ready(Ok(Response::new(self.0)))
        }
    }

    impl Failfast for Flagged {
        fn in_failfast(&self) -> bool {
            self.1
        }
    }

    #[tokio::test]
    async fn a_backend_in_failfast_is_passed_over_unless_all_are() {
        let split = Split::new([
            (Flagged("down", true), 3),
            (Flagged("a", false), 1),
            (Flagged("b", false), 3),
            (Flagged("also-down", true), 1),
        ])
        .unwrap();
        let mut shares = HashMap::new();
        for _ in 0..4_000 {
            let res = split.clone().oneshot(Request::new(())).await.unwrap();
            *shares.entry(res.into_body()).or_insert(0_usize) += 1;
        }
        // The weights of those up are kept: 1000 of `a` expected, with a
        // standard deviation of 27.
        let a = shares.get("a").copied().unwrap_or(0);
        assert!((800..=1_200).contains(&a), "{shares:?}");
        assert_eq!(
            a + shares.get("b").copied().unwrap_or(0),
            4_000,
            "{shares:?}"
        );

        let all_down =
            Split::new([(Flagged("down", true), 1), (Flagged("also-down", true), 1)]).unwrap();
        let mut shares = HashMap::new();
        for _ in 0..400 {
            let res = all_down.clone().oneshot(Request::new(())).await.unwrap();
            *shares.entry(res.into_body()).or_insert(0_usize) += 1;
        }
        // 200 of each expected, with a standard deviation of 10.
        let down = shares.get("down").copied().unwrap_or(0);
        assert!((140..=260).contains(&down), "{shares:?}");
    }

    #[tokio::test]
    async fn a_missing_backend_is_never_passed_over() {
        let split = Split::new([(Backend::Service(Up), 1), (missing(), 1)]).unwrap();
        let Split::Weighted(weighted) = &split else {
            panic!("two backends are a weighted split");
        };
        assert!(
            !weighted
                .weighted()
                .any(|(backend, _)| backend.in_failfast())
        );
    }

    /// A backend that answers `up`, or fails a request for `/fail`.
    #[derive(Clone, Debug)]
    struct Up;

    impl Service<Request<()>> for Up {
        type Response = Response<&'static str>;
        type Error = BoxError;
        type Future = Ready<Result<Response<&'static str>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<()>) -> Self::Future {
            ready(match req.uri().path() {
                "/fail" => Err("failed".into()),
                _ => Ok(Response::new("up")),
            })
        }
    }

    impl Failfast for Up {
        fn in_failfast(&self) -> bool {
            false
        }
    }

    const REASON: &str = "backend service emoji-v3.emojivoto is not in outbound.services";

    fn missing() -> Backend<Up> {
        Backend::Missing(Missing::new("emoji-v3.emojivoto"))
    }

    fn grpc_call() -> Request<()> {
        Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn a_missing_backend_fails_each_request_and_rescue_answers_it() {
        let error = missing().oneshot(Request::new(())).await.unwrap_err();
        assert!(error.is::<MissingBackend>(), "{error}");
        assert_eq!(error.to_string(), REASON);

        let res = Rescue::new(missing())
            .oneshot(Request::new(()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["mesh-error"], REASON);
        assert_eq!(res.extensions().get(), Some(&ProxyErrorKind::Unavailable));
        assert_eq!(res.into_body(), "");

        let res = Rescue::new(missing()).oneshot(grpc_call()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], REASON);
    }

    #[tokio::test]
    async fn rescue_passes_other_answers_and_errors_on() {
        let up = Rescue::new(Backend::Service(Up));
        let res = up.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.into_body(), "up");
        let fail = Request::get("/fail").body(()).unwrap();
        let error = up.oneshot(fail).await.unwrap_err();
        assert_eq!(error.to_string(), "failed");
    }

    /// The caller's deadline goes on the mesh's timeout answer only on a
    /// route whose label depends on it (one with a per-try timeout), and
    /// never on another answer.
    #[tokio::test]
    async fn rescue_reads_the_callers_deadline_only_where_it_labels_the_answer() {
        use std::time::Duration;

        use mesh_retry::Timeouts;
        use tower::service_fn;

        let timed_out = |req: Request<()>| {
            ready(Ok::<_, BoxError>(match req.uri().path() {
                "/upstream-504" => {
                    let mut res = Response::new(String::new());
                    *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                    res
                }
                "/ok" => Response::new(String::new()),
                _ => ProxyErrorKind::Timeout.response_for(false),
            }))
        };
        let with_deadline = |path: &str| {
            Request::get(path)
                .header("mesh-deadline", "1500")
                .body(())
                .unwrap()
        };
        let per_try = RouteTimeouts::new(&Timeouts {
            per_try: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        });
        let request_only = RouteTimeouts::new(&Timeouts {
            request: Some(Duration::from_secs(1)),
            ..Timeouts::default()
        });
        let deadline_of =
            |res: &Response<String>| res.extensions().get::<CallerDeadline>().copied();

        let res = Rescue::new(service_fn(timed_out))
            .of_route(per_try)
            .oneshot(with_deadline("/timeout"))
            .await
            .unwrap();
        assert!(deadline_of(&res).is_some(), "{res:?}");
        for path in ["/upstream-504", "/ok"] {
            let res = Rescue::new(service_fn(timed_out))
                .of_route(per_try)
                .oneshot(with_deadline(path))
                .await
                .unwrap();
            assert_eq!(deadline_of(&res), None, "{path}");
        }
        for rescue in [
            Rescue::new(service_fn(timed_out)),
            Rescue::new(service_fn(timed_out)).of_route(request_only),
        ] {
            let res = rescue.oneshot(with_deadline("/timeout")).await.unwrap();
            assert_eq!(res.extensions().get(), Some(&ProxyErrorKind::Timeout));
            assert_eq!(deadline_of(&res), None);
        }
    }

    #[tokio::test]
    async fn a_missing_backend_keeps_its_share_of_a_split() {
        let split = Split::new([(Backend::Service(Up), 1), (missing(), 1)]).unwrap();
        let mut answers = HashMap::new();
        for _ in 0..400 {
            let res = Rescue::new(split.clone())
                .oneshot(Request::new(()))
                .await
                .unwrap();
            *answers.entry(res.status().as_u16()).or_insert(0) += 1;
        }
        // 200 of each expected, with a standard deviation of 10.
        let failed = answers.get(&500).copied().unwrap_or(0);
        assert!((140..=260).contains(&failed), "{answers:?}");
        assert_eq!(answers.values().sum::<usize>(), 400, "{answers:?}");
        // A split of the missing backend alone answers every request.
        let alone = Split::new([(missing(), 3)]).unwrap();
        for _ in 0..10 {
            let res = Rescue::new(alone.clone())
                .oneshot(Request::new(()))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
    }

    #[tokio::test]
    async fn nowhere_answers_every_request_itself() {
        let split = Split::<Named>::Nowhere;
        let res = split.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["mesh-error"], NO_WEIGHT);
        assert_eq!(res.extensions().get(), Some(&ProxyErrorKind::Unavailable));
        assert_eq!(res.into_body(), "");
        let grpc = Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let res = split.oneshot(grpc).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert_eq!(res.headers()["grpc-message"], NO_WEIGHT);
    }
}
