//! Outbound route lookup: which service a request is for (by authority),
//! and which of its routes (by the route's matches).

use std::{
    collections::HashMap,
    future::{Ready, ready},
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use futures_util::future::Either;
use http::{HeaderValue, Request, Response, Version, header};
use mesh_core::{
    ProxyErrorKind, RouteId, error::is_grpc, labels::DstService, proxy::by_host, route::RouteMatch,
};
use mesh_retry::config::{HostRank, RouteHosts, request_host};
use tower::{Service, ServiceExt, util::Oneshot};

use super::dst_override::{DstOverride, dst_override, strip};
use crate::sidecar::inbound::strip_connection_listed;

/// One route of a service: the requests it matches (its route's
/// `hostnames`, and its matches), its name, and the stack its requests go
/// through (timeouts, retries, the endpoints).
#[derive(Debug)]
pub(crate) struct Route<S> {
    pub(crate) id: RouteId,
    /// The `hostnames` of the `HTTPRoute` or `GRPCRoute` the route is a
    /// rule of; any host for the others.
    pub(crate) hosts: RouteHosts,
    pub(crate) matches: Box<[RouteMatch]>,
    pub(crate) service: S,
}

/// A service's routes, tried in order, and the route of requests none of
/// them matches, if it has one. The order is the plan's: the `GRPCRoute`
/// precedence among the matches of the service's `GRPCRoute`s, or, for a
/// service without any, the Gateway API's precedence among those of its
/// `HTTPRoute`s (never the two together: a service with both is served
/// its `GRPCRoute`s, as Linkerd serves it); or, for a service whose
/// ServiceProfile has routes or `dstOverrides`, the profile's routes as
/// written, alone (see `plan::ServicePlan`).
///
/// A route's `hostnames` come before that order, as in Linkerd's proxy,
/// which matches each outbound route's hostnames against the request's
/// host before its rules: a route whose hostnames do not match the host
/// (the URI's, else the `Host` header's) does not take the request, and of
/// the routes with a match that fits, one whose hostname matches exactly
/// outranks a wildcard, which outranks a route that names none
/// ([`HostRank`]); the order above decides between routes that rank
/// alike. A lookup takes that route, else the fallback; a service without
/// one (served its `HTTPRoute`s or `GRPCRoute`s alone) has the router
/// answer the request with its `not_found`, as Linkerd answers it. A
/// service none of whose routes names hostnames is looked up as before:
/// the first route with a match that fits, without reading the host.
#[derive(Debug)]
pub(crate) struct ServiceRoutes<S> {
    pub(crate) dst: DstService,
    pub(crate) routes: Box<[Route<S>]>,
    pub(crate) fallback: Option<Route<S>>,
    /// Whether any of `routes` names hostnames: worked out once, so that
    /// a service without any pays nothing for them per request.
    hosted: bool,
}

impl<S> ServiceRoutes<S> {
    pub(crate) fn new(
        dst: DstService,
        routes: Box<[Route<S>]>,
        fallback: Option<Route<S>>,
    ) -> Self {
        let hosted = routes.iter().any(|route| !route.hosts.is_any());
        Self {
            dst,
            routes,
            fallback,
            hosted,
        }
    }

    /// The route `req` takes: see the type's docs.
    pub(super) fn route<B>(&self, req: &Request<B>) -> Option<&Route<S>> {
        let fits = |route: &Route<S>| route.matches.iter().any(|m| m.matches_request(req));
        if !self.hosted {
            return self
                .routes
                .iter()
                .find(|route| fits(route))
                .or(self.fallback.as_ref());
        }
        let host = request_host(req.uri(), req.headers());
        let mut best: Option<(HostRank, &Route<S>)> = None;
        for route in &self.routes {
            let Some(rank) = route.hosts.rank_host(host) else {
                continue;
            };
            // The first in order wins among routes that rank alike.
            if best.is_none_or(|(ranked, _)| rank > ranked) && fits(route) {
                best = Some((rank, route));
            }
        }
        best.map(|(_, route)| route).or(self.fallback.as_ref())
    }
}

/// Routes each request to a service by its authority (the `:authority` of
/// HTTP/2, the `Host` header of HTTP/1 unless its target is in absolute
/// form; port ignored, case-insensitive), then to the first of the
/// service's routes that matches it. An HTTP/2 request's `Host` is made
/// to agree with the `:authority` it was routed by; a request with two
/// `Host` headers, or userinfo in its `Host` or target, goes to
/// `not_found`, which
/// answers it `400` ([`InvalidHost`]). The request
/// goes on with [`DstService`] and [`RouteId`] extensions, which retry
/// and metrics read for their labels. A request for an unknown authority
/// goes to `not_found` (a [`NoRoute`], under metrics, so that it is
/// counted too), as does one that no route of a service without a
/// fallback matches, with the service's [`DstService`]: the mesh's 404
/// (gRPC `NOT_FOUND`) that Linkerd's proxy gives a request none of a
/// service's `HTTPRoute`s or `GRPCRoute`s matches, and that the Gateway
/// API requires.
///
/// In ingress mode ([`OutboundRouter::with_ingress_mode`]) a request's
/// destination override ([`dst_override`](super::dst_override)), when it
/// has one, names its service in place of its authority; one that names
/// no service, or two that disagree, go to `not_found` like an unknown
/// authority. Outside ingress mode the override is not read. Either way
/// it is removed from the request before the service's routes see it, as
/// are the headers the request's `Connection` names, which belong to the
/// application's hop: dropped there, and not as the request leaves, they
/// cannot take along a header the route sets.
///
/// Everything is resolved when the table is built: a lookup is one hash of
/// the host and one pass over the service's route matches.
#[derive(Debug)]
pub(crate) struct OutboundRouter<S, N> {
    table: RouteTable<S>,
    not_found: N,
    ingress_mode: bool,
}

impl<S, N: Clone> Clone for OutboundRouter<S, N> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            not_found: self.not_found.clone(),
            ingress_mode: self.ingress_mode,
        }
    }
}

