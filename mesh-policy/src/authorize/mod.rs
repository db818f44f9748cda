//! Authorizing each HTTP request.
//!
//! [`Authorize`] checks every request against the policy in force before
//! it reaches the service inside. It answers the failures it owns itself,
//! and the connection stays open for the client's next request:
//!
//! | decision | HTTP | gRPC |
//! |---|---|---|
//! | denied | 403 | `grpc-status: 7` (`PERMISSION_DENIED`) |
//! | no route matched | 404 | `grpc-status: 5` (`NOT_FOUND`) |
//! | over the Server's rate limit | 429 | `grpc-status: 8` (`RESOURCE_EXHAUSTED`) |
//!
//! Each answer carries the mesh's error header naming the reason. A 429's
//! names the limit that refused the request and its rate, the
//! [`RateLimited`] error's text (`total rate limit
//! exceeded: 100 requests per second`), as linkerd2-proxy's
//! `l5d-proxy-error` carries its `RateLimitError`: a client, or an
//! operator reading its logs, learns which limit to ask about, where a
//! bare `rate limited` would leave them to find the policy and work out
//! which of its limits applied.
//!
//! The order is linkerd2-proxy's (`HttpPolicyService::call`, in its
//! `app/inbound/src/policy/http.rs`): authorization first, then the
//! route's filters, then the Server's rate limit (an
//! `HTTPLocalRateLimitPolicy`; see [`RateLimited`]).
//! So a request whose rule redirects it is answered with its redirect
//! without consulting the limit: it spends no share of it and is never
//! refused with 429. A redirect costs the application nothing, and a
//! client that follows it makes the request the limit is for. Only a
//! request that goes on to the service is limited.
//!
//! An allowed request goes on with two extensions: an
//! [`Authorized`] naming the Server, route
//! and authorization (and whether only audit mode let it through), and a
//! [`RouteId`], which metrics read for their labels. When the route rule
//! it matched has filters, a third, an `Arc<`[`RouteFilters`]`>`, carries
//! them to an [`ApplyFilters`](crate::ApplyFilters) inside, which applies
//! them. A request that authorization refuses (403, 404) gets its
//! refusal, never a filter's redirect; one that redirects gets its
//! redirect, never a 429.
//!
//! A request its Server's rate limit refused is answered here, before any
//! layer inside sees it, so a metrics layer inside cannot count it. An
//! embedder that counts it elsewhere (Linkerd counts it in
//! `inbound_http_errors_total`, its rate limit error not being one of the
//! policy errors it leaves out of that family) gives a hook
//! ([`AuthorizeLayer::on_rate_limited`]): it is told of each such request,
//! with the request's head, an [`Authorized`] naming the Server that
//! refused it inserted, and the answer's head. The hook is called only on
//! that refusal: an allowed request costs what it did without one.
//!
//! The client comes from the request's
//! [`ConnectionInfo`], which the mesh's server
//! inserts. A request without one is treated as an unauthenticated client
//! with no address, so a covered port denies it. The port is the one the
//! connection was accepted on, unless the layer is given one
//! ([`AuthorizeLayer::with_port`]): a sidecar whose inbound listener
//! forwards to an application port authorizes as that port.

mod future;
mod layer;

use std::task::{Context, Poll};

use http::{Request, Response, request, response};
use std::{fmt, sync::Arc};

use mesh_core::{
    ConnectionInfo, ProxyErrorKind, RouteId, error::is_grpc, labels::Authorized,
    route::RouteFilters,
};
use tower_service::Service;

pub use self::{future::ResponseFuture, layer::AuthorizeLayer};
use crate::{Client, Decision, PolicyStore, RateLimited};

/// Authorizes each request; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    store: PolicyStore,
    port: Option<u16>,
    on_rate_limited: Option<RateLimitHook>,
}

/// What [`Authorize`] tells of each request a Server's rate limit refused:
/// see [`AuthorizeLayer::on_rate_limited`]. Cloning shares the hook.
#[derive(Clone)]
pub(crate) struct RateLimitHook(Arc<HookFn>);

/// The hook's function: the refused request's head, the answer's head.
type HookFn = dyn Fn(&request::Parts, &response::Parts) + Send + Sync;

impl RateLimitHook {
    /// A hook that calls `hook` with the refused request's head and the
    /// answer's.
    pub(crate) fn new(
        hook: impl Fn(&request::Parts, &response::Parts) + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(hook))
    }

    /// Tells the hook of `req`, refused with `answer`, with `authorized`
    /// inserted in its extensions; the answer back.
    #[cold]
    #[inline(never)]
    fn tell<B, RB>(
        &self,
        req: Request<B>,
        authorized: Authorized,
        answer: Response<RB>,
    ) -> Response<RB> {
        let (mut head, _body) = req.into_parts();
        head.extensions.insert(authorized);
        let (answer, body) = answer.into_parts();
        (self.0)(&head, &answer);
        Response::from_parts(answer, body)
    }
}

