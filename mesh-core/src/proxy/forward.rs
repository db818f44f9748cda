use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{
    HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header,
    uri::{self, Authority},
};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::capture_connection;
use tower::Service;

use super::{
    accrual::FailureAccrual,
    balance::{Balancer, BalancerView, ConnectBackoff, Pending, Picked},
    endpoints::{
        EndpointSet,
        clients::{Bound, Clients},
    },
    headers,
    queue::{IN_FAILFAST, Place, Queue, Refused, Woken},
    upgrade,
};
use crate::{
    body::Proxied,
    client::{ForEndpoint, requested_authority},
    error::{
        BoxError, MESH_ERROR, ProxyErrorKind, UPSTREAM_FAILED, Unprocessed, UpstreamCause, is_grpc,
        is_unprocessed,
    },
    serve::lease::Lease,
};

/// Forwards requests to a set of endpoints through a client `C`, each to
/// the cheaper of two drawn at random by peak-EWMA latency (see
/// [`balance`](super::balance)). The set is fixed, or an [`EndpointSet`]
/// that changes while it runs. See the [module docs](super).
///
/// Each endpoint gets a client of its own, made from `C` when it joins
/// ([`ForEndpoint`]): the connection goes to the endpoint picked, and the
/// request keeps the authority it was sent for, which HTTP/2 sends as
/// `:authority` (see the [client docs](crate::client)).
///
/// An endpoint that cannot be reached is worth an operator's attention
/// at the default log level, but a line per request would bury the logs
/// under one outage. So the first connection to an endpoint that cannot
/// be made (refused, timed out, a TLS handshake that failed) since it
/// last answered, or since it joined, is logged at `warn`, with the
/// endpoint and the whole chain of causes (`upstream request failed`);
/// the rest of that streak, and every failure after a connection was
/// made, at `debug`. A response from it ends the streak, and the next
/// failed connect warns again. Linkerd's proxy warns of a failed connect
/// too (linkerd2-proxy `linkerd/reconnect`: `Failed to connect`), once
/// per attempt its backoff spaces out; here a request to a plain HTTP/1
/// endpoint may attempt one each, so the streak is what spaces the
/// warnings. The state is a flag on the endpoint, which a response only
/// reads unless it was set.
///
/// A request sent as HTTP/2 whose connect fails takes its endpoint out
/// for a backoff, as Linkerd's proxy reconnects an HTTP/2 endpoint: the
/// request is answered `502`, and no other is sent there until the
/// backoff ends and a request's connect succeeds (see
/// [`reconnect`](super::balance::reconnect)). Sent as HTTP/2 is what the
/// endpoint's client says ([`ForEndpoint::sends_http2`]): natively, an
/// HTTP/1.1 request already upgraded by [`orig_proto`](super::orig_proto)
/// when it reaches this service, or one the client upgrades itself.
#[derive(Debug)]
pub struct Forward<C> {
    /// Polled for readiness, and made into the clients of endpoints.
    client: C,
    endpoints: Bound<C>,
}

impl<C: Clone> Clone for Forward<C> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            endpoints: self.endpoints.clone(),
        }
    }
}

/// [`Forward`] was given no endpoint to forward to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoEndpoints;

impl std::fmt::Display for NoEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no endpoints to forward to")
    }
}

impl std::error::Error for NoEndpoints {}