impl<S, N> OutboundRouter<S, N> {
    /// A router over the services of `table`, which it reads afresh for
    /// each request, by authority.
    pub(crate) fn new(table: RouteTable<S>, not_found: N) -> Self {
        Self {
            table,
            not_found,
            ingress_mode: false,
        }
    }

    /// Routes by the destination override first, when `on`: the sidecar
    /// of an ingress controller. Default off.
    #[must_use]
    pub(crate) fn with_ingress_mode(mut self, on: bool) -> Self {
        self.ingress_mode = on;
        self
    }
}

/// The entry of `services` whose key is `host` (without port or
/// trailing dot), in any case; the keys are lowercase.
fn by_name<'m, V>(services: &'m HashMap<Box<str>, V>, host: &str) -> Option<&'m V> {
    match services.get(host) {
        Some(value) => Some(value),
        None if host.bytes().any(|b| b.is_ascii_uppercase()) => {
            services.get(host.to_ascii_lowercase().as_str())
        }
        None => None,
    }
}

/// The services a router looks requests up in, by host. Shared between
/// the routers of one runtime and the task that replaces the services
/// when the routes are reloaded: a request reads whichever set is in
/// force when it arrives, without a lock.
#[derive(Debug)]
pub(crate) struct RouteTable<S>(Arc<ArcSwap<Services<S>>>);

type Services<S> = HashMap<Box<str>, ServiceRoutes<S>>;

impl<S> Clone for RouteTable<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S> RouteTable<S> {
    /// A table of `(host, routes)` pairs; hosts are lowercased here.
    pub(crate) fn new(services: impl IntoIterator<Item = (String, ServiceRoutes<S>)>) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(lowercased(services))))
    }

    /// Puts `services` in force for the requests that follow.
    pub(crate) fn replace(&self, services: impl IntoIterator<Item = (String, ServiceRoutes<S>)>) {
        self.0.store(Arc::new(lowercased(services)));
    }
}

fn lowercased<S>(services: impl IntoIterator<Item = (String, ServiceRoutes<S>)>) -> Services<S> {
    services
        .into_iter()
        .map(|(host, routes)| (host.to_ascii_lowercase().into_boxed_str(), routes))
        .collect()
}

/// Makes an HTTP/2 request's `Host`, when it has one, say what its
/// `:authority` says. The request was routed by its `:authority`, and
/// `Forward` keeps an HTTP/2 request's `Host` (between two sidecars it
/// names what the application asked for, and the `:authority` the
/// endpoint); left as the application wrote it, a `Host` naming another
/// service would reach this one, which would serve, and authorize, a host
/// the route was not chosen for. RFC 9113 §8.3.1 has an intermediary make
/// `Host` from `:authority`. (An HTTP/1 request in absolute form gets the
/// same from `Forward`.)
pub(super) fn host_from_authority<B>(req: &mut Request<B>) {
    if req.version() != Version::HTTP_2 {
        return;
    }
    let Some(authority) = req.uri().authority() else {
        return;
    };
    let host = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    let agrees = match req.headers().get(header::HOST) {
        None => return,
        Some(value) => value.as_bytes() == host.as_bytes(),
    };
    if !agrees && let Ok(value) = HeaderValue::from_str(host) {
        req.headers_mut().insert(header::HOST, value);
    }
}

/// Marks a request whose `Host` headers name no one authority: two of
/// them, or one with userinfo; or whose target (HTTP/1's absolute form,
/// HTTP/2's `:authority`) has userinfo, which RFC 9110 §4.2.4 has a
/// recipient treat as an error (it is a way to disguise the host a
/// request is for) and RFC 9113 §8.3.1 forbids in `:authority`. The
/// router routes it nowhere and
/// [`NoRoute`] answers it `400 Bad Request` (`mesh-error: invalid
/// host`; gRPC's `INTERNAL` to a gRPC caller), as RFC 9112 §3.2 has a
/// server do: the service would be sent a request routed by the first
/// `Host` whose application might read another.
#[derive(Clone, Copy, Debug)]
struct InvalidHost;

