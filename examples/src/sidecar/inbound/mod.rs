//! The inbound side: from other workloads to the local application.

use std::{net::SocketAddr, time::Duration};

use mesh_core::{client::Client, error::BoxError, proxy::Forward, serve::OpaqueConnection};
use tower::{Layer, service_fn};

use super::client_id::{ClientId, ClientIdLayer};

/// The HTTP stack of one inbound port: tell the application who called
/// (`mesh-client-id`, never forged), and forward to it.
pub(super) fn http_stack(
    client: Client<hyper::body::Incoming>,
    app: SocketAddr,
) -> ClientId<Forward<Client<hyper::body::Incoming>>> {
    // One endpoint never fails `Forward::new`.
    let forward = Forward::new(client, [app]).expect("one endpoint");
    ClientIdLayer::new().layer(forward)
}

/// The opaque handler of one inbound port: a byte pipe to the application.
pub(super) fn opaque_stack(
    connect_timeout: Duration,
    app: SocketAddr,
) -> impl tower::Service<
    OpaqueConnection,
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |conn: OpaqueConnection| pipe(conn, app, connect_timeout))
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
