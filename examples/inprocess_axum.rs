//! An axum service with the mesh in process: strict mutual TLS, Linkerd's
//! metrics, the policy resources the sidecar reads, and a retried upstream,
//! with no sidecar.
//!
//! axum's `Router` is a tower service on hyper 1, so the mesh's layers wrap
//! it as any axum middleware does: one `ServiceBuilder` given to
//! `Router::layer`. mesh-core's `Server` serves the router behind mesh-tls's
//! `TlsAccept`, which puts the peer's identity on every request as the
//! `ConnectionInfo` the layers read, and drains connections when the
//! credentials rotate. axum's own `serve` could take a listener that runs
//! the handshake, but it awaits each `accept` before the next (one slow
//! handshake holds up every client), and the identity would reach
//! requests only as a `ConnectInfo` of a type of the application's, which
//! a layer of its own would have to turn into a `ConnectionInfo`.
//! Handlers learn the caller from an extractor or from the
//! `mesh-client-id` header, and one calls an upstream through mesh-retry's
//! `RouteStackLayer` over mesh-tls's `TlsConnector`.
//!
//! ```text
//! cargo run --example inprocess_axum
//! ```
//!
//! prints what each request got, then the app's series in its registry
//! (the text `/metrics` serves; lines shortened here), and exits:
//!
//! ```text
//! orders spiffe://example.org/ns/shop/sa/orders on 127.0.0.1:PORT (strict mtls, an axum router)
//! GET /hello/ada as web: 200 "hello ada, from spiffe://example.org/ns/shop/sa/web"
//! GET /hello/ada as intruder: 403 from the policy (mesh-error: unauthorized request)
//! POST /orders as web: 200 {"caller":"spiffe://example.org/ns/shop/sa/web","item":"tea","stock":"12 tea"}
//!   the stock service answered 503, 503, then 200: 2 retries
//! GET /nope as web: 404 from axum
//! DELETE /hello/ada as web: 405 from axum
//!
//! the app's series in /metrics:
//!   request_total{direction="inbound",target_addr="127.0.0.1:8080",...,tls="true",client_id="spiffe://example.org/ns/shop/sa/web",...,srv_name="orders-http",...,authz_name="orders-from-web"} 4
//!   response_total{...,status_code="200",classification="success"} 2
//!   response_total{...,status_code="404",classification="success"} 1
//!   response_total{...,status_code="405",classification="success"} 1
//!   inbound_http_authz_deny_total{...,srv_name="orders-http",srv_port="8080",...,tls="true"} 1
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, Request, Response, StatusCode, request::Parts},
    routing::{get, post},
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ConnectionInfo, Identity,
    body::{BoxBody, Proxied},
    client::{Client, ClientConfig},
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use mesh_policy::{
    AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload,
};
use mesh_retry::{Budget, RetryPolicy, RouteStackLayer, Timeouts, replay::ReplayBody};
use mesh_tls::{
    AcceptConfig, ClientIdLayer, CredentialStore, InboundMode, MESH_CLIENT_ID, OutboundTls,
    StoreConfig, TlsAccept, TlsConnector, TlsTargets, ca::CertificateAuthority,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use serde::Deserialize;
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneSyncService};

/// The port the policy and the metrics know the app by, whatever port its
/// listener was given: the `Server` below selects it.
const PORT: u16 = 8080;

/// The `Server`, `MeshTLSAuthentication` and `AuthorizationPolicy` of the
/// app, as a sidecar would read them: only `web` may call it.
const POLICY: &str = include_str!("inprocess_axum_policy.yaml");

/// A client of the upstream, shared by handlers through the router's
/// state, which axum wants `Sync`.
///
/// Its requests carry mesh-core's `BoxBody`, as the mesh's other clients'
/// do. `BoxBody` is a struct, not an alias of a boxed body, so that a
/// handler awaiting such a call compiles: through an alias naming
/// `dyn Error + Send + Sync`, rustc cannot prove the handler's future `Send`.
type Upstream = BoxCloneSyncService<Request<BoxBody>, Response<axum::body::Body>, BoxError>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    stock: SocketAddr,
}

