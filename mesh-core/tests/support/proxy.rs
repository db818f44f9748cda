//! A mesh server whose every request goes through a `Forward` to one
//! upstream: the proxy the end-to-end `Forward` tests put a client before.

use std::net::SocketAddr;

use hyper::body::Incoming;
use mesh_core::{
    client::{Client, ClientConfig},
    proxy::Forward,
    serve::{Server, ServerConfig, shutdown},
};
use tokio::net::TcpListener;

/// A server forwarding to `upstream`: its address, what shuts it down,
/// and its task.
pub(crate) async fn proxy(
    upstream: SocketAddr,
) -> (
    SocketAddr,
    shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let forward = Forward::new(client, [upstream]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, forward, shutdown));
    (addr, trigger, server)
}
