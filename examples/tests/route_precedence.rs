//! The outbound routes of a service are tried in the Gateway API's
//! precedence, as the inbound policy's are, not in the order they are
//! written: a catch-all rule written first does not take the requests of
//! the more specific rules after it. Each rule here marks its responses
//! with its name (a `ResponseHeaderModifier`), so a request through the
//! sidecar shows which rule it took. A rule whose backends all weigh 0
//! takes its requests too, and the mesh answers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

/// A rule named `name` with `matches` (YAML flow), marking its responses.
fn rule(name: &str, matches: &str) -> String {
    format!(
        "  - name: {name}
    matches: {matches}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// An `HTTPRoute` for `emoji` named `name`, with extra `metadata` and
/// `rules`.
fn route(name: &str, metadata: &str, rules: &[String]) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: emojivoto{metadata}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{}",
        rules.concat()
    )
}

fn routes() -> String {
    let prefix = |p: &str| format!("[{{path: {{type: PathPrefix, value: {p}}}}}]");
    let web = route(
        "web",
        "",
        &[
            // Written first, and one of its matches is a catch-all: each
            // match ranks on its own, so the catch-all comes last.
            rule(
                "x-or-anything",
                "[{path: {type: Exact, value: /x}}, {path: {type: PathPrefix, value: /}}]",
            ),
            rule("everything", &prefix("/")),
            rule("vote", "[{path: {type: Exact, value: /api/vote}}]"),
            rule("api", &prefix("/api")),
            rule("api-v1", &prefix("/api/v1")),
            rule(
                "one-header",
                "[{path: {type: PathPrefix, value: /hdr}, headers: [{name: x-a, value: '1'}]}]",
            ),
            rule(
                "two-headers",
                "[{path: {type: PathPrefix, value: /hdr}, \
                 headers: [{name: x-a, value: '1'}, {name: x-b, value: '1'}]}]",
            ),
        ],
    );
    // Equal matches in two routes: the older wins, though written second
    // and second by name; without timestamps, the first by name.
    let newer = route(
        "a-newer",
        ", creationTimestamp: '2024-03-01T00:00:00Z'",
        &[rule("a-newer", &prefix("/tie"))],
    );
    let older = route(
        "b-older",
        ", creationTimestamp: '2024-01-01T00:00:00Z'",
        &[rule("b-older", &prefix("/tie"))],
    );
    let z = route("z-name", "", &[rule("z-name", &prefix("/name"))]);
    let m = route("m-name", "", &[rule("m-name", &prefix("/name"))]);
    [web, newer, older, z, m].join("---\n")
}

#[tokio::test]
async fn outbound_requests_take_the_most_specific_match_not_the_first_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, routes()).unwrap();
    let (app, _) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    let client = http1();
    let rule_for = |path: &str, headers: &[(&str, &str)]| {
        let mut req =
            Request::get(format!("http://{}{path}", sidecar.outbound)).header("host", "emoji");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(full("")).unwrap();
        let client = client.clone();
        async move {
            let res = client.request(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.headers()
                .get("x-rule")
                .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
        }
    };
    let both = [("x-a", "1"), ("x-b", "1")];
    for (path, headers, expected) in [
        ("/api/vote", &[][..], "vote"),
        ("/api/v1/books", &[], "api-v1"),
        ("/api/other", &[], "api"),
        ("/x", &[], "x-or-anything"),
        ("/elsewhere", &[], "x-or-anything"),
        ("/hdr", &both, "two-headers"),
        ("/hdr", &[("x-a", "1")], "one-header"),
        ("/tie", &[], "b-older"),
        ("/name", &[], "m-name"),
    ] {
        assert_eq!(
            rule_for(path, headers).await,
            expected,
            "{path} with {headers:?}"
        );
    }
    stop(sidecar).await;
}

#[tokio::test]
async fn routes_from_two_policy_files_are_ranked_together() {
    // The catch-all comes from the first file and the specific rule from
    // the second: the second file's rule still wins its requests.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("catch-all.yaml");
    let second = dir.path().join("vote.yaml");
    let prefix = "[{path: {type: PathPrefix, value: /}}]";
    std::fs::write(&first, route("all", "", &[rule("everything", prefix)])).unwrap();
    let vote = "[{path: {type: Exact, value: /api/vote}}]";
    // And a redirect, which a later file's routes keep too.
    let moved = "  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 301}
";
    let routes = route("vote", "", &[rule("vote", vote), moved.to_owned()]);
    std::fs::write(&second, routes).unwrap();
    let (app, _) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}, {}]\n",
        first.display(),
        second.display()
    ));
    let client = http1();
    for (path, expected) in [("/api/vote", "vote"), ("/api/list", "everything")] {
        let req = Request::get(format!("http://{}{path}", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-rule"], expected, "{path}");
    }
    let req = Request::get(format!("http://{}/old", sidecar.outbound))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/new"),
        "{:?}",
        res.headers()
    );
    stop(sidecar).await;
}

/// A rule whose backends all have weight 0 sends its requests nowhere:
/// the Gateway API has them answered 500 (gRPC `UNAVAILABLE`), and the
/// mesh answers them itself, counted as its own answer. The service's
/// other requests go on as before.
#[tokio::test]
async fn a_rule_whose_backends_all_weigh_0_is_answered_500_by_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    let drained = "  - name: drained
    matches: [{path: {type: PathPrefix, value: /drained}}]
    backendRefs:
    - {name: emoji-v2, port: 80, weight: 0}
    - {name: emoji, port: 80, weight: 0}
";
    let rest = rule("rest", "[{path: {type: PathPrefix, value: /}}]");
    std::fs::write(
        &file,
        route(
            "drain",
            // Retries on 5xx: the mesh's own answer is not retried.
            ", annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: '2'}",
            &[drained.to_owned(), rest],
        ),
    )
    .unwrap();
    let (app, _) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         \x20   - name: emoji-v2\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    let client = http1();
    let send = |path: &str, grpc: bool| {
        let mut req = Request::builder()
            .method(if grpc { "POST" } else { "GET" })
            .uri(format!("http://{}{path}", sidecar.outbound))
            .header("host", "emoji");
        if grpc {
            req = req.header("content-type", "application/grpc");
        }
        client.request(req.body(full("")).unwrap())
    };
    let res = send("/drained/x", false).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.headers()["mesh-error"],
        "no backend of the route has a weight above 0"
    );
    assert!(body_bytes(res).await.is_empty());
    let res = send("/drained/x", true).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "14");
    assert_eq!(
        res.headers()["grpc-message"],
        "no backend of the route has a weight above 0"
    );
    // The route's other rule still reaches the service.
    let res = send("/other", false).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, "hello");
    let metrics = scrape(sidecar.admin).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("response_total{direction=\"outbound\"")
                && l.contains("status_code=\"500\"")
                && l.contains("error=\"unavailable\"")),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("retry_requests_total{")
                && l.contains("route=\"drained\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    stop(sidecar).await;
}