impl<C: ForEndpoint + Clone> Forward<C> {
    /// Forwards to the fixed `endpoints` through clients made from
    /// `client`, balancing between them.
    ///
    /// # Errors
    ///
    /// [`NoEndpoints`] when `endpoints` is empty.
    pub fn new(
        client: C,
        endpoints: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Self, NoEndpoints> {
        let balancer = Arc::new(Balancer::non_empty(endpoints)?);
        Ok(Self {
            endpoints: Bound::Fixed(Arc::new(Clients::new(balancer, &client))),
            client,
        })
    }

    /// Forwards to whatever `endpoints` holds at each request, through
    /// clients made from `client` as endpoints join. While the set is
    /// [empty](EndpointSet::empty), requests wait for endpoints, then
    /// fail fast with a `503` (see [`queue`](super::queue)).
    pub fn with_endpoints(client: C, endpoints: &EndpointSet) -> Self {
        Self {
            endpoints: Bound::shared(endpoints, &client),
            client,
        }
    }

    /// Takes endpoints whose responses keep failing out for a while, as
    /// `accrual` says (see [`accrual`](super::accrual)). Off by default.
    ///
    /// The endpoints start fresh, and are fixed from then on: a `Forward`
    /// over an [`EndpointSet`] should have its set built with
    /// [`EndpointSet::with_failure_accrual`] instead.
    #[must_use]
    pub fn with_failure_accrual(mut self, accrual: FailureAccrual) -> Self {
        let balancer = Arc::new(self.endpoints.peek().with_accrual(Some(accrual)));
        self.endpoints = Bound::Fixed(Arc::new(Clients::new(balancer, &self.client)));
        self
    }
}

impl<C: ForEndpoint + Clone> Forward<C> {
    /// Backs off an endpoint whose HTTP/2 connect failed as `backoff`
    /// says, rather than Linkerd's 100 ms doubling to 60 s (see
    /// [`reconnect`](super::balance::reconnect)).
    ///
    /// As [`with_failure_accrual`](Self::with_failure_accrual), the
    /// endpoints start fresh and are fixed from then on: a `Forward` over
    /// an [`EndpointSet`] should have its set built with
    /// [`EndpointSet::with_connect_backoff`] instead.
    #[must_use]
    pub fn with_connect_backoff(mut self, backoff: ConnectBackoff) -> Self {
        let balancer = Arc::new(self.endpoints.peek().with_connect_backoff(backoff));
        self.endpoints = Bound::Fixed(Arc::new(Clients::new(balancer, &self.client)));
        self
    }

    /// Has requests that find no endpoint ready wait for one as `queue`
    /// says (see [`queue`](super::queue)); Linkerd's defaults otherwise.
    ///
    /// As [`with_failure_accrual`](Self::with_failure_accrual), the
    /// endpoints start fresh and are fixed from then on: a `Forward` over
    /// an [`EndpointSet`] should have its set built with
    /// [`EndpointSet::with_queue`] instead.
    #[must_use]
    pub fn with_queue(mut self, queue: Queue) -> Self {
        let balancer = Arc::new(self.endpoints.peek().with_queue(queue));
        self.endpoints = Bound::Fixed(Arc::new(Clients::new(balancer, &self.client)));
        self
    }
}

impl<C> Forward<C> {
    /// A view of the fixed endpoints' states for metrics, read when asked
    /// ([`EndpointGauges`](super::balance::EndpointGauges)); requests pay
    /// nothing for it. Take it after
    /// [`with_failure_accrual`](Self::with_failure_accrual) and
    /// [`with_queue`](Self::with_queue), which replace the balancer: a
    /// view taken before either watches the one replaced, which reads
    /// `None` once nothing balances over it, and gauges stop reporting
    /// its endpoints.
    ///
    /// `None` for a `Forward` over an [`EndpointSet`]: the set's own
    /// [`view`](EndpointSet::view) follows its updates.
    pub fn balancer_view(&self) -> Option<BalancerView> {
        match &self.endpoints {
            Bound::Fixed(clients) => Some(BalancerView::fixed(&clients.balancer)),
            Bound::Shared { .. } => None,
        }
    }