/// Whether `headers` hold more than one `Host`, or one with userinfo, or
/// the target `uri` has userinfo. One lookup and a scan of each value; a
/// `Host` that is otherwise not an authority names no service, and gets
/// the 404 of an unknown one.
fn names_no_one_host(uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return true;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.as_bytes().contains(&b'@'),
        (Some(_), Some(_)) => true,
        (None, _) => false,
    }
}

/// The answer to a request marked [`InvalidHost`]: `400` with
/// `mesh-error: invalid host`, or to a gRPC caller (`grpc`) gRPC's
/// `INTERNAL` with that `grpc-message`, as the inbound side answers it;
/// a gRPC library reads the status, and an HTTP 400 reaches it only as
/// "unexpected HTTP status". The response carries the
/// [`ProxyErrorKind::InvalidRequest`] that metrics label it with
/// (`error="invalid_request"`).
fn invalid_host<RB: Default>(grpc: bool) -> Response<RB> {
    ProxyErrorKind::InvalidRequest.response_with_reason(grpc, "invalid host")
}

/// Marks a request whose authority names no service, outside ingress
/// mode's destination override: the requests [egress](super::egress)
/// may send out of the mesh. One whose override names no service, or
/// none of whose service's routes matches, is not one: those keep the
/// mesh's 404.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnknownAuthority;

/// The answer [`NoRoute`] gives a request that carries it, in place of
/// its 404: the mesh's own answer of `kind`, with `reason` in
/// `mesh-error` (and `grpc-message`). [Egress](super::egress) refuses a
/// request so, under the metrics that count it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MeshAnswer {
    pub(crate) kind: ProxyErrorKind,
    pub(crate) reason: &'static str,
}

/// Answers every request with the mesh's 404 (`mesh-error: no route`),
/// or gRPC `NOT_FOUND`; one marked [`InvalidHost`] with a 400, or gRPC
/// `INTERNAL`; one that carries a [`MeshAnswer`] with that answer.
#[derive(Debug)]
pub(crate) struct NoRoute<RB, E> {
    _marker: PhantomData<fn() -> (RB, E)>,
}

impl<RB, E> NoRoute<RB, E> {
    pub(crate) fn new() -> Self {
        Self {
            _marker: PhantomData,
        }
    }
}

impl<RB, E> Clone for NoRoute<RB, E> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<B, RB: Default, E> Service<Request<B>> for NoRoute<RB, E> {
    type Response = Response<RB>;
    type Error = E;
    type Future = Ready<Result<Response<RB>, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.extensions().get::<InvalidHost>().is_some() {
            return ready(Ok(invalid_host(is_grpc(req.headers()))));
        }
        if let Some(answer) = req.extensions().get::<MeshAnswer>() {
            let grpc = is_grpc(req.headers());
            return ready(Ok(answer.kind.response_with_reason(grpc, answer.reason)));
        }
        ready(Ok(ProxyErrorKind::NoRoute.response(&req)))
    }
}

impl<S, N, B, RB> Service<Request<B>> for OutboundRouter<S, N>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    N: Service<Request<B>, Response = Response<RB>, Error = S::Error> + Clone,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<Oneshot<S, Request<B>>, Oneshot<N, Request<B>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each route's stack is driven to readiness in its own call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if names_no_one_host(req.uri(), req.headers()) {
            tracing::debug!("userinfo in the target or Host, or a repeated Host");
            req.extensions_mut().insert(InvalidHost);
            return Either::Right(self.not_found.clone().oneshot(req));
        }
        let services = self.table.0.load();
        let over = if self.ingress_mode {
            dst_override(req.headers())
        } else {
            DstOverride::Absent
        };
        let by_authority = over == DstOverride::Absent;
        let found = match over {
            DstOverride::Absent => by_host(&**services, &req),
            DstOverride::Host(host) => {
                let found = by_name(&services, host);
                if found.is_none() {
                    tracing::debug!(host, "no service for the destination override");
                }
                found
            }
            DstOverride::Conflict => {
                tracing::debug!("destination overrides that name no one service");
                None
            }
        };
        let Some(service) = found else {
            tracing::debug!(uri = %req.uri(), "no service for the request");
            if by_authority {
                req.extensions_mut().insert(UnknownAuthority);
            }
            return Either::Right(self.not_found.clone().oneshot(req));
        };
        strip(req.headers_mut());
        host_from_authority(&mut req);
        // Before the route's filters can add a header the application
        // named in `Connection`, which `Forward` would then drop.
        strip_connection_listed(req.headers_mut());
        let Some(route) = service.route(&req) else {
            tracing::debug!(uri = %req.uri(), "no route of the service matches the request");
            let dst = service.dst.clone();
            drop(services);
            req.extensions_mut().insert(dst);
            return Either::Right(self.not_found.clone().oneshot(req));
        };
        let stack = route.service.clone();
        let (dst, id) = (service.dst.clone(), route.id.clone());
        drop(services);
        let extensions = req.extensions_mut();
        extensions.insert(dst);
        extensions.insert(id);
        Either::Left(stack.oneshot(req))
    }
}

#[cfg(test)]
mod tests;
