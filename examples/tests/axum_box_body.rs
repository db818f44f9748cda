//! An axum handler that calls a mesh client whose requests carry
//! mesh-core's `BoxBody`, forwarding the caller's body in it.
//!
//! That this file compiles is most of the test: with `BoxBody` an alias of
//! `UnsyncBoxBody<Bytes, BoxError>`, axum refused such a handler (rustc
//! could not prove its future `Send` for every lifetime of the
//! `dyn Error + Send + Sync` the alias names: "implementation of `Service`
//! is not general enough"). The request then goes over real sockets,
//! through the router to a real upstream and back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::WAIT_BOUND;

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::{
    BoxError,
    body::{self, BoxBody},
    client::{Client, ClientConfig},
    serve::{Server, ServerConfig, shutdown},
};
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneSyncService};

/// The handler's client of the upstream: the type an application keeps in
/// its router's state, which axum wants `Sync`.
type Upstream = BoxCloneSyncService<Request<BoxBody>, Response<BoxBody>, BoxError>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    stock: SocketAddr,
}

/// Forwards the caller's body to the upstream, in a `BoxBody`, and answers
/// with what the upstream said.
async fn restock(
    State(app): State<AppState>,
    Path(item): Path<String>,
    body: axum::body::Body,
) -> Result<String, (StatusCode, String)> {
    let req = Request::post(format!("http://{}/stock/{item}", app.stock))
        .body(body::boxed(body))
        .unwrap();
    let res = app
        .upstream
        .oneshot(req)
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    let status = res.status();
    let answer = res.into_body().collect().await.unwrap().to_bytes();
    Ok(format!(
        "{} {}",
        status.as_u16(),
        String::from_utf8_lossy(&answer)
    ))
}

#[tokio::test]
async fn a_handler_awaits_a_client_of_box_body_requests_and_forwards_the_callers_body() {
    let (_stop, signal) = shutdown::channel();

    // The upstream answers with the path and the body it was sent.
    let stock = service_fn(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let sent = req.into_body().collect().await?.to_bytes();
        let answer = format!("{path} +{}", String::from_utf8_lossy(&sent));
        Ok::<_, hyper::Error>(Response::new(body::full(answer)))
    });
    let stock_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stock_addr = stock_listener.local_addr().unwrap();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(
        stock_listener,
        stock,
        signal.clone(),
    ));

    let config = ClientConfig::default();
    let upstream = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_response(|res: Response<Incoming>| res.map(body::boxed))
            .map_err(BoxError::from)
            .service(Client::<BoxBody>::new(&config)),
    );
    let router = Router::new()
        .route("/restock/{item}", post(restock))
        .with_state(AppState {
            upstream,
            stock: stock_addr,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, router, signal));

    let req = Request::post(format!("http://{app}/restock/tea"))
        .body(body::full("12"))
        .unwrap();
    let res = tokio::time::timeout(WAIT_BOUND, Client::<BoxBody>::new(&config).oneshot(req))
        .await
        .expect("the app answers")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, "200 /stock/tea +12");
}
