//! The inbound side: from other workloads to the local application.

mod connection;
mod host;

use std::{net::SocketAddr, time::Duration};

use mesh_core::{
    client::Client,
    error::BoxError,
    proxy::{Forward, NoEndpoints},
    route::{NormalizePath, NormalizePathLayer},
    serve::OpaqueConnection,
};
use mesh_metrics::{MetricsLayer, http::Metrics};
use mesh_policy::{
    ApplyFilters, ApplyFiltersLayer, Authorize, AuthorizeLayer, AuthorizeOpaqueLayer, PolicyStore,
};
use mesh_tls::{ClientId, ClientIdLayer};
use tower::{Layer, ServiceBuilder, service_fn};

pub(crate) use self::connection::strip_connection_listed;
use self::{
    connection::{StripConnectionListed, StripConnectionListedLayer},
    host::{HostAuthority, HostAuthorityLayer},
};

/// The HTTP service of one inbound port, as [`http_stack`] builds it.
pub(super) type HttpStack = StripConnectionListed<
    HostAuthority<
        NormalizePath<
            Authorize<Metrics<ApplyFilters<ClientId<Forward<Client<hyper::body::Incoming>>>>>>,
        >,
    >,
>;

/// The HTTP stack of one inbound port: drop the headers the client's
/// `Connection` names (they belong to its hop, and dropped only as the
/// request leaves they would take along any header the sidecar adds
/// under the same name), make an HTTP/2 request's `:authority` the `Host`
/// it will be served for (see [`host`]), normalize the path, authorize the
/// request as one to the application's port (the port a `Server`
/// selects), count it, apply the filters of the route rule it matched,
/// tell the application who called (`mesh-client-id`, and Linkerd's
/// `l5d-client-id` for applications written for Linkerd; neither can be
/// forged), and forward to it.
///
/// The path is put in normal form before anything matches it, and sent on
/// in that form (see mesh-core's `NormalizePathLayer`): `/%61dmin` and
/// `//admin` are authorized, and served, as `/admin`.
///
/// Authorization comes first, as in Linkerd's inbound stack, so that the
/// request metrics carry the `srv_name`, `route_name` and `authz_name` the
/// decision attached. A denied request never reaches the metrics layer: it
/// is counted by `inbound_http_authz_deny_total` instead.
///
/// The route's filters (its `HTTPRoute` rule's header modifiers and
/// redirect) apply only to allowed requests, inside metrics: a redirect is
/// counted as the route's response, and the response edit shows in what
/// metrics see. They come before `mesh-client-id` is set, so a header
/// modifier cannot forge it.
///
/// # Errors
///
/// [`NoEndpoints`] if `app` is not an address a request can be sent to.
pub(super) fn http_stack(
    client: Client<hyper::body::Incoming>,
    app: SocketAddr,
    policy: &PolicyStore,
    metrics: &MetricsLayer,
) -> Result<HttpStack, NoEndpoints> {
    let forward = Forward::new(client, [app])?;
    Ok(ServiceBuilder::new()
        .layer(StripConnectionListedLayer)
        .layer(HostAuthorityLayer)
        .layer(NormalizePathLayer)
        .layer(AuthorizeLayer::new(policy.clone()).with_port(app.port()))
        .layer(metrics.clone())
        .layer(ApplyFiltersLayer::new())
        .layer(ClientIdLayer::new())
        .service(forward))
}

/// The opaque handler of one inbound port: a connection-level
/// authorization, as one to the application's port, then a byte pipe to
/// the application. A policy change that no longer allows an open
/// connection closes it.
pub(super) fn opaque_stack(
    connect_timeout: Duration,
    app: SocketAddr,
    policy: PolicyStore,
) -> impl tower::Service<
    OpaqueConnection,
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    AuthorizeOpaqueLayer::new(policy)
        .with_port(app.port())
        .layer(service_fn(move |conn: OpaqueConnection| {
            pipe(conn, app, connect_timeout)
        }))
}

async fn pipe(
    conn: OpaqueConnection,
    app: SocketAddr,
    connect_timeout: Duration,
) -> Result<(), BoxError> {
    let OpaqueConnection { mut io, info } = conn;
    let mut upstream = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(app))
        .await
        .map_err(|_| "connect to the application timed out")??;
    upstream.set_nodelay(true)?;
    let (sent, received) = tokio::io::copy_bidirectional(&mut io, &mut upstream).await?;
    tracing::debug!(peer = %info.remote_addr, sent, received, "opaque connection closed");
    Ok(())
}
