//! The inbound side: from other workloads to the local application.

use std::{net::SocketAddr, time::Duration};

use mesh_core::{client::Client, error::BoxError, proxy::Forward, serve::OpaqueConnection};
use tower::service_fn;

/// The HTTP stack of one inbound port: forward to the application.
pub(super) fn http_stack(
    client: Client<hyper::body::Incoming>,
    app: SocketAddr,
) -> Forward<Client<hyper::body::Incoming>> {
    // One endpoint never fails `Forward::new`.
    Forward::new(client, [app]).expect("one endpoint")
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
