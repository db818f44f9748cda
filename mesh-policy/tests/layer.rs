//! The HTTP layer, driven in process with the `ConnectionInfo` a server
//! would insert: identities, extensions, refusals and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{convert::Infallible, net::SocketAddr};

use http::{Request, Response, StatusCode};
use mesh_core::{
    ConnectionInfo, Identity, RouteId, Tls,
    conn::NoTlsReason,
    error::{GRPC_STATUS, MESH_ERROR},
    labels::Authorized,
};
use mesh_policy::{AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore};
use prometheus_client::{encoding::text::encode, registry::Registry};
use support::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn info(remote: &str, tls: Tls) -> ConnectionInfo {
    ConnectionInfo {
        local_addr: "10.0.0.1:8080".parse::<SocketAddr>().unwrap(),
        remote_addr: remote.parse().unwrap(),
        tls,
    }
}

fn mutual(id: &str) -> Tls {
    Tls::Mutual {
        peer: Identity::parse(id).unwrap(),
    }
}

fn store(registry: &mut Registry) -> PolicyStore {
    let store = PolicyStore::new(
        books_workload(),
        PolicyConfig::default(),
        PolicyMetrics::register(registry),
    );
    store
        .reload(&[PolicySource::new("books.yaml", BOOKS)])
        .unwrap();
    store
}

/// A backend that echoes what authorization told it.
async fn backend(req: Request<()>) -> Result<Response<String>, Infallible> {
    let authorized = req.extensions().get::<Authorized>().cloned();
    let route = req.extensions().get::<RouteId>().cloned();
    Ok(Response::new(format!("{authorized:?} {route:?}")))
}

async fn call(store: &PolicyStore, req: Request<()>) -> Response<String> {
    ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store.clone()))
        .service(service_fn(backend))
        .oneshot(req)
        .await
        .unwrap()
}

fn get(path: &str, info: Option<ConnectionInfo>) -> Request<()> {
    let mut req = Request::get(path).body(()).unwrap();
    if let Some(info) = info {
        req.extensions_mut().insert(info);
    }
    req
}

#[tokio::test]
async fn an_allowed_identity_reaches_the_service_with_the_policy_named() {
    let store = store(&mut Registry::default());
    let req = get(
        "/authors/7",
        Some(info(
            "10.1.1.1:4000",
            mutual("spiffe://cluster.local/ns/booksapp/sa/traffic"),
        )),
    );
    let rsp = call(&store, req).await;
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(
        rsp.body(),
        concat!(
            r#"Some(Authorized { server: "books-http", "#,
            r#"server_kind: ResourceKind { group: "policy.linkerd.io", kind: "server" }, "#,
            r#"server_port: Some(8080), route: "authors-get", route_kind: Some(ResourceKind { group: "policy.linkerd.io", kind: "HTTPRoute" }), "#,
            r#"authz: "authors-get-policy", "#,
            r#"authz_kind: ResourceKind { group: "policy.linkerd.io", kind: "authorizationpolicy" }, "#,
            r#"audit: false }) Some(RouteId("authors-get"))"#,
        )
    );
}

#[tokio::test]
async fn denied_and_unrouted_requests_get_the_mesh_responses() {
    let store = store(&mut Registry::default());
    let plaintext = info(
        "10.1.1.1:4000",
        Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
    );

    let rsp = call(&store, get("/authors", Some(plaintext.clone()))).await;
    assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
    assert!(rsp.headers().contains_key(MESH_ERROR));
    assert_eq!(rsp.body(), "", "the service was not called");

    let rsp = call(&store, get("/nowhere", Some(plaintext.clone()))).await;
    assert_eq!(rsp.status(), StatusCode::NOT_FOUND);

    let grpc = |path: &str| {
        let mut req = Request::post(path)
            .header("content-type", "application/grpc")
            .header("x-role", "admin")
            .body(())
            .unwrap();
        req.extensions_mut().insert(plaintext.clone());
        req
    };
    let rsp = call(&store, grpc("/authors")).await;
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()[GRPC_STATUS], "7");
    let rsp = call(&store, grpc("/nowhere")).await;
    assert_eq!(rsp.headers()[GRPC_STATUS], "5");
}

