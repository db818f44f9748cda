//! An outbound route's `hostnames` decide which requests it takes, and
//! rank before its rules' matches, as in Linkerd: a route written for one
//! name of a service does not catch requests that call it by another, and
//! of the routes a request's host fits, the most specific hostname wins.
//! Each rule here marks its responses with its name, so a request through
//! the sidecar shows which rule it took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use mesh_examples::sidecar::Running;
use support::*;

/// An `HTTPRoute` for `emoji` named `name`, with `hostnames` (YAML flow,
/// empty for none) and one rule of its name with `matches`, marking its
/// responses.
fn route(name: &str, hostnames: &str, matches: &str) -> String {
    let hostnames = if hostnames.is_empty() {
        String::new()
    } else {
        format!("  hostnames: {hostnames}\n")
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
{hostnames}  rules:
  - name: {name}
    matches: {matches}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// A sidecar whose outbound services `emoji` and
/// `emoji.emojivoto.svc.cluster.local` both reach one application, with
/// the routes `routes`.
async fn sidecar_with(routes: &[String]) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, routes.join("---\n")).unwrap();
    let (app, _) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         \x20   - name: emoji.emojivoto.svc.cluster.local\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    (dir, sidecar)
}

/// The status and the rule (`-` for none) of a GET of `path` for `host`
/// through the sidecar's outbound listener.
async fn rule_for(sidecar: &Running, host: &str, path: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{}{path}", sidecar.outbound))
        .header("host", host)
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let rule = res
        .headers()
        .get("x-rule")
        .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
    (res.status(), rule)
}

#[tokio::test]
async fn a_route_takes_only_requests_for_its_hostnames_and_a_matching_hostname_ranks_first() {
    let exact = "[{path: {type: Exact, value: /api/vote}}]";
    let (_dir, sidecar) = sidecar_with(&[
        // Its match is the least specific, but its hostname is the
        // request's: it outranks the exact matches of the others.
        route(
            "short-name",
            "[emoji]",
            "[{path: {type: PathPrefix, value: /api}}]",
        ),
        // The most specific match, for a name no request here uses.
        route("elsewhere", "[books.example]", exact),
        // For any host: ranks below a route whose hostname matches.
        route(
            "any-host",
            "",
            "[{path: {type: Exact, value: /api/vote}}, {path: {type: PathPrefix, value: /other}}]",
        ),
        // A wildcard for the long names: below an exact hostname.
        route(
            "wildcard",
            "['*.emojivoto.svc.cluster.local']",
            "[{path: {type: PathPrefix, value: /}}]",
        ),
        route(
            "long-name",
            "[emoji.emojivoto.svc.cluster.local]",
            "[{path: {type: PathPrefix, value: /exact}}]",
        ),
    ])
    .await;
    let long = "emoji.emojivoto.svc.cluster.local";
    for (host, path, expected) in [
        ("emoji", "/api/vote", "short-name"),
        ("EMOJI:80", "/api/list", "short-name"),
        ("emoji", "/other", "any-host"),
        (long, "/api/vote", "wildcard"),
        (long, "/exact/one", "long-name"),
        ("Emoji.Emojivoto.Svc.Cluster.Local.", "/exact", "long-name"),
    ] {
        assert_eq!(
            rule_for(&sidecar, host, path).await,
            (StatusCode::OK, expected.to_owned()),
            "{host} {path}"
        );
    }
    // No route for `emoji` has `/nowhere`, and the service is served its
    // HTTPRoutes alone: the mesh's 404.
    assert_eq!(
        rule_for(&sidecar, "emoji", "/nowhere").await,
        (StatusCode::NOT_FOUND, "-".to_owned())
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_request_for_a_name_none_of_the_routes_lists_gets_the_mesh_404() {
    let (_dir, sidecar) = sidecar_with(&[route(
        "long-name-only",
        "[emoji.emojivoto.svc.cluster.local]",
        "[{path: {type: PathPrefix, value: /}}]",
    )])
    .await;
    assert_eq!(
        rule_for(&sidecar, "emoji.emojivoto.svc.cluster.local", "/list").await,
        (StatusCode::OK, "long-name-only".to_owned())
    );
    let req = Request::get(format!("http://{}/list", sidecar.outbound))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["mesh-error"], "no route");
    stop(sidecar).await;
}
