//! The inbound side: from other workloads to the local application.

mod checks;
mod client;
mod connection;
mod errors;
mod host;

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::Uri;
use hyper_util::rt::TokioIo;
use mesh_core::{
    ConnectionInfo, ProxyErrorKind,
    body::Proxied,
    conn::{NoTlsReason, Tls},
    error::BoxError,
    io::copy_both_ways,
    labels::Authorized,
    proxy::{Forward, NoEndpoints, ResponseBody},
    serve::OpaqueConnection,
};
use mesh_metrics::{
    Direction, HttpMetrics, MetricsLayer, TcpConnect, TcpMetrics, http::Metrics, tcp::CountErrors,
};
use mesh_policy::{
    ApplyFilters, ApplyFiltersLayer, Authorize, AuthorizeLayer, AuthorizeOpaqueLayer, PolicyStore,
};
use mesh_tls::{ClientId, ClientIdLayer};
use tokio::net::TcpStream;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

pub(super) use self::client::AppClient;
pub(crate) use self::connection::strip_connection_listed;
pub(super) use self::errors::{CountAcceptErrors, connection_errors};
pub(crate) use self::host::is_host_and_port;
use self::{
    checks::{Refuse, RequestChecks, RequestChecksLayer},
    connection::{StripConnectionListed, StripConnectionListedLayer},
};

/// The body of a response from the application, or of one the sidecar
/// answered itself.
type AppBody = Proxied<ResponseBody<hyper::body::Incoming>>;

/// The HTTP service of one inbound port, as [`http_stack`] builds it.
pub(super) type HttpStack = StripConnectionListed<
    ClientId<
        RequestChecks<
            Authorize<Metrics<ApplyFilters<ClientId<Forward<AppClient<hyper::body::Incoming>>>>>>,
            Metrics<Refuse<AppBody>>,
        >,
    >,
>;

/// The HTTP stack of one inbound port: drop the headers the client's
/// `Connection` names (they belong to its hop, and dropped only as the
/// request leaves they would take along any header the sidecar adds
/// under the same name), make an HTTP/2 request's `:authority` the `Host`
/// it will be served for (see [`host`]), normalize the path (a request
/// whose host or path fails these checks is answered `400`, and counted:
/// see [`checks`]), authorize the request as one to the application's
/// port (the port a `Server` selects), count it, apply the filters of the
/// route rule it matched, tell the application who called
/// (`mesh-client-id`, and Linkerd's `l5d-client-id` for applications
/// written for Linkerd; neither can be forged, see below), and forward
/// to it:
/// over pooled connections, but for an HTTP/1 request that names no host
/// and an HTTP/1.0 one, which go over a connection of their own, as
/// Linkerd sends them (see [`client`]).
///
/// The path is put in normal form before anything matches it, and sent on
/// in that form (mesh-core's `normalize_path`, as its `NormalizePathLayer`
/// does): `/%61dmin` and `//admin` are authorized, and served, as
/// `/admin`.
///
/// Authorization comes first, as in Linkerd's inbound stack, so that the
/// request metrics carry the `srv_name`, `route_name` and `authz_name` the
/// decision attached. A denied request never reaches the metrics layer: it
/// is counted by `inbound_http_authz_deny_total` instead. Nor does one its
/// Server's rate limit refused (`429`): authorization's hook counts it in
/// `inbound_http_errors_total` as `rate limited`, with the target and the
/// Server (see [`count_rate_limited`]), where Linkerd counts it, and it
/// stays out of `request_total` and `response_total`, as a denial does.
///
/// The identity headers are set twice. First before anything reads the
/// request: the client's copies dropped, the identity the connection
/// proved (if any) written, so that an `HTTPRoute` rule that matches on
/// `l5d-client-id` or `mesh-client-id` is matched, and authorized, on the
/// caller's real identity, as in Linkerd, whose proxy sets
/// `l5d-client-id` in its HTTP server stack, before it routes and
/// authorizes (linkerd2-proxy, `app/inbound/src/http/server.rs`,
/// `NewSetIdentityHeader`). Were they set only as the request leaves, a
/// plaintext client that wrote `l5d-client-id: <web's identity>` would
/// be routed, and allowed, as `web`. Then again after the route's
/// filters, so that a header modifier cannot forge them either.
///
/// The route's filters (its `HTTPRoute` rule's header modifiers and
/// redirect) apply only to allowed requests, inside metrics: a redirect is
/// counted as the route's response, and the response edit shows in what
/// metrics see.
///
/// # Errors
///
/// [`NoEndpoints`] if `app` is not an address a request can be sent to.
pub(super) fn http_stack(
    client: AppClient<hyper::body::Incoming>,
    app: SocketAddr,
    policy: &PolicyStore,
    metrics: &MetricsLayer,
    http_metrics: &HttpMetrics,
) -> Result<HttpStack, NoEndpoints> {
    let forward = Forward::new(client, [app])?;
    // Servers are matched against the application's port, and so is
    // Linkerd's `target_port`: the listener's would label every
    // application behind it alike.
    let metrics = metrics.clone().with_target_port(app.port());
    let refuse = metrics.layer(Refuse::new());
    Ok(ServiceBuilder::new()
        .layer(StripConnectionListedLayer)
        .layer(ClientIdLayer::new())
        .layer(RequestChecksLayer::new(refuse))
        .layer(
            AuthorizeLayer::new(policy.clone())
                .with_port(app.port())
                .on_rate_limited(count_rate_limited(http_metrics, app.port())),
        )
        .layer(metrics)
        .layer(ApplyFiltersLayer::new())
        .layer(ClientIdLayer::new())
        .service(forward))
}

