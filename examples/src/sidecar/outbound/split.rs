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

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Request, Response, StatusCode};
use mesh_core::{ProxyErrorKind, error::is_grpc};
use tower::{Service, ServiceExt};

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

impl<S> Weighted<S> {
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

impl<S, B, RB> Service<Request<B>> for Split<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
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
                let at = fastrand::u64(0..weighted.total());
                Either::Right(Box::pin(weighted.backend(at).clone().oneshot(req)))
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
