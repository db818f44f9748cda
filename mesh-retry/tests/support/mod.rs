//! An upstream HTTP server on a real socket, and the client stack under test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod grpc_upstream;
pub(crate) mod profile_upstream;
pub(crate) mod retrying;

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_core::{
    BoxError,
    body::{BoxBody, Proxied},
    client::{Client, ClientConfig},
};
use mesh_retry::replay::ReplayBody;
use tower::{Service, ServiceBuilder, util::BoxCloneService};

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

pub(crate) type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// An upstream on 127.0.0.1 that hands each request, numbered from 0, to
/// `handler`.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub(crate) fn uri(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// An upstream whose handler reads each request whole, records it, and
/// answers with the status `status(index, &seen)` returns.
pub(crate) async fn recording(
    status: impl Fn(usize, &Seen) -> StatusCode + Send + Sync + 'static,
) -> Upstream {
    answering(move |index, seen| {
        let mut res = Response::new(Full::new(Bytes::from("reply")));
        *res.status_mut() = status(index, seen);
        res
    })
    .await
}

/// An upstream whose handler reads each request whole, records it, and
/// answers with what `reply(index, &seen)` returns.
pub(crate) async fn answering(
    reply: impl Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> Upstream {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let reply = Arc::new(reply);
    let addr = serve(move |req| {
        let (log, reply) = (log.clone(), reply.clone());
        Box::pin(async move {
            let seen = read(req).await;
            let index = {
                let mut log = log.lock().unwrap();
                log.push(seen.clone());
                log.len() - 1
            };
            reply(index, &seen)
        })
    })
    .await;
    Upstream { addr, seen }
}

/// Reads a request whole.
pub(crate) async fn read(req: Request<Incoming>) -> Seen {
    let (parts, body) = req.into_parts();
    let collected = body.collect().await.unwrap();
    Seen {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        trailers: collected.trailers().cloned(),
        body: collected.to_bytes(),
    }
}

/// Serves HTTP/1.1 and HTTP/2 on a fresh port with `handler`.
pub(crate) async fn serve(
    handler: impl Fn(Request<Incoming>) -> Reply + Clone + Send + Sync + 'static,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let reply = handler(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// The service the layers under test wrap: mesh-core's pooled client, with
/// responses in a body the timeout layers can answer with.
pub(crate) type Upstreams =
    BoxCloneService<Request<ReplayBody<BoxBody>>, Response<Proxied<Incoming>>, BoxError>;

pub(crate) fn client() -> Upstreams {
    let client: Client<ReplayBody<BoxBody>> = Client::new(&ClientConfig::default());
    let svc = ServiceBuilder::new()
        .map_response(|res: Response<Incoming>| res.map(Proxied::from))
        .map_err(BoxError::from)
        .service(client);
    BoxCloneService::new(svc)
}

/// Sends `req` through `svc` and reads the response whole.
pub(crate) async fn send<S, B>(svc: &S, req: Request<BoxBody>) -> (StatusCode, HeaderMap, Bytes)
where
    S: Service<Request<BoxBody>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}
