//! Ingress mode: the sidecar of an ingress controller routes each request
//! by the destination-override header the ingress sets
//! (`mesh-dst-override`, or Linkerd's `l5d-dst-override`), not by its
//! `Host`, which is the public name the ingress was asked for. The header
//! never reaches the service; a sidecar not in ingress mode ignores it
//! and routes by authority.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_examples::sidecar::Running;
use support::*;

/// An `HTTPRoute` on `emoji`: requests under `/api` are marked by a
/// request header, so the upstream shows which service's routes they took.
const EMOJI_API: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-api, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-route, value: emoji-api}]
";

/// An upstream that answers with its name, then the request's headers,
/// one `name: value` a line.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, move |req: Request<Incoming>| async move {
        let mut text = format!("{name}\n");
        for (header, value) in req.headers() {
            text.push_str(&format!("{header}: {}\n", value.to_str().unwrap_or("?")));
        }
        Ok(Response::new(full(text)))
    });
    addr
}

/// A plaintext sidecar with the outbound services `emoji`, `voting` and,
/// when given, `shop.example.com`; in ingress mode or not.
fn start(
    ingress_mode: bool,
    emoji: SocketAddr,
    voting: SocketAddr,
    shop: Option<SocketAddr>,
    routes: &std::path::Path,
) -> Running {
    let shop = shop.map_or(String::new(), |shop| {
        format!("    - name: shop.example.com\n      endpoints: [{shop}]\n")
    });
    sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  ingress_mode: {ingress_mode}\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{emoji}]\n\
         \x20   - name: voting\n      endpoints: [{voting}]\n{shop}\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        routes.display()
    ))
}

/// Sends `GET path` to the sidecar's outbound listener with
/// `Host: shop.example.com` and `headers`; the status and the body.
async fn get(outbound: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    get_from(outbound, "shop.example.com", path, headers).await
}

/// [`get`], with `Host: host`.
async fn get_from(
    outbound: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::get(format!("http://{outbound}{path}")).header("host", host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = http1().request(req.body(full("")).unwrap()).await.unwrap();
    let status = res.status();
    let mesh_error = res.headers().get("mesh-error").cloned();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    match mesh_error {
        Some(reason) => (status, format!("mesh-error: {}", reason.to_str().unwrap())),
        None => (status, body),
    }
}

/// The name of the upstream that answered, and whether it saw either
/// override header.
fn answered_by(body: &str) -> (&str, bool) {
    let name = body.lines().next().unwrap_or_default();
    let leaked = body.lines().any(|line| {
        line.starts_with("mesh-dst-override:") || line.starts_with("l5d-dst-override:")
    });
    (name, leaked)
}

fn routes_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let routes = dir.path().join("routes.yaml");
    std::fs::write(&routes, EMOJI_API).unwrap();
    routes
}