    /// Whether a request sent now would be shed at once, the service
    /// being in fail-fast (see [`queue`](super::queue)): no endpoint has
    /// been ready for the fail-fast timeout, and none is ready now.
    ///
    /// A traffic split asks this to send a backend's share to the others
    /// while it is down, as Linkerd's `RandomAvailable` skips a backend
    /// that is not ready. Its price on the request path is an atomic load
    /// of the service's fail-fast flag (and, for a shared endpoint set,
    /// one of its latest balancer), with no lock and no allocation; only
    /// in fail-fast are the endpoints' penalties and connect backoffs read
    /// as well. That is because fail-fast ends when a request takes the
    /// probe of an endpoint past its penalty, or a request's connect to
    /// one past its backoff succeeds: a `Forward` in fail-fast with such
    /// an endpoint reads `false`, so that a split still sends it a
    /// request, which may end fail-fast, rather than skipping it for
    /// ever. A connect that fails again backs the endpoint off for
    /// longer, so a split sends a dead backend fewer and fewer.
    pub fn in_failfast(&self) -> bool {
        let in_failfast =
            |balancer: &Balancer| balancer.gate().in_failfast() && !balancer.any_ready();
        match &self.endpoints {
            Bound::Fixed(clients) => in_failfast(&clients.balancer),
            // The gate is the set's, shared by its balancers: the latest
            // one tells, one atomic load away.
            Bound::Shared { set, .. } => in_failfast(&set.arc_swap().load()),
        }
    }
}

impl<C, B, RB> Service<Request<B>> for Forward<C>
where
    C: Service<Request<B>, Response = Response<RB>> + ForEndpoint + Clone,
    C::Error: Into<BoxError>,
{
    type Response = Response<Proxied<ResponseBody<RB>>>;
    type Error = BoxError;
    type Future = ResponseFuture<C::Future, C, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let grpc = is_grpc(req.headers());
        if req.method() == Method::CONNECT {
            tracing::debug!(target = %req.uri(), "refusing CONNECT: no tunnel is set up here");
            return ResponseFuture::refused(Refusal::Connect, grpc);
        }
        if hosts_disagree(&req) {
            tracing::debug!(
                target = %req.uri(),
                "refusing a request with more than one Host header"
            );
            return ResponseFuture::refused(Refusal::MultipleHosts, grpc);
        }
        let upgrade = match req.version() {
            Version::HTTP_11 => headers::requested_upgrade(req.headers()),
            _ => None,
        };
        let downstream = upgrade
            .as_ref()
            .and_then(|_| req.extensions_mut().remove::<OnUpgrade>());
        // With no connection to tunnel over (a layer above rebuilt the
        // request, or its server does not do upgrades), the upstream is
        // not asked to switch: it would, and the caller would get a `101`
        // with no tunnel behind it. The request goes as a plain one.
        let upgrade = upgrade.filter(|_| downstream.is_some());
        let lease = upgrade
            .as_ref()
            .and_then(|_| req.extensions_mut().remove::<Lease>());
        if headers::strip_hop_by_hop(req.headers_mut()) {
            tracing::debug!(
                target = %req.uri(),
                "refusing a request body with a transfer coding other than chunked"
            );
            return ResponseFuture::refused(Refusal::TransferCoding, grpc);
        }
        if let Some(protocol) = &upgrade {
            let h = req.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, protocol.clone());
        }
        set_host(&mut req);
        let clients = self.endpoints.current(&self.client);
        if let Some(picked) = pick(clients) {
            return ResponseFuture::sent(send(picked, req), grpc, downstream, lease);
        }
        let gate = clients.balancer.gate().clone();
        log_none_ready(clients.balancer.len());
        match gate.admit() {
            Ok(place) => {
                let waiting = Waiting {
                    req: Some(req),
                    client: self.client.clone(),
                    endpoints: self.endpoints.clone(),
                    place,
                    wait: None,
                };
                let mut future = ResponseFuture::answered(None, grpc, downstream, lease);
                future.waiting = Some(Box::new(waiting));
                future
            }
            Err(refused) => {
                ResponseFuture::answered(Some(Refusal::NoEndpoint(refused)), grpc, None, None)
            }
        }
    }
}

/// What [`send`] hands the response future: the client's future, the
/// endpoint, the request's place in the endpoint's load, when a
/// layer above says it timed out, whether it went as HTTP/2, and, for a
/// connect probe, when its connection is made.
type Sent<F> = (
    F,
    Picked,
    Option<Pending>,
    Option<cut::Since>,
    bool,
    Option<Connecting>,
);

/// Resolves once the connection a connect probe's request goes on is
/// made (`true`), or once the request ends without one (`false`).
type Connecting = Pin<Box<dyn Future<Output = bool> + Send>>;

/// When the connection `req` goes on is made, as its client reports it
/// (hyper-util's client does, for any connector); a client that does not
/// leaves it to the response head.
fn connecting<B>(req: &mut Request<B>) -> Connecting {
    let mut capture = capture_connection(req);
    Box::pin(async move { capture.wait_for_connection_metadata().await.is_some() })
}