impl fmt::Debug for RateLimitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RateLimitHook")
    }
}

impl<S> Authorize<S> {
    /// Authorizes requests to `inner` against the policy in `store`.
    pub fn new(inner: S, store: PolicyStore) -> Self {
        Self {
            inner,
            store,
            port: None,
            on_rate_limited: None,
        }
    }

    /// Authorizes every request as if it arrived on `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Tells `hook` of each request a Server's rate limit refused; see
    /// [`AuthorizeLayer::on_rate_limited`].
    #[must_use]
    pub fn on_rate_limited(
        mut self,
        hook: impl Fn(&request::Parts, &response::Parts) + Send + Sync + 'static,
    ) -> Self {
        self.on_rate_limited = Some(RateLimitHook::new(hook));
        self
    }
}

enum Outcome {
    Allow(Authorized, RouteId, Option<Arc<RouteFilters>>),
    Refuse(ProxyErrorKind),
    /// Answered with 429, whose `mesh-error` says which limit and rate;
    /// with the Server's [`Authorized`] when a hook is to be told.
    RateLimited(RateLimited, Option<Authorized>),
}

impl<S, B, RB> Service<Request<B>> for Authorize<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let outcome = {
            let info = req.extensions().get::<ConnectionInfo>();
            // Without a port, nothing is covered: the default policy decides.
            let port = self.port.or(info.map(|i| i.local_addr.port())).unwrap_or(0);
            let client = Client::from_connection(info);
            let policy = self.store.load();
            let decision = policy.evaluate(port, &client, &req);
            decision.record(client.tls);
            match &decision {
                Decision::Allow(allowed) => {
                    if allowed.is_audit() {
                        // At `info`, as linkerd2-proxy logs an audited
                        // request: audit mode exists to be read.
                        tracing::info!(
                            server = allowed.server(),
                            route = allowed.route(),
                            client.tls = ?client.tls,
                            client.ip = ?client.addr,
                            audit = true,
                            "request allowed by audit mode; it would be denied"
                        );
                    }
                    // A rule that redirects answers before the limit is
                    // consulted, as linkerd2-proxy applies a route's
                    // filters before its rate limit: the redirect neither
                    // spends a share nor is refused.
                    let redirects = allowed.filters().is_some_and(|f| f.redirect.is_some());
                    let checked = if redirects {
                        Ok(())
                    } else {
                        allowed.check_rate_limit(&client)
                    };
                    match checked {
                        Ok(()) => Outcome::Allow(
                            allowed.authorized(),
                            allowed.route_id(),
                            allowed.shared_filters(),
                        ),
                        Err(limited) => {
                            tracing::debug!(
                                server = allowed.server(),
                                route = allowed.route(),
                                rate_limit = allowed.rate_limit(),
                                %limited,
                                "request rate limited"
                            );
                            let authorized =
                                self.on_rate_limited.as_ref().map(|_| allowed.authorized());
                            Outcome::RateLimited(limited, authorized)
                        }
                    }
                }
                Decision::Deny(denied) => {
                    // At `info`, as linkerd2-proxy logs "Request denied":
                    // an operator tightening a policy sees whom it turns
                    // away without raising the log level.
                    tracing::info!(
                        server = denied.server(),
                        route = denied.route(),
                        policy = denied.policy(),
                        client.tls = ?client.tls,
                        client.ip = ?client.addr,
                        "request denied"
                    );
                    Outcome::Refuse(ProxyErrorKind::Denied)
                }
                Decision::NotFound(nf) => {
                    tracing::debug!(server = nf.server(), "no route matched the request");
                    Outcome::Refuse(ProxyErrorKind::NoRoute)
                }
            }
        };
        match outcome {
            Outcome::Allow(authorized, route, filters) => {
                req.extensions_mut().insert(authorized);
                req.extensions_mut().insert(route);
                if let Some(filters) = filters {
                    req.extensions_mut().insert(filters);
                }
                ResponseFuture::inner(self.inner.call(req))
            }
            Outcome::Refuse(kind) => ResponseFuture::respond(kind.response(&req)),
            Outcome::RateLimited(limited, authorized) => {
                let answer = ProxyErrorKind::RateLimited
                    .response_with_message(is_grpc(req.headers()), &limited.to_string());
                let answer = match (&self.on_rate_limited, authorized) {
                    (Some(hook), Some(authorized)) => hook.tell(req, authorized, answer),
                    _ => answer,
                };
                ResponseFuture::respond(answer)
            }
        }
    }
}
