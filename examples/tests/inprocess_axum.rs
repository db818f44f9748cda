//! The mesh's layers in an axum service, as `examples/inprocess_axum.rs`
//! wraps its router: one `ServiceBuilder` given to `Router::layer`, the
//! router served by mesh-core's `Server` behind strict mutual TLS, and a
//! handler that calls an upstream through mesh-retry over mesh-tls. Real
//! sockets, real TLS with certificates from a generated CA, and the
//! registry scraped from mesh-core's admin server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::{WAIT_BOUND, scrape_until, series};

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
    Extension, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh_core::{
    BoxError, ConnectionInfo, Identity,
    admin::{Admin, Readiness},
    body::{BoxBody, Proxied},
    client::{Client, ClientConfig},
    serve::{
        Server, ServerConfig,
        shutdown::{self, Shutdown, ShutdownTrigger},
    },
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
use prometheus_client::registry::Registry;
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneSyncService};

/// The port the policy's Server selects and the metrics label.
const PORT: u16 = 8080;
const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const INTRUDER: &str = "spiffe://example.org/ns/shop/sa/intruder";
const ORDERS: &str = "spiffe://example.org/ns/shop/sa/orders";
const STOCK: &str = "spiffe://example.org/ns/shop/sa/stock";

/// The example's policy: only `web` may call the app.
const POLICY: &str = include_str!("../inprocess_axum_policy.yaml");

type Upstream = BoxCloneSyncService<Request<Full<Bytes>>, Response<axum::body::Body>, BoxError>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    stock: SocketAddr,
    /// Requests that reached a handler.
    handled: Arc<AtomicUsize>,
}

/// Names the caller twice: from the connection the mesh's server put on
/// the request (axum's `Extension` extractor) and from the header
/// `ClientIdLayer` set.
async fn whoami(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Extension(conn): Extension<ConnectionInfo>,
    headers: HeaderMap,
) -> String {
    app.handled.fetch_add(1, Ordering::Relaxed);
    let peer = conn.peer_identity().map(Identity::to_string);
    let header = headers.get_all(MESH_CLIENT_ID).iter().collect::<Vec<_>>();
    format!("hello {name}: {peer:?} {header:?}")
}

#[derive(serde::Deserialize)]
struct Order {
    item: String,
}

async fn order(
    State(app): State<AppState>,
    Json(order): Json<Order>,
) -> Result<String, (StatusCode, String)> {
    app.handled.fetch_add(1, Ordering::Relaxed);
    let req = Request::get(format!("http://{}/stock/{}", app.stock, order.item))
        .body(Full::default())
        .unwrap();
    let res = app
        .upstream
        .oneshot(req)
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Ok(format!(
        "{} {}",
        status.as_u16(),
        String::from_utf8_lossy(&body)
    ))
}

/// The app, its upstream and its admin server, running until dropped.
struct Mesh {
    ca: CertificateAuthority,
    app: SocketAddr,
    admin: SocketAddr,
    /// Attempts that reached the upstream.
    upstream_calls: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
    _stop: ShutdownTrigger,
}

fn store(ca: &CertificateAuthority, id: &str) -> CredentialStore {
    let creds = ca
        .issue(&id.parse().unwrap(), Duration::from_secs(3600))
        .unwrap()
        .credentials()
        .unwrap();
    CredentialStore::with_credentials(StoreConfig::default(), creds).unwrap()
}

fn strict(store: CredentialStore) -> TlsAccept {
    TlsAccept::new(store, AcceptConfig::with_mode(InboundMode::Strict))
}