/// The endpoint the balancer of `clients` picks, with its client, or
/// `None` when no endpoint is ready.
fn pick<C: Clone>(clients: &Clients<C>) -> Option<(C, Picked, Option<Pending>)> {
    let (i, endpoint, pending) = clients.balancer.pick_indexed()?;
    // The endpoint's client is as ready as the one polled: see
    // `ForEndpoint`.
    Some((clients.get(i)?.clone(), endpoint, pending))
}

/// Sends `req` to `endpoint` through its `client`.
fn send<C, B>(
    (mut client, endpoint, pending): (C, Picked, Option<Pending>),
    mut req: Request<B>,
) -> Sent<C::Future>
where
    C: Service<Request<B>> + ForEndpoint,
{
    *req.uri_mut() = upstream_uri(endpoint.authority(), &req);
    // Natively, upgraded by `orig_proto` above, or to be upgraded by the
    // client: its connect is one Linkerd's proxy makes before the
    // endpoint is ready, and backs off. The client is asked, of the
    // request as it will get it.
    let h2 = client.sends_http2(&req);
    if req.version() == Version::HTTP_2 {
        // The URI now carries the authority, as `:authority`. A `Host`
        // beside it is one that HTTP/2 servers may refuse: nginx
        // answers 400 to any HTTP/2 request with both, equal or not
        // ("client sent duplicate host header", 1.22), and RFC 9113
        // §8.3.1 has a server treat a different one as malformed.
        req.headers_mut().remove(header::HOST);
    }
    // Only a request some layer above times out carries one.
    let timeout = req
        .extensions_mut()
        .remove::<TimedOut>()
        .map(TimedOut::since_now);
    // A connect probe's endpoint is back once its connection is made, as
    // Linkerd's proxy has an endpoint ready once it reconnects, not once
    // the response comes: an upstream that holds the probe's response (a
    // long poll) would keep the endpoint pending, and the requests
    // waiting for it would fail fast. Only a probe, rare, pays the box.
    let connecting = pending
        .as_ref()
        .is_some_and(Pending::holds_connect_probe)
        .then(|| connecting(&mut req));
    (client.call(req), endpoint, pending, timeout, h2, connecting)
}

/// Logs why a request found no endpoint ready.
fn log_none_ready(endpoints: usize) {
    match endpoints {
        0 => tracing::debug!(endpoints = 0, "no endpoint to send to: none yet"),
        n => tracing::debug!(
            endpoints = n,
            "no endpoint to send to: every one is out for failing or a failed connect, or probing"
        ),
    }
}

/// A request waiting for an endpoint to be ready (see
/// [`queue`](super::queue)), with what it takes to send it then.
struct Waiting<C, B> {
    /// `None` once sent.
    req: Option<Request<B>>,
    client: C,
    endpoints: Bound<C>,
    /// Given back when the request is sent, answered or dropped.
    place: Place,
    /// The wait under way, if any.
    wait: Option<Pin<Box<dyn Future<Output = Woken> + Send>>>,
}

impl<C, B> Waiting<C, B>
where
    C: Service<Request<B>> + ForEndpoint + Clone,
{
    /// Sends the request once an endpoint is ready, or says why it is
    /// answered instead.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<Sent<C::Future>, Refusal>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                let woken = ready!(wait.as_mut().poll(cx));
                self.wait = None;
                if woken == Woken::FailFast {
                    return Poll::Ready(Err(Refusal::NoEndpoint(Refused::FailFast)));
                }
            }
            let Some(req) = self.req.take() else {
                return Poll::Ready(Err(Refusal::NoEndpoint(Refused::Unavailable)));
            };
            let gate = self.place.gate().clone();
            // Read before trying, so that an endpoint that comes between
            // the try and the wait is not missed.
            let seen = gate.generation();
            let clients = self.endpoints.current(&self.client);
            if let Some(picked) = pick(clients) {
                return Poll::Ready(Ok(send(picked, req)));
            }
            self.req = Some(req);
            if gate.in_failfast() {
                return Poll::Ready(Err(Refusal::NoEndpoint(Refused::FailFast)));
            }
            let retry_at = clients.balancer.next_change();
            self.wait = Some(Box::pin(gate.wait(seen, retry_at)));
        }
    }
}