#[tokio::test]
async fn in_ingress_mode_the_override_header_picks_the_service_and_stays_in_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, voting) = (upstream("emoji").await, upstream("voting").await);
    let sidecar = start(true, emoji, voting, None, &routes_file(&dir));
    let outbound = sidecar.outbound;

    for (header, value) in [
        ("mesh-dst-override", "emoji"),
        ("mesh-dst-override", "emoji.:8080"),
        ("l5d-dst-override", "emoji:80"),
        ("l5d-dst-override", "EMOJI"),
    ] {
        let (status, body) = get(outbound, "/api/vote", &[(header, value)]).await;
        assert_eq!(status, StatusCode::OK, "{header}: {value}: {body}");
        assert_eq!(
            answered_by(&body),
            ("emoji", false),
            "{header}: {value}: {body}"
        );
        // The Host is the one the ingress sent: only the routing changed.
        assert!(body.contains("host: shop.example.com\n"), "{body}");
    }

    // Both headers, naming one service: it gets the request, without either.
    let both = [
        ("mesh-dst-override", "voting"),
        ("l5d-dst-override", "voting:8080"),
    ];
    let (status, body) = get(outbound, "/", &both).await;
    assert_eq!(
        (status, answered_by(&body)),
        (StatusCode::OK, ("voting", false)),
        "{body}"
    );

    // The chosen service's routes apply: emoji's HTTPRoute marks /api.
    let (_, body) = get(outbound, "/api/list", &[("mesh-dst-override", "emoji")]).await;
    assert_eq!(answered_by(&body), ("emoji", false), "{body}");
    assert!(body.contains("x-route: emoji-api\n"), "{body}");
    let (_, body) = get(outbound, "/api/list", &[("mesh-dst-override", "voting")]).await;
    assert_eq!(answered_by(&body), ("voting", false), "{body}");
    assert!(!body.contains("x-route:"), "{body}");
    // What none of emoji's routes matches gets the no-route answer, as in
    // Linkerd: a service's HTTPRoutes replace its own routing.
    let (status, body) = get(outbound, "/", &[("mesh-dst-override", "emoji")]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "mesh-error: no route")
    );

    // Over HTTP/2, with an :authority that is no service.
    let req = Request::get("http://shop.example.com/")
        .header("l5d-dst-override", "voting")
        .body(full(""))
        .unwrap();
    let res = h2_via(outbound, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    assert_eq!(answered_by(&body), ("voting", false), "{body}");

    // Counted under the service the override chose, and its route.
    let metrics = scrape(sidecar.admin).await;
    let counted = |service: &str, route: &str, n: usize| {
        metrics.lines().any(|line| {
            line.starts_with("request_total{")
                && line.contains(&format!("dst_service=\"{service}\""))
                && line.contains(&format!("route_name=\"{route}\""))
                && line.ends_with(&format!(" {n}"))
        })
    };
    assert!(counted("emoji", "emoji-api", 5), "{metrics}");
    assert!(counted("voting", "default", 3), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn in_ingress_mode_an_override_naming_no_service_gets_the_unknown_service_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, voting) = (upstream("emoji").await, upstream("voting").await);
    let sidecar = start(true, emoji, voting, None, &routes_file(&dir));
    let outbound = sidecar.outbound;
    let no_route = (StatusCode::NOT_FOUND, "mesh-error: no route".to_owned());

    // What an unknown authority gets today.
    assert_eq!(get(outbound, "/", &[]).await, no_route);
    for headers in [
        &[(
            "mesh-dst-override",
            "web-svc.emojivoto.svc.cluster.local:80",
        )][..],
        &[("l5d-dst-override", "shop.example.com")],
        &[("mesh-dst-override", "")],
        // Two that disagree: neither is followed, so a client cannot add
        // the header its ingress does not set and pick the service.
        &[
            ("mesh-dst-override", "emoji"),
            ("l5d-dst-override", "voting"),
        ],
    ] {
        assert_eq!(get(outbound, "/", headers).await, no_route, "{headers:?}");
    }

    // Without the header, a request goes by its authority, as outside
    // ingress mode.
    let (_, body) = get_from(outbound, "voting:8080", "/", &[]).await;
    assert_eq!(answered_by(&body), ("voting", false), "{body}");
    stop(sidecar).await;
}

#[tokio::test]
async fn outside_ingress_mode_the_authority_decides_and_the_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (emoji, voting) = (upstream("emoji").await, upstream("voting").await);
    let shop = upstream("shop").await;
    let sidecar = start(false, emoji, voting, Some(shop), &routes_file(&dir));
    let outbound = sidecar.outbound;

    // The request the ingress sidecar sent to emoji goes to the service
    // its Host names, and the header does not go with it.
    for header in ["mesh-dst-override", "l5d-dst-override"] {
        let (status, body) = get(outbound, "/", &[(header, "emoji")]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(answered_by(&body), ("shop", false), "{header}: {body}");
    }
    let (_, body) = get_from(outbound, "voting", "/", &[("mesh-dst-override", "emoji")]).await;
    assert_eq!(answered_by(&body), ("voting", false), "{body}");
    stop(sidecar).await;
}
