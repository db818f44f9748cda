//! A route's traffic split: each request goes to one of the route's
//! backends, drawn at random in proportion to their weights, as an
//! `HTTPRoute` rule's weighted `backendRefs` ask.
//!
//! The split sits under the route's retries, as in Linkerd: a retry is a
//! new draw, so a request that failed on one backend may be retried on
//! another. Most routes have one backend (the service they are attached
//! to); they call it directly and draw nothing.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::Request;
use tower::{Service, ServiceExt};

/// Sends each request to one backend. See the [module docs](self).
#[derive(Debug)]
pub(crate) enum Split<S> {
    /// Every request goes to this one.
    One(S),
    /// Each request goes to one of these, by weight.
    Weighted(Arc<Weighted<S>>),
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
        }
    }
}

/// The response future of a split's drawn backend: boxed, so that the
/// response future of every other route (which retries and timeouts move
/// around several times a request) stays the size of its backend's.
type Drawn<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> Service<Request<B>> for Split<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Drawn<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::One(backend) => backend.poll_ready(cx),
            // The backend is not known until the call draws it; its clone
            // is driven to readiness there.
            Self::Weighted(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self {
            Self::One(backend) => Either::Left(backend.call(req)),
            Self::Weighted(weighted) => {
                let at = fastrand::u64(0..weighted.total());
                Either::Right(Box::pin(weighted.backend(at).clone().oneshot(req)))
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
        type Response = &'static str;
        type Error = Infallible;
        type Future = Ready<Result<&'static str, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            ready(Ok(self.0))
        }
    }

    async fn shares(split: &Split<Named>, requests: usize) -> HashMap<&'static str, usize> {
        let mut shares = HashMap::new();
        for _ in 0..requests {
            let name = split.clone().oneshot(Request::new(())).await.unwrap();
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
}