/// Whether `req` is an HTTP/1 request in origin form with more than one
/// `Host` header. RFC 9112 §3.2 has a server answer it `400`: the mesh
/// routes and authorizes by the first, and the application behind may
/// read another (frameworks differ), which would serve a host no rule
/// was checked for. An absolute-form target names the one host itself
/// ([`set_host`]), and HTTP/2 sends `:authority`, never `Host`, on.
///
/// Nearly every request has no header twice, which two lengths tell at
/// once; only one that has looks `Host` up.
fn hosts_disagree<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    headers.len() != headers.keys_len()
        && req.uri().authority().is_none()
        && req.version() != Version::HTTP_2
        && headers.get_all(header::HOST).iter().nth(1).is_some()
}

/// Keeps the authority the caller asked for in `Host`, where an HTTP/1
/// application reads it: over HTTP/1 the upstream URI names the endpoint,
/// and `Host` alone carries the authority.
///
/// An HTTP/1 request in absolute form (`GET http://emoji/ HTTP/1.1`) names
/// its target in the URI, and a proxy must send that authority as `Host`
/// and ignore any `Host` the client wrote (RFC 9112 §3.2.2); otherwise
/// the application serves, and authorization sees, a host the route was
/// not chosen for. An HTTP/1 request that the client below carries on as
/// HTTP/2 (between two sidecars) keeps it too: that client makes its
/// `:authority` from it. An HTTP/2 request keeps its authority in the URI
/// instead, and leaves without `Host`. Userinfo never belongs in `Host`.
///
/// A request that named no host (HTTP/1.0 in origin form without `Host`)
/// leaves without one: the endpoint's client writes none from its URI,
/// which names the endpoint (see the [client docs](crate::client)).
fn set_host<B>(req: &mut Request<B>) {
    let http1 = matches!(
        req.version(),
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    );
    let Some(authority) = req.uri().authority().filter(|_| http1) else {
        return;
    };
    let host = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host)| host);
    if let Ok(host) = HeaderValue::from_str(host) {
        req.headers_mut().insert(header::HOST, host);
    }
}

/// Points `req`'s URI at `endpoint` for the client to send it there:
/// `http://<authority><path>`.
///
/// Over HTTP/1 the authority is the endpoint's: what the request was sent
/// for travels in `Host`, and the URI is only the pool's key. Over HTTP/2
/// it is what becomes `:authority`, so it is the one the request was
/// sent for ([`requested_authority`]), and the endpoint's only for a
/// request that names none.
fn upstream_uri<B>(endpoint: &Authority, req: &Request<B>) -> Uri {
    let authority = match req.version() {
        Version::HTTP_2 => requested_authority(req).unwrap_or_else(|| endpoint.clone()),
        _ => endpoint.clone(),
    };
    let original = req.uri();
    let mut parts = uri::Parts::default();
    parts.scheme = Some(uri::Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| original.clone())
}

/// The answer to a `CONNECT`: `501 Not Implemented` (RFC 9110 §15.6.2: a
/// method the server does not support for any target), with a
/// `mesh-error` header that says so.
fn connect_refused<B: Default>() -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::NOT_IMPLEMENTED;
    let h = res.headers_mut();
    h.insert(MESH_ERROR, HeaderValue::from_static(CONNECT_REFUSED));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res.extensions_mut().insert(ProxyErrorKind::Unsupported);
    res
}

/// The `mesh-error` of a refused `CONNECT`.
pub const CONNECT_REFUSED: &str = "connect not supported";

/// The `mesh-error` of an HTTP/1 request refused with `400` for naming
/// more than one host in `Host` headers.
pub const MULTIPLE_HOSTS: &str = "multiple host headers";

/// The `mesh-error` of an HTTP/1 request refused with `501` for a body
/// framed with a transfer coding other than `chunked` (`gzip, chunked`,
/// say), which the proxy does not decode and could not pass on as it
/// was: RFC 9112 §6.1 has a server answer such a coding `501`.
pub const UNSUPPORTED_CODING: &str = "transfer coding not supported";