/// What authorization tells of a request its Server's rate limit refused,
/// on the inbound port whose application listens on `app_port`: counts it
/// in `inbound_http_errors_total` (`rate limited`), named as its
/// `request_total` series would have been had it been let through: the
/// address the connection came to with the application's port, as the
/// metrics layer's [`with_target_port`](MetricsLayer::with_target_port)
/// names it, and the Server the decision attached.
fn count_rate_limited(
    metrics: &HttpMetrics,
    app_port: u16,
) -> impl Fn(&http::request::Parts, &http::response::Parts) + Send + Sync + 'static {
    let metrics = metrics.clone();
    move |req, answer| {
        let target = req
            .extensions
            .get::<ConnectionInfo>()
            .map(|info| SocketAddr::new(info.local_addr.ip(), app_port));
        let kind = answer
            .extensions
            .get::<ProxyErrorKind>()
            .copied()
            .unwrap_or(ProxyErrorKind::RateLimited);
        metrics.count_inbound_answer(
            target,
            req.extensions.get::<Authorized>(),
            kind,
            &answer.headers,
        );
    }
}

/// The opaque handler of one inbound port: a connection-level
/// authorization, as one to the application's port, then a byte pipe to
/// the application. A policy change that no longer allows an open
/// connection closes it.
///
/// It also serves the application's own TLS: a connection whose
/// ClientHello named another server than the sidecar's DNS-style
/// identity, which the TLS acceptor passed on untouched
/// (`Tls::Passthrough`, see mesh-tls's `accept` module, "Server names"),
/// as Linkerd's proxy forwards a `ServerTls::Passthru` connection as
/// opaque TCP. The server hands it here without protocol detection,
/// whatever the port serves (mesh-core's `serve::Protocol`): its bytes
/// are the application's TLS, never HTTP, and detection would have a port
/// that serves HTTP only close it, as a client that spoke no HTTP. It is
/// authorized as a client that proved nothing (an authorization that
/// needs a mesh identity, or TLS the mesh terminated, refuses it), its
/// bytes reach the application as the client sent them, and its
/// transport series are labelled `tls="opaque",sni="<name>"`.
///
/// The connection to the application is counted in `metrics` as the
/// inbound side's connection to it (`direction="inbound",peer="dst"`,
/// labelled loopback, as the HTTP client's: see [`client`]). A connection
/// that fails once authorized (the application cannot be connected, a
/// socket fails) is counted in `inbound_tcp_errors_total` (see
/// [`errors`]); one the policy refuses is its authorization families'.
pub(super) fn opaque_stack(
    connect_timeout: Duration,
    app: SocketAddr,
    policy: PolicyStore,
    metrics: &TcpMetrics,
) -> impl tower::Service<
    OpaqueConnection,
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send + use<>,
>
+ Clone
+ Send
+ 'static
+ use<> {
    let connect = TcpConnect::inbound(
        metrics,
        &Tls::Plaintext(NoTlsReason::Loopback),
        DialApp {
            app,
            timeout: connect_timeout,
        },
    );
    let pipe = CountErrors::new(
        metrics,
        Direction::Inbound,
        service_fn(move |conn: OpaqueConnection| pipe(conn, connect.clone())),
    )
    .with_target_port(app.port())
    .with_classify(errors::opaque_error);
    AuthorizeOpaqueLayer::new(policy)
        .with_port(app.port())
        .layer(pipe)
}