/// The identity the caller proved with mutual TLS, read from the
/// connection the mesh's server puts on each request.
struct Caller(Identity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ConnectionInfo>()
            .and_then(ConnectionInfo::peer_identity)
            .map(|id| Caller(id.clone()))
            .ok_or((StatusCode::UNAUTHORIZED, "no mesh identity"))
    }
}

async fn hello(Path(name): Path<String>, Caller(caller): Caller) -> String {
    format!("hello {name}, from {caller}")
}

#[derive(Deserialize)]
struct Order {
    item: String,
}

/// Asks the stock service about the item, through the retrying client, and
/// names the caller from the header `ClientIdLayer` set.
async fn order(
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(order): Json<Order>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let bad_gateway = |e: BoxError| (StatusCode::BAD_GATEWAY, e.to_string());
    let req = Request::get(format!("http://{}/stock/{}", app.stock, order.item))
        .body(BoxBody::default())
        .map_err(|e| bad_gateway(e.into()))?;
    let res = app.upstream.oneshot(req).await.map_err(bad_gateway)?;
    if !res.status().is_success() {
        return Err((StatusCode::BAD_GATEWAY, format!("stock: {}", res.status())));
    }
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| bad_gateway(e.into()))?;
    let caller = headers.get(MESH_CLIENT_ID).and_then(|v| v.to_str().ok());
    Ok(Json(serde_json::json!({
        "item": order.item,
        "stock": String::from_utf8_lossy(&body.to_bytes()),
        "caller": caller,
    })))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let ca = CertificateAuthority::generate("example.org".parse()?)?;
    let store = |name: &str| -> Result<CredentialStore, Box<dyn std::error::Error + Send + Sync>> {
        let id: Identity = format!("spiffe://example.org/ns/shop/sa/{name}").parse()?;
        let creds = ca.issue(&id, Duration::from_secs(3600))?.credentials()?;
        Ok(CredentialStore::with_credentials(
            StoreConfig::default(),
            creds,
        )?)
    };
    let (stop, signal) = shutdown::channel();
    let strict = |store| TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict));

    // The upstream: a strict mTLS service that fails its first two calls.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let stock = service_fn(move |_req: Request<Incoming>| {
        let n = counted.fetch_add(1, Ordering::Relaxed);
        let mut res = Response::new(mesh_core::body::full("12 tea"));
        if n < 2 {
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        async move { Ok::<_, Infallible>(res) }
    });
    let stock_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stock_addr = stock_listener.local_addr()?;
    let stock_server = Server::new(ServerConfig::default())
        .with_accept(strict(store("stock")?))
        .serve_http(stock_listener, stock, signal.clone());
    let stock_task = tokio::spawn(stock_server);

    // The app's client of it: mTLS expecting the stock identity, retries
    // within a budget, and a timeout on each attempt.
    let orders = store("orders")?;
    let upstream = {
        let config = ClientConfig::default();
        let targets = TlsTargets::new(OutboundTls::Plaintext).with_endpoint(
            stock_addr,
            OutboundTls::Mtls("spiffe://example.org/ns/shop/sa/stock".parse()?),
        );
        let connector = TlsConnector::new(&config, orders.clone(), targets)?;
        let timeouts = Timeouts {
            request: Some(Duration::from_secs(10)),
            per_try: Some(Duration::from_secs(2)),
            idle: None,
        };
        let retry = RouteStackLayer::new(
            RetryPolicy::default(),
            timeouts,
            Arc::new(Budget::default()),
        );
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|res: Response<_>| res.map(axum::body::Body::new))
                .layer(retry)
                .layer(connector.retire_layer())
                // The retry stack answers a timeout itself, in the body
                // type of the responses it passes on: `Proxied` gives
                // hyper's `Incoming` the empty value that needs.
                .map_response(|res: Response<Incoming>| res.map(Proxied::from))
                .service(Client::<ReplayBody<BoxBody>, _>::with_connector(
                    &config, connector,
                )),
        )
    };

    // The mesh around the router, outermost first. axum's `Router::layer`
    // takes only services that cannot fail; each of these layers fails as
    // the service it wraps does, and the router never fails, so they take
    // the router as it is. Authorization comes before
    // metrics, as in the sidecar and in Linkerd: an allowed request is
    // counted with the Server and authorization that let it in, a denied
    // one in the policy's `inbound_http_authz_deny_total`. `Router::layer`
    // wraps every route and the router's fallback, so axum's own 404 and
    // 405 are authorized and counted too.
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let policy = PolicyStore::new(
        Workload::new("shop").with_label("app", "orders"),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut registry),
    );
    policy.reload(&[PolicySource::new("orders-policy.yaml", POLICY)])?;
    let mesh = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(policy).with_port(PORT))
        .layer(MetricsLayer::inbound(&http).with_target_port(PORT))
        .layer(ClientIdLayer::new());
    let app = Router::new()
        .route("/hello/{name}", get(hello))
        .route("/orders", post(order))
        .with_state(AppState {
            upstream,
            stock: stock_addr,
        })
        .layer(mesh);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(ServerConfig::default())
        .with_accept(strict(orders))
        .serve_http(listener, app, signal);
    let server_task = tokio::spawn(server);
    println!(
        "orders spiffe://example.org/ns/shop/sa/orders on {addr} (strict mtls, an axum router)"
    );

    // Two callers: `web`, whom the policy admits, and `intruder`, who has
    // a certificate from the same CA and no authorization.
    let caller = |name: &str| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
        let config = ClientConfig::default();
        let targets = TlsTargets::new(OutboundTls::Plaintext).with_endpoint(
            addr,
            OutboundTls::Mtls("spiffe://example.org/ns/shop/sa/orders".parse()?),
        );
        let connector = TlsConnector::new(&config, store(name)?, targets)?;
        Ok(Client::<BoxBody, _>::with_connector(&config, connector))
    };
    let web = caller("web")?;
    let intruder = caller("intruder")?;
    let exchanges = [
        (&web, "web", "GET", "/hello/ada", None),
        (&intruder, "intruder", "GET", "/hello/ada", None),
        (&web, "web", "POST", "/orders", Some(r#"{"item":"tea"}"#)),
        (&web, "web", "GET", "/nope", None),
        (&web, "web", "DELETE", "/hello/ada", None),
    ];
    for (client, name, method, path, json) in exchanges {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(json.map_or_else(mesh_core::body::empty, mesh_core::body::full))?;
        let res = client.clone().oneshot(req).await?;
        let status = res.status();
        let refusal = res.headers().get("mesh-error").cloned();
        let body = res.into_body().collect().await?.to_bytes();
        let answer = match (status.as_u16(), refusal) {
            (_, Some(reason)) => format!("from the policy (mesh-error: {})", reason.to_str()?),
            (404 | 405, None) => "from axum".to_owned(),
            (_, None) => text(&body),
        };
        println!("{method} {path} as {name}: {} {answer}", status.as_u16());
        if path == "/orders" {
            let n = calls.load(Ordering::Relaxed);
            println!(
                "  the stock service answered 503, 503, then 200: {} retries",
                n - 1
            );
        }
    }

    let mut metrics = String::new();
    encode(&mut metrics, &registry)?;
    println!("\nthe app's series in /metrics:");
    for line in metrics.lines().filter(|l| {
        [
            "request_total{",
            "response_total{",
            "inbound_http_authz_deny_total{",
        ]
        .iter()
        .any(|family| l.starts_with(family))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    stop.trigger();
    server_task.await?;
    stock_task.await?;
    Ok(())
}

/// A body as quoted text.
fn text(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(body);
    if text.starts_with('{') {
        text.into_owned()
    } else {
        format!("{text:?}")
    }
}