/// The `mesh-error` of the `502` that stands for an upstream response
/// whose body is framed with a transfer coding other than `chunked`: it
/// cannot be passed on as it was, for the same reason as a request's
/// ([`UNSUPPORTED_CODING`]). It carries
/// [`UpstreamCause::Protocol`](crate::error::UpstreamCause::Protocol), as
/// a response head the client cannot read does.
pub const UPSTREAM_CODING: &str = "upstream transfer coding not supported";

/// Why [`Forward`] answered a request itself, sending nothing upstream.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// A `CONNECT`: `501`.
    Connect,
    /// More than one `Host`: `400` ([`MULTIPLE_HOSTS`]).
    MultipleHosts,
    /// A transfer coding other than `chunked`: `501`
    /// ([`UNSUPPORTED_CODING`]).
    TransferCoding,
    /// No endpoint was ready, and the request could not wait for one:
    /// `503`.
    NoEndpoint(Refused),
}

/// The `mesh-error` of a request that failed on the caller's side before
/// it was sent whole, its body most often: the endpoint is not to blame.
pub const INVALID_REQUEST: &str = "invalid request";

pin_project_lite::pin_project! {
    /// The response future of [`Forward`]: of the client `F` of the
    /// endpoint a request `Request<B>` went to through the clients `C`.
    pub struct ResponseFuture<F, C, B> {
        // `None` when no endpoint could take the request (yet).
        #[pin]
        inner: Option<F>,
        // The request while it waits for an endpoint to be ready.
        waiting: Option<Box<Waiting<C, B>>>,
        grpc: bool,
        downstream: Option<OnUpgrade>,
        // The downstream connection's place, for the tunnel to hold.
        lease: Option<Lease>,
        // Counted against the endpoint until the response's first body
        // frame, which the body waits for, as it does for failure
        // accrual's verdict at its end (see `body`).
        pending: Option<Pending>,
        // The endpoint sent to, for the logs, and to tell whether
        // connects to it are failing.
        endpoint: Option<Picked>,
        // Answered here, sending nothing: `inner` is `None`.
        refused: Option<Refusal>,
        // How a layer above says it cut the request short by a timeout:
        // before its response, read as this future is dropped; or, for a
        // verdict that waits for the body's end, before that end.
        timeout: Option<cut::Since>,
        // Whether it went as HTTP/2: a failed connect backs its endpoint
        // off (see `balance::reconnect`).
        h2: bool,
        // A connect probe's: when its connection is made, which puts its
        // endpoint back (see `send`).
        connecting: Option<Connecting>,
    }

    impl<F, C, B> PinnedDrop for ResponseFuture<F, C, B> {
        /// A request dropped before its response counts nothing for
        /// failure accrual (its caller went away), unless a timeout above
        /// cut it: then its endpoint failed to answer in time.
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(pending) = this.pending.take()
                && this.timeout.as_ref().is_some_and(cut::Since::expired)
            {
                tracing::debug!(
                    endpoint = %DisplayOr(this.endpoint.as_ref()),
                    "upstream gave no response before the timeout"
                );
                pending.failed();
            }
        }
    }
}

impl<F, C, B> std::fmt::Debug for ResponseFuture<F, C, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("sent", &self.inner.is_some())
            .field("waiting", &self.waiting.is_some())
            .field("grpc", &self.grpc)
            .field("endpoint", &self.endpoint)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<F, C, B> ResponseFuture<F, C, B> {
    /// The future of a request answered here for `refusal`.
    fn refused(refusal: Refusal, grpc: bool) -> Self {
        Self::answered(Some(refusal), grpc, None, None)
    }

    /// The future of a request not sent (yet): answered for `refused`,
    /// or waiting for an endpoint when that is `None`.
    fn answered(
        refused: Option<Refusal>,
        grpc: bool,
        downstream: Option<OnUpgrade>,
        lease: Option<Lease>,
    ) -> Self {
        Self {
            inner: None,
            waiting: None,
            grpc,
            downstream,
            lease,
            pending: None,
            endpoint: None,
            refused,
            timeout: None,
            h2: false,
            connecting: None,
        }
    }

    /// The future of a request `sent` to an endpoint.
    fn sent(
        (inner, endpoint, pending, timeout, h2, connecting): Sent<F>,
        grpc: bool,
        downstream: Option<OnUpgrade>,
        lease: Option<Lease>,
    ) -> Self {
        Self {
            inner: Some(inner),
            waiting: None,
            grpc,
            downstream,
            lease,
            pending,
            endpoint: Some(endpoint),
            refused: None,
            timeout,
            h2,
            connecting,
        }
    }
}

