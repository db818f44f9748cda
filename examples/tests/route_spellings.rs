//! Routes of one outbound service written with `metadata.namespace` and
//! without it (applied with `kubectl -n emojivoto`, say): the sidecar
//! serves them together in the workload's namespace, ranks them as the
//! cluster would there, and `sidecar check` names what their merge sets
//! aside.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};

use http::{Request, StatusCode};
use support::{upstreams::check, *};

/// Writes `sidecar.yaml` into `dir`, for a workload in `emojivoto` with
/// the outbound service `emoji` at `app` and the routes in `routes`, and
/// `routes.yaml` beside it. Returns the configuration's path and the
/// routes'.
fn write_config(dir: &Path, app: std::net::SocketAddr, routes: &str) -> (PathBuf, PathBuf) {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    let config = dir.join("sidecar.yaml");
    std::fs::write(
        &config,
        format!(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: emoji\n      endpoints: [{app}]\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
             policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
            file.display()
        ),
    )
    .unwrap();
    (config, file)
}

/// An `HTTPRoute` `name` of `emoji` taking every path, its responses
/// marked with `x-rule: name`; `namespace` is `, namespace: emojivoto`
/// or nothing.
fn catch_all(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{namespace}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// Two routes that tie but for their names go to the first by
/// `{namespace}/{name}`: `b`, written without a namespace, is
/// `emojivoto/b` where the workload is, as in the cluster, so `a` takes
/// the requests, whichever is written first. (Ranked as `/b`, `b` took
/// them.)
#[tokio::test]
async fn a_route_without_a_namespace_ties_as_one_in_the_workloads_namespace() {
    let (b, a) = (catch_all("b", ""), catch_all("a", ", namespace: emojivoto"));
    for text in [format!("{b}---\n{a}"), format!("{a}---\n{b}")] {
        let dir = tempfile::tempdir().unwrap();
        let (app, _) = backend().await;
        let (config, _) = write_config(dir.path(), app, &text);
        let running = sidecar(&std::fs::read_to_string(&config).unwrap());
        let req = Request::get(format!("http://{}/x", running.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.headers());
        assert_eq!(res.headers()["x-rule"], "a", "{text}");
        stop(running).await;
    }
}

/// A `GRPCRoute` written with the namespace sets aside the `HTTPRoute`
/// written without it, once the two are merged as one service's: `sidecar
/// check` warns of it, in the words the sidecar logs it with, naming the
/// `HTTPRoute` where it is written and the `GRPCRoute` that takes its
/// requests. The check still succeeds.
#[test]
fn check_names_the_http_route_the_merge_of_both_spellings_sets_aside() {
    let grpc = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {method: ListAll}}]
";
    let text = format!("{}---\n{grpc}", catch_all("web", ""));
    let dir = tempfile::tempdir().unwrap();
    let app = "127.0.0.1:9".parse().unwrap();
    let (config, routes) = write_config(dir.path(), app, &text);
    let (stdout, passed) = check(&config);
    let warning = format!(
        "{}: document 1 (HTTPRoute web): spec.parentRefs[0]: set aside for service \
         emojivoto/emoji, whose GRPCRoutes (emojivoto/emoji-grpc) take its requests: a service \
         is served its GRPCRoutes or its HTTPRoutes, not both, and GRPCRoutes win, as in \
         Linkerd (GEP-1294)",
        routes.display()
    );
    assert!(
        stdout.contains(&format!("sidecar-policy\n--------------\n‼ {warning}\n")),
        "{warning}\nin\n{stdout}"
    );
    assert_eq!(stdout.matches("set aside").count(), 1, "{stdout}");
    assert!(passed, "{stdout}");
}