/// A strict mTLS upstream whose first `failures` calls get 503.
async fn stock(
    ca: &CertificateAuthority,
    failures: usize,
    signal: Shutdown,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let n = counted.fetch_add(1, Ordering::Relaxed);
        let mut res = Response::new(mesh_core::body::full(format!("{} left", req.uri().path())));
        if n < failures {
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        async move { Ok::<_, Infallible>(res) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ServerConfig::default()).with_accept(strict(store(ca, STOCK)));
    tokio::spawn(server.serve_http(listener, svc, signal));
    (addr, calls)
}

impl Mesh {
    async fn start(upstream_failures: usize) -> Self {
        let ca = CertificateAuthority::generate("example.org".parse().unwrap()).unwrap();
        let (stop, signal) = shutdown::channel();
        let (stock, upstream_calls) = stock(&ca, upstream_failures, signal.clone()).await;

        let orders = store(&ca, ORDERS);
        let config = ClientConfig::default();
        let targets = TlsTargets::new(OutboundTls::Plaintext)
            .with_endpoint(stock, OutboundTls::Mtls(STOCK.parse().unwrap()));
        let connector = TlsConnector::new(&config, orders.clone(), targets).unwrap();
        let timeouts = Timeouts {
            request: Some(Duration::from_secs(10)),
            per_try: Some(Duration::from_secs(5)),
            idle: None,
        };
        let retry = RouteStackLayer::new(
            RetryPolicy::default(),
            timeouts,
            Arc::new(Budget::default()),
        );
        let upstream = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|res: Response<_>| res.map(axum::body::Body::new))
                .layer(retry)
                .layer(connector.retire_layer())
                .map_response(|res: Response<Incoming>| res.map(Proxied::from))
                .service(Client::<ReplayBody<Full<Bytes>>, _>::with_connector(
                    &config, connector,
                )),
        );

        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        let policy = PolicyStore::new(
            Workload::new("shop").with_label("app", "orders"),
            PolicyConfig::default(),
            PolicyMetrics::register(&mut registry),
        );
        policy
            .reload(&[PolicySource::new("orders-policy.yaml", POLICY)])
            .unwrap();
        let handled = Arc::new(AtomicUsize::new(0));
        let mesh = ServiceBuilder::new()
            .layer(AuthorizeLayer::new(policy).with_port(PORT))
            .layer(MetricsLayer::inbound(&http).with_target_port(PORT))
            .layer(ClientIdLayer::new());
        let router = Router::new()
            .route("/hello/{name}", get(whoami))
            .route("/orders", post(order))
            .with_state(AppState {
                upstream,
                stock,
                handled: handled.clone(),
            })
            .layer(mesh);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = listener.local_addr().unwrap();
        let server = Server::new(ServerConfig::default()).with_accept(strict(orders));
        tokio::spawn(server.serve_http(listener, router, signal.clone()));

        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let admin_server = Admin::new(registry, Readiness::new());
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(
            admin_listener,
            admin_server,
            signal,
        ));
        Self {
            ca,
            app,
            admin,
            upstream_calls,
            handled,
            _stop: stop,
        }
    }

    /// Sends a request to the app as `identity`, over mutual TLS, and
    /// returns its status, `mesh-error` header and body.
    async fn send(
        &self,
        identity: &str,
        req: http::request::Builder,
        body: &'static str,
    ) -> (StatusCode, Option<String>, String) {
        let config = ClientConfig::default();
        let targets = TlsTargets::new(OutboundTls::Plaintext)
            .with_endpoint(self.app, OutboundTls::Mtls(ORDERS.parse().unwrap()));
        let connector = TlsConnector::new(&config, store(&self.ca, identity), targets).unwrap();
        let client = Client::<BoxBody, _>::with_connector(&config, connector);
        let path = req.uri_ref().unwrap().path().to_owned();
        let req = req
            .uri(format!("http://{}{path}", self.app))
            .body(mesh_core::body::full(body))
            .unwrap();
        let res = tokio::time::timeout(WAIT_BOUND, client.oneshot(req))
            .await
            .expect("the app answers")
            .unwrap();
        let status = res.status();
        let error = res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, error, String::from_utf8(body.to_vec()).unwrap())
    }
}

fn get_(path: &str) -> http::request::Builder {
    Request::get(path)
}