impl<F, C, B, RB, E> Future for ResponseFuture<F, C, B>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
    C: Service<Request<B>, Future = F> + ForEndpoint + Clone,
{
    type Output = Result<Response<Proxied<ResponseBody<RB>>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // Only a request not sent yet can be waiting: one sent pays for
        // no more than the test it did before the queue.
        if this.inner.is_none()
            && let Some(waiting) = this.waiting.as_mut()
        {
            match ready!(waiting.poll_send(cx)) {
                Ok((inner, endpoint, pending, timeout, h2, connecting)) => {
                    this.inner.set(Some(inner));
                    *this.endpoint = Some(endpoint);
                    *this.pending = pending;
                    *this.timeout = timeout;
                    *this.h2 = h2;
                    *this.connecting = connecting;
                }
                Err(refusal) => *this.refused = Some(refusal),
            }
            // Its place in the queue goes back now, not with the response.
            *this.waiting = None;
        }
        let Some(inner) = this.inner.as_pin_mut() else {
            match this.refused {
                Some(Refusal::Connect) => return Poll::Ready(Ok(connect_refused())),
                Some(Refusal::MultipleHosts) => {
                    return Poll::Ready(Ok(ProxyErrorKind::InvalidRequest
                        .response_with_reason(*this.grpc, MULTIPLE_HOSTS)));
                }
                Some(Refusal::TransferCoding) => {
                    return Poll::Ready(Ok(ProxyErrorKind::Unsupported
                        .response_with_reason(*this.grpc, UNSUPPORTED_CODING)));
                }
                Some(Refusal::NoEndpoint(Refused::FailFast)) => {
                    return Poll::Ready(Ok(
                        ProxyErrorKind::Unavailable.response_with_reason(*this.grpc, IN_FAILFAST)
                    ));
                }
                Some(Refusal::NoEndpoint(Refused::Unavailable)) | None => {}
            }
            return Poll::Ready(Ok(ProxyErrorKind::Unavailable.response_for(*this.grpc)));
        };
        // A probe's connection made puts its endpoint back at once; one
        // that fails to connect is left to its error, below.
        if let Some(connecting) = this.connecting.as_mut()
            && let Poll::Ready(connected) = connecting.as_mut().poll(cx)
        {
            *this.connecting = None;
            if connected
                && let Some(endpoint) = this.endpoint.as_ref()
                && let Some(probe) = this.pending.as_mut().and_then(Pending::take_connect_probe)
            {
                endpoint.reconnected(probe);
            }
        }
        let result = ready!(inner.poll(cx));
        *this.connecting = None;
        // Taken only now: it goes on with the body, or dropped, stops
        // counting the request.
        let mut pending = this.pending.take();
        // Whether this is the connect probe of an endpoint that backed off.
        let probe = pending.as_mut().and_then(Pending::take_connect_probe);
        let mut track = None;
        let mut res = match result {
            Ok(mut res) => {
                // A connection was made: a streak of failed connects, if
                // any, is over, and a probe's endpoint is back.
                if let Some(endpoint) = this.endpoint.as_ref() {
                    endpoint.answered();
                    if let Some(probe) = probe {
                        endpoint.reconnected(probe);
                    }
                }
                let tunnel = res.status() == http::StatusCode::SWITCHING_PROTOCOLS
                    && this.downstream.is_some();
                // Coded past what hyper undid: passed on, the caller would
                // take the coded bytes for the body. The endpoint failed
                // the request, and is scored so before the caller hears.
                if !tunnel && headers::strip_hop_by_hop(res.headers_mut()) {
                    if let Some(pending) = pending {
                        pending.answered(false);
                    }
                    tracing::debug!(
                        endpoint = %DisplayOr(this.endpoint.as_ref()),
                        "upstream response with a transfer coding other than chunked"
                    );
                    let mut res = ProxyErrorKind::UpstreamUnreachable
                        .response_with_reason(*this.grpc, UPSTREAM_CODING);
                    // A response this proxy cannot read on: as one whose
                    // head does not parse, for the layers above.
                    res.extensions_mut().insert(UpstreamCause::Protocol);
                    return Poll::Ready(Ok(res));
                }
                if let Some(mut pending) = pending {
                    let outcome = if *this.grpc && failure::status_in_trailers(&res) {
                        Outcome::Trailers
                    } else if failure::endpoint_failed(&res, *this.grpc) {
                        pending.judged(false);
                        Outcome::Counted
                    } else {
                        Outcome::Success
                    };
                    track = Some((pending, outcome));
                }
                res
            }
            Err(error) => {
                let error: BoxError = error.into();
                let cause = UpstreamCause::of(&*error);
                if let Some(endpoint) = this.endpoint.as_ref() {
                    if cause == Some(UpstreamCause::Connect) {
                        // Over HTTP/2, the endpoint backs off; a probe's
                        // failed connect backs off longer, whatever its
                        // version.
                        if *this.h2 || probe.is_some() {
                            endpoint.back_off(probe);
                        }
                    } else if let Some(probe) = probe {
                        // A connection was made for this to fail on.
                        endpoint.reconnected(probe);
                    }
                }
                if failure::is_callers(&*error) {
                    // Dropped as for a caller that went away: its wait
                    // is a sample, but no failure.
                    drop(pending);
                    tracing::debug!(
                        endpoint = %DisplayOr(this.endpoint.as_ref()),
                        error = %failure::Chain(&*error),
                        "the request could not be sent as given"
                    );
                    return Poll::Ready(Ok(ProxyErrorKind::InvalidRequest
                        .response_with_reason(*this.grpc, INVALID_REQUEST)));
                }
                if let Some(pending) = pending {
                    if failure::turned_away(&*error) {
                        pending.turned_away();
                    } else {
                        pending.failed();
                    }
                }
                let unprocessed = is_unprocessed(&*error);
                // The first connect of a streak that fails is an
                // operator's business at the default level; the rest of
                // the streak, and any other failure, a request's.
                let warn = cause == Some(UpstreamCause::Connect)
                    && this.endpoint.as_ref().is_some_and(Picked::connect_failed);
                if warn {
                    tracing::warn!(
                        endpoint = %DisplayOr(this.endpoint.as_ref()),
                        error = %failure::Chain(&*error),
                        unprocessed,
                        "upstream request failed"
                    );
                } else {
                    tracing::debug!(
                        endpoint = %DisplayOr(this.endpoint.as_ref()),
                        error = %failure::Chain(&*error),
                        unprocessed,
                        "upstream request failed"
                    );
                }
                // What happened, in words: a connect error only for a
                // connection that could not be made.
                let reason = cause.map_or(UPSTREAM_FAILED, UpstreamCause::reason);
                let mut res =
                    ProxyErrorKind::UpstreamUnreachable.response_with_reason(*this.grpc, reason);
                if let Some(cause) = cause {
                    // For the layers above, which see only the answer.
                    res.extensions_mut().insert(cause);
                }
                if unprocessed {
                    // The upstream never processed it: a retry layer above
                    // may send it again, whatever its method.
                    res.extensions_mut().insert(Unprocessed);
                }
                return Poll::Ready(Ok(res));
            }
        };
        let switching = res.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        if let Some(downstream) = this.downstream.take().filter(|_| switching) {
            // Its hop-by-hop headers are still on it (a tunnel's framing is
            // its own): the others' went above.
            let protocol = res.headers().get(header::UPGRADE).cloned();
            upgrade::tunnel(downstream, hyper::upgrade::on(&mut res), this.lease.take());
            headers::strip_hop_by_hop(res.headers_mut());
            let h = res.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = protocol {
                h.insert(header::UPGRADE, protocol);
            }
        }
        let timeout = track.as_ref().and(this.timeout.take());
        Poll::Ready(Ok(
            res.map(|body| Proxied::from(ResponseBody::new(body, track, timeout)))
        ))
    }
}

mod body;
mod cut;
pub(super) mod failure;

use self::body::Outcome;
use self::failure::DisplayOr;
pub use self::{body::ResponseBody, cut::TimedOut};

#[cfg(test)]
mod tests;
