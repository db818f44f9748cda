//! Outbound routes as the Gateway API and Linkerd define them: which
//! routes a service is served, and the answers of its redirects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

/// A sidecar routing `emoji` (at `app`) by the resources in `text`.
fn emoji_sidecar(
    app: std::net::SocketAddr,
    text: &str,
) -> (tempfile::TempDir, mesh_examples::sidecar::Running) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, text).unwrap();
    let running = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    (dir, running)
}

async fn get(
    sidecar: &mesh_examples::sidecar::Running,
    host: &str,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let req = Request::get(format!("http://{}{path}", sidecar.outbound))
        .header("host", host)
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap()
}

fn marked(name: &str, namespace: &str, path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{namespace}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// Routes of one service written with its namespace and without one
/// (applied with `kubectl -n emojivoto`, say) are the same service's
/// routes in the workload's namespace: both are served, ranked together.
/// The catch-all written without a namespace does not take `/a` from the
/// more specific rule, nor is either route dropped for the other.
#[tokio::test]
async fn routes_written_with_and_without_the_namespace_are_served_together() {
    let text = [
        marked("with-ns", ", namespace: emojivoto", "/a"),
        marked("without-ns", "", "/"),
    ]
    .join("---\n");
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    for (path, rule) in [("/a", "with-ns"), ("/b", "without-ns")] {
        let res = get(&sidecar, "emoji", path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}: {:?}", res.headers());
        assert_eq!(res.headers()["x-rule"], rule, "{path}");
    }
    stop(sidecar).await;
}

/// A `RequestRedirect`'s `Location` as the Gateway API builds it: a
/// scheme brings its own port, a port is left out when it is the scheme's
/// default, and a filter without either keeps the port the request was
/// addressed to, a new hostname included.
#[tokio::test]
async fn redirects_take_the_port_the_gateway_api_gives_them() {
    let redirect = |name: &str, fields: &str| {
        format!(
            "  - matches: [{{path: {{type: PathPrefix, value: /{name}}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{{fields}}}
"
        )
    };
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{}{}{}{}{}{}{}",
        redirect("https", "scheme: https"),
        redirect("http", "scheme: http"),
        redirect("p80", "port: 80"),
        redirect("p443", "port: 443"),
        redirect("host", "hostname: other"),
        redirect("full", "path: {type: ReplaceFullPath, replaceFullPath: /x}"),
        redirect(
            "pre",
            "path: {type: ReplacePrefixMatch, replacePrefixMatch: /}"
        ),
    );
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    for (host, path, location) in [
        ("emoji:8080", "/https/a", "https://emoji/https/a"),
        ("emoji:8080", "/http/a", "http://emoji/http/a"),
        ("emoji:8080", "/p80/a", "http://emoji/p80/a"),
        ("emoji:8080", "/p443/a", "http://emoji:443/p443/a"),
        ("emoji:8080", "/host/a?q=1", "http://other:8080/host/a?q=1"),
        ("emoji", "/host/a", "http://other/host/a"),
        ("emoji:8080", "/full/a?q", "http://emoji:8080/x?q"),
        ("emoji:8080", "/pre/a/b", "http://emoji:8080/a/b"),
        ("emoji:8080", "/pre", "http://emoji:8080/"),
    ] {
        let res = get(&sidecar, host, path).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{path}");
        assert_eq!(res.headers()["location"], location, "{host} {path}");
    }
    stop(sidecar).await;
}
