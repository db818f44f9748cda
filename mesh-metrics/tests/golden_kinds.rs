//! Inbound `request_total`, `response_total` and `response_latency_ms`
//! carry Linkerd's labels of the policy that admitted a request (the
//! group, kind and name of the Server, with its port, of the route and of
//! the authorization) and of the address the connection came to
//! (`target_addr`, `target_ip`, `target_port`), in linkerd2-proxy's order:
//! resources of one name and different kinds count in series of their
//! own, and `linkerd viz stat-inbound` finds the labels it groups by.
//! Served over real connections on 127.0.0.1, whose server inserts each
//! request's `ConnectionInfo`.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use mesh_core::{
    labels::{Authorized, DstService, ResourceKind},
    serve::{Server, ServerConfig, shutdown},
};
use mesh_metrics::{HttpMetrics, MetricsLayer};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower::{ServiceBuilder, service_fn};

static SERVER: ResourceKind = ResourceKind {
    group: "policy.linkerd.io",
    kind: "server",
};
static AUTHORIZATION_POLICY: ResourceKind = ResourceKind {
    group: "policy.linkerd.io",
    kind: "authorizationpolicy",
};
static SERVER_AUTHORIZATION: ResourceKind = ResourceKind {
    group: "policy.linkerd.io",
    kind: "serverauthorization",
};
static HTTP_ROUTE: ResourceKind = ResourceKind {
    group: "policy.linkerd.io",
    kind: "HTTPRoute",
};

/// What authorization would insert for a request to `path`: each path
/// names a policy that admitted it.
fn decided(path: &str) -> Option<Authorized> {
    let authorized = |server_kind, server_port, authz_kind, authz: &str| Authorized {
        server: Arc::from("all-unauthenticated"),
        server_kind,
        server_port,
        route: Arc::from("default"),
        route_kind: Some(&ResourceKind::DEFAULT),
        authz: Arc::from(authz),
        authz_kind,
        audit: false,
    };
    Some(match path {
        // A Server named as the default policy is, and the default server.
        "/server" => authorized(&SERVER, Some(8080), &ResourceKind::DEFAULT, "deny"),
        "/default" => authorized(&ResourceKind::DEFAULT, None, &ResourceKind::DEFAULT, "deny"),
        // Two authorizations of one name, of two kinds.
        "/policy" => authorized(&SERVER, Some(8080), &AUTHORIZATION_POLICY, "clients"),
        "/serverauthz" => authorized(&SERVER, Some(8080), &SERVER_AUTHORIZATION, "clients"),
        "/route" => Authorized {
            route: Arc::from("list"),
            route_kind: Some(&HTTP_ROUTE),
            ..authorized(&SERVER, Some(8080), &AUTHORIZATION_POLICY, "clients")
        },
        _ => return None,
    })
}

/// Serves `layer` on a listener of 127.0.0.1, the app answering `ok`
/// after the policy of [`decided`] is inserted; returns its address.
async fn serve(layer: MetricsLayer, signal: &shutdown::Shutdown) -> SocketAddr {
    let app = ServiceBuilder::new()
        .map_request(|mut req: Request<Incoming>| {
            if let Some(authorized) = decided(req.uri().path()) {
                req.extensions_mut().insert(authorized);
            }
            req.extensions_mut()
                .insert(DstService(Arc::from("not-read-inbound")));
            req
        })
        .layer(layer)
        .service(service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("ok")))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, app, signal.clone()));
    addr
}