async fn pipe(conn: OpaqueConnection, connect: TcpConnect<DialApp>) -> Result<(), BoxError> {
    let OpaqueConnection { io, info } = conn;
    // The dialer goes to its one address, whatever the URI says.
    let upstream = connect.oneshot(Uri::default()).await?.into_inner();
    // Not tokio's `copy_bidirectional`: an application that answers and
    // closes while the client is still sending resets the connection, and
    // its answer, already read, must still reach the client.
    let (sent, received) = copy_both_ways(io, upstream).await?;
    match &info.tls {
        Tls::Passthrough { sni } => tracing::debug!(
            peer = %info.remote_addr,
            %sni,
            sent,
            received,
            "passed-through tls connection closed"
        ),
        _ => tracing::debug!(peer = %info.remote_addr, sent, received, "opaque connection closed"),
    }
    Ok(())
}

/// Opens a TCP connection to the application, within the connect timeout,
/// for [`TcpConnect`] to count: a connector in hyper-util's shape, whose
/// errors name the application.
#[derive(Clone, Copy, Debug)]
struct DialApp {
    app: SocketAddr,
    timeout: Duration,
}

impl tower::Service<Uri> for DialApp {
    type Response = TokioIo<TcpStream>;
    type Error = AppConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let Self { app, timeout } = *self;
        Box::pin(async move {
            let upstream = match tokio::time::timeout(timeout, TcpStream::connect(app)).await {
                Ok(Ok(upstream)) => upstream,
                Ok(Err(error)) => return Err(AppConnectError::Failed { app, error }),
                Err(_) => {
                    return Err(AppConnectError::TimedOut {
                        app,
                        after: timeout,
                    });
                }
            };
            upstream
                .set_nodelay(true)
                .map_err(|error| AppConnectError::Failed { app, error })?;
            Ok(TokioIo::new(upstream))
        })
    }
}

/// The application could not be reached for an opaque connection. Named
/// with its address: the connection's own log line names the listener
/// and the peer, and "Connection refused" alone reads as the peer's.
#[derive(Debug)]
enum AppConnectError {
    Failed {
        app: SocketAddr,
        error: std::io::Error,
    },
    TimedOut {
        app: SocketAddr,
        after: Duration,
    },
}

impl std::fmt::Display for AppConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed { app, .. } => write!(f, "cannot connect to the application at {app}"),
            Self::TimedOut { app, after } => write!(
                f,
                "connecting to the application at {app} timed out after {after:?}"
            ),
        }
    }
}

impl std::error::Error for AppConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::TimedOut { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::conn::ConnectionInfo;

    use super::*;

    #[tokio::test]
    async fn an_application_that_cannot_be_reached_is_named() {
        // A port where nothing listens, drawn below Linux's ephemeral
        // range (32768–60999): one bound to 0 and closed could be taken
        // again by another test's listener meanwhile.
        let closed = {
            use std::hash::{BuildHasher, RandomState};
            let random = RandomState::new();
            let port = (0_u64..)
                .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
                .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
                .unwrap();
            std::net::SocketAddr::from(([127, 0, 0, 1], port))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_client, accepted) = tokio::join!(
            tokio::net::TcpStream::connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (io, peer) = accepted.unwrap();
        let conn = OpaqueConnection {
            io: Box::new(io),
            info: ConnectionInfo::plaintext(listener.local_addr().unwrap(), peer),
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = TcpMetrics::register(&mut registry);
        let dial = DialApp {
            app: closed,
            timeout: Duration::from_secs(5),
        };
        let connect = TcpConnect::inbound(&metrics, &Tls::Plaintext(NoTlsReason::Loopback), dial);
        let error = pipe(conn, connect).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot connect to the application at {closed}")
        );
        let cause = std::error::Error::source(&*error).unwrap();
        assert!(cause.is::<std::io::Error>(), "{cause}");
    }
}