#[tokio::test]
async fn an_authorized_caller_reaches_the_handler_which_learns_its_identity() {
    let mesh = Mesh::start(0).await;
    // A forged header is dropped: the handler sees only what mTLS proved.
    let req = get_("/hello/ada").header(MESH_CLIENT_ID, INTRUDER);
    let (status, error, body) = mesh.send(WEB, req, "").await;
    assert_eq!((status, error), (StatusCode::OK, None), "{body}");
    assert_eq!(body, format!("hello ada: Some({WEB:?}) [{WEB:?}]"));
    assert_eq!(mesh.handled.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_unauthorized_caller_gets_the_policys_403_and_no_handler_runs() {
    let mesh = Mesh::start(0).await;
    for (method, path) in [("GET", "/hello/ada"), ("POST", "/orders"), ("GET", "/nope")] {
        let req = Request::builder().method(method).uri(path);
        let (status, error, body) = mesh.send(INTRUDER, req, "{}").await;
        // The policy's answer names its reason in `mesh-error`; axum's
        // own refusals carry none.
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(
            error.as_deref(),
            Some("unauthorized request"),
            "{method} {path}"
        );
    }
    assert_eq!(mesh.handled.load(Ordering::Relaxed), 0);
    let metrics = scrape_until(mesh.admin, |m| {
        series(m, "inbound_http_authz_deny_total", &[]) == 3
    })
    .await;
    assert_eq!(
        series(
            &metrics,
            "inbound_http_authz_deny_total",
            &[r#"srv_name="orders-http""#, r#"tls="true""#]
        ),
        3,
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_count_the_request_with_linkerds_labels() {
    let mesh = Mesh::start(0).await;
    let (status, _, _) = mesh.send(WEB, get_("/hello/ada"), "").await;
    assert_eq!(status, StatusCode::OK);
    let labels = [
        r#"direction="inbound""#,
        r#"target_addr="127.0.0.1:8080""#,
        r#"target_port="8080""#,
        r#"tls="true""#,
        &format!(r#"client_id="{WEB}""#),
        r#"srv_kind="server""#,
        r#"srv_name="orders-http""#,
        r#"authz_kind="authorizationpolicy""#,
        r#"authz_name="orders-from-web""#,
    ];
    let ok = [
        &labels[..],
        &[r#"status_code="200""#, r#"classification="success""#],
    ]
    .concat();
    let metrics = scrape_until(mesh.admin, |m| series(m, "response_total", &ok) == 1).await;
    assert_eq!(series(&metrics, "request_total", &labels), 1, "{metrics}");
    assert_eq!(series(&metrics, "response_total", &ok), 1, "{metrics}");
    assert_eq!(
        series(&metrics, "response_latency_ms_count", &labels),
        1,
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upstream_that_fails_twice_is_retried_and_the_handler_sees_its_success() {
    let mesh = Mesh::start(2).await;
    let req = Request::post("/orders").header("content-type", "application/json");
    let (status, _, body) = mesh.send(WEB, req, r#"{"item":"tea"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "200 /stock/tea left");
    assert_eq!(mesh.upstream_calls.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn axums_own_404_and_405_pass_through_the_metrics_layer() {
    let mesh = Mesh::start(0).await;
    let (status, error, _) = mesh.send(WEB, get_("/nope"), "").await;
    assert_eq!((status, error), (StatusCode::NOT_FOUND, None));
    let req = Request::delete("/hello/ada");
    let (status, error, _) = mesh.send(WEB, req, "").await;
    assert_eq!((status, error), (StatusCode::METHOD_NOT_ALLOWED, None));
    assert_eq!(mesh.handled.load(Ordering::Relaxed), 0);

    let caller = format!(r#"client_id="{WEB}""#);
    let counted = |m: &str, code: &str| {
        series(
            m,
            "response_total",
            &[&caller, r#"srv_name="orders-http""#, code],
        )
    };
    let metrics = scrape_until(mesh.admin, |m| {
        counted(m, r#"status_code="404""#) == 1 && counted(m, r#"status_code="405""#) == 1
    })
    .await;
    assert_eq!(counted(&metrics, r#"status_code="404""#), 1, "{metrics}");
    assert_eq!(counted(&metrics, r#"status_code="405""#), 1, "{metrics}");
    assert_eq!(
        series(&metrics, "request_total", &[&caller]),
        2,
        "{metrics}"
    );
}