#[tokio::test]
async fn without_connection_info_a_covered_port_denies() {
    let store = store(&mut Registry::default());
    // Authorized as port 8080 (books-http); no ConnectionInfo: no identity, no address.
    let rsp = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store.clone()).with_port(9100))
        .service(service_fn(backend))
        .oneshot(get("/metrics", None))
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
    // An uncovered port with the default policy allows it.
    let rsp = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store).with_port(3000))
        .service(service_fn(backend))
        .oneshot(get("/", None))
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_configured_port_overrides_the_local_port() {
    let store = store(&mut Registry::default());
    let req = get(
        "/",
        Some(info(
            "203.0.113.9:4000",
            Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
        )),
    );
    let rsp = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store).with_port(9990))
        .service(service_fn(backend))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert!(
        rsp.body().contains(concat!(
            r#"server: "books-admin", "#,
            r#"server_kind: ResourceKind { group: "policy.linkerd.io", kind: "server" }, "#,
            r#"server_port: Some(9990), route: "default", route_kind: Some(ResourceKind { group: "", kind: "default" }), "#,
            r#"authz: "audit", authz_kind: ResourceKind { group: "", kind: "default" }, "#,
            r#"audit: true"#,
        )),
        "{}",
        rsp.body()
    );
}

#[tokio::test]
async fn decisions_are_counted_with_bounded_labels() {
    let mut registry = Registry::default();
    let store = store(&mut registry);
    let webapp = info(
        "10.1.1.1:4000",
        mutual("webapp.booksapp.serviceaccount.identity.linkerd.cluster.local"),
    );
    let plaintext = info(
        "10.1.1.1:4000",
        Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
    );
    call(&store, get("/authors", Some(webapp.clone()))).await;
    call(&store, get("/authors", Some(webapp))).await;
    call(&store, get("/authors", Some(plaintext.clone()))).await;
    call(&store, get("/nowhere", Some(plaintext))).await;

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        r#"inbound_http_authz_allow_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="authors-get",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="authors-get-policy",tls="true"} 2"#,
        r#"inbound_http_authz_deny_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="authors-get",tls="no_identity"} 1"#,
        r#"inbound_http_route_not_found_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",tls="no_identity"} 1"#,
        r#"inbound_authz_rule_hits_total{rule_kind="authorizationpolicy",rule_name="authors-get-policy",srv_kind="server",srv_name="books-http",result="allow"} 2"#,
        r#"inbound_authz_rule_hits_total{rule_kind="default",rule_name="deny",srv_kind="server",srv_name="books-http",result="deny"} 1"#,
        r#"inbound_authz_rule_hits_total{rule_kind="server",rule_name="books-http",srv_kind="server",srv_name="books-http",result="not_found"} 1"#,
        r#"inbound_policy_reloads_total{result="ok"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    // No label value comes from the request: no path, no address.
    assert!(!text.contains("nowhere") && !text.contains("10.1.1.1"));
}

#[tokio::test]
async fn a_tls_client_without_a_certificate_is_counted_as_tls() {
    // linkerd2-proxy labels a TLS connection `tls="true"` whether or not
    // the client presented a certificate; `no_identity` is for plaintext.
    let mut registry = Registry::default();
    let store = store(&mut registry);
    let no_cert = info("10.1.1.1:4000", Tls::NoClientCert);
    call(&store, get("/authors", Some(no_cert.clone()))).await;
    call(&store, get("/nowhere", Some(no_cert))).await;

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for line in [
        r#"inbound_http_authz_deny_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="authors-get",tls="true"} 1"#,
        r#"inbound_http_route_not_found_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",tls="true"} 1"#,
        r#"inbound_http_authz_deny_total{srv_group="policy.linkerd.io",srv_kind="server",srv_name="books-http",srv_port="8080",route_group="policy.linkerd.io",route_kind="HTTPRoute",route_name="authors-get",tls="no_identity"} 0"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}