/// Sends a GET for each of `paths` to `addr`, reading each response to
/// its end, so that each is counted before the next is sent.
async fn send(addr: SocketAddr, paths: &[&str]) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for path in paths {
        let res = client
            .request(
                Request::get(format!("http://{addr}{path}"))
                    .body(Empty::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn assert_lines(text: &str, lines: &[String]) {
    for line in lines {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

/// The labels before the policy's: the direction, the target and a
/// plaintext client's TLS labels.
fn head(port: u16) -> String {
    format!(
        r#"direction="inbound",target_addr="127.0.0.1:{port}",target_ip="127.0.0.1",target_port="{port}",tls="no_identity",no_tls_reason="no_tls_from_remote""#
    )
}

const DEFAULT_ROUTE: &str = r#"route_group="",route_kind="default",route_name="default""#;

#[tokio::test]
async fn a_server_and_the_default_server_of_one_name_count_apart() {
    let (_trigger, signal) = shutdown::channel();
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let addr = serve(MetricsLayer::inbound(&metrics), &signal).await;
    send(
        addr,
        &["/server", "/server", "/default", "/default", "/default"],
    )
    .await;

    let head = head(addr.port());
    let server = r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="all-unauthenticated",srv_port="8080""#;
    let default = r#"srv_group="",srv_kind="default",srv_name="all-unauthenticated""#;
    let authz = r#"authz_group="",authz_kind="default",authz_name="deny""#;
    assert_lines(
        &exposition(&registry),
        &[
            format!("request_total{{{head},{server},{DEFAULT_ROUTE},{authz}}} 2\n"),
            format!("request_total{{{head},{default},{DEFAULT_ROUTE},{authz}}} 3\n"),
            format!(
                "response_total{{{head},{server},{DEFAULT_ROUTE},{authz},status_code=\"200\",classification=\"success\"}} 2\n"
            ),
            format!(
                "response_total{{{head},{default},{DEFAULT_ROUTE},{authz},status_code=\"200\",classification=\"success\"}} 3\n"
            ),
            format!(
                "response_latency_ms_count{{{head},{server},{DEFAULT_ROUTE},{authz},status_code=\"200\"}} 2\n"
            ),
            format!(
                "response_latency_ms_count{{{head},{default},{DEFAULT_ROUTE},{authz},status_code=\"200\"}} 3\n"
            ),
        ],
    );
}

#[tokio::test]
async fn an_authorization_policy_and_a_server_authorization_of_one_name_count_apart() {
    let (_trigger, signal) = shutdown::channel();
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let addr = serve(MetricsLayer::inbound(&metrics), &signal).await;
    send(
        addr,
        &["/policy", "/serverauthz", "/serverauthz", "/serverauthz"],
    )
    .await;

    let head = head(addr.port());
    let server = r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="all-unauthenticated",srv_port="8080""#;
    let policy =
        r#"authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="clients""#;
    let server_authz =
        r#"authz_group="policy.linkerd.io",authz_kind="serverauthorization",authz_name="clients""#;
    let ok = r#"status_code="200",classification="success""#;
    assert_lines(
        &exposition(&registry),
        &[
            format!("request_total{{{head},{server},{DEFAULT_ROUTE},{policy}}} 1\n"),
            format!("request_total{{{head},{server},{DEFAULT_ROUTE},{server_authz}}} 3\n"),
            format!("response_total{{{head},{server},{DEFAULT_ROUTE},{policy},{ok}}} 1\n"),
            format!("response_total{{{head},{server},{DEFAULT_ROUTE},{server_authz},{ok}}} 3\n"),
        ],
    );
}

#[tokio::test]
async fn the_target_port_is_the_one_servers_are_matched_against_when_a_layer_names_it() {
    let (_trigger, signal) = shutdown::channel();
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let inbound = MetricsLayer::inbound(&metrics);
    // A sidecar's listener forwards to the application's port 8080, the
    // port its authorization matches Servers against; a plain server
    // beside it keeps the port it accepted on.
    let forwarding = serve(inbound.clone().with_target_port(8080), &signal).await;
    let plain = serve(inbound, &signal).await;
    send(forwarding, &["/route", "/route"]).await;
    send(plain, &["/route"]).await;
    // A request that no policy decided: the target and TLS labels alone.
    send(plain, &["/unauthorized"]).await;

    let policy = r#"srv_group="policy.linkerd.io",srv_kind="server",srv_name="all-unauthenticated",srv_port="8080",route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="list",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="clients""#;
    let text = exposition(&registry);
    assert_lines(
        &text,
        &[
            format!("request_total{{{},{policy}}} 2\n", head(8080)),
            format!("request_total{{{},{policy}}} 1\n", head(plain.port())),
            format!("request_total{{{}}} 1\n", head(plain.port())),
        ],
    );
    // Inbound series name the server, never a destination service.
    assert!(!text.contains("dst_service"), "{text}");
}

#[tokio::test]
async fn outbound_series_keep_their_labels() {
    let (_trigger, signal) = shutdown::channel();
    let mut registry = Registry::default();
    let metrics = HttpMetrics::register(&mut registry);
    let addr = serve(MetricsLayer::outbound(&metrics), &signal).await;
    send(addr, &["/route"]).await;
    assert_lines(
        &exposition(&registry),
        &[
            "request_total{direction=\"outbound\",dst_service=\"not-read-inbound\"} 1\n".into(),
            "response_total{direction=\"outbound\",dst_service=\"not-read-inbound\",status_code=\"200\",classification=\"success\"} 1\n".into(),
        ],
    );
}
