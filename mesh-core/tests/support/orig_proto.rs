//! Two proxies that carry HTTP/1.1 to each other as HTTP/2, as two
//! sidecars do for meshed peers: an outbound one whose client upgrades
//! each request it can (`orig_proto::upgrade`), and an inbound one that
//! downgrades it again before the application.

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use hyper::body::Incoming;
use mesh_core::{
    client::{Client, ClientConfig, ClientError, ForEndpoint, authority_from_host},
    proxy::{Forward, orig_proto},
    serve::{Server, ServerConfig, shutdown},
};
use tokio::net::TcpListener;
use tower::{Layer, Service};

/// The outbound proxy's client: every HTTP/1.1 request it can goes as
/// HTTP/2, as the sidecar's does for meshed peers.
#[derive(Clone)]
pub(crate) struct Upgrading(Client<Incoming>);

impl ForEndpoint for Upgrading {
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self {
        Self(self.0.for_endpoint(endpoint))
    }

    fn sends_http2<B>(&self, req: &http::Request<B>) -> bool {
        req.version() == http::Version::HTTP_2 || orig_proto::upgradable(req)
    }
}

type ResFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, ClientError>> + Send>>;

impl Service<http::Request<Incoming>> for Upgrading {
    type Response = http::Response<Incoming>;
    type Error = ClientError;
    type Future = ResFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Incoming>) -> ResFuture {
        let upgraded = orig_proto::upgrade(&mut req);
        if upgraded {
            authority_from_host(&mut req);
        }
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if upgraded {
                orig_proto::restore(&mut res);
            }
            Ok(res)
        })
    }
}

/// The client's proxy, carrying requests to `app`'s proxy as HTTP/2; its
/// address, and the triggers that keep both up.
pub(crate) async fn proxies(app: SocketAddr) -> (SocketAddr, [shutdown::ShutdownTrigger; 2]) {
    let client = Client::<Incoming>::new(&ClientConfig::default());
    let inbound = orig_proto::DowngradeLayer::new().layer(Forward::new(client, [app]).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let inbound_addr = listener.local_addr().unwrap();
    let (inbound_trigger, stop) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, inbound, stop));

    let client = Upgrading(Client::<Incoming>::new(&ClientConfig::default()));
    let outbound = Forward::new(client, [inbound_addr]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (outbound_trigger, stop) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, outbound, stop));
    (addr, [inbound_trigger, outbound_trigger])
}
