//! A service whose ServiceProfile has routes or `dstOverrides` is served
//! by the profile alone, as Linkerd's proxy serves it: its `HTTPRoute`s
//! (and `GRPCRoute`s) are set aside, with a warning that `sidecar check`
//! shows, and their backends and filters do not apply. A profile with
//! neither (a `retryBudget` alone) leaves the routes in charge, and a
//! reload that takes the profile's routes away hands the service back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, path::Path};

use http::StatusCode;
use support::{
    upstreams::{check, get_marked, named, reloaded, write_config},
    *,
};

/// An `HTTPRoute` of `emoji` that sends `/list` to `emoji-v2` and marks
/// its answers with `x-rule: canary`.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
    backendRefs: [{name: emoji-v2, port: 8080}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-rule, value: canary}]}
";

/// `emoji`'s profile, with a route that matches `/list` too.
const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: /list}
";

/// `emoji`'s profile with a retry budget and nothing else.
const BUDGET_ONLY: &str = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}
";

/// GETs `/list` of `emoji` through the sidecar at `outbound`, on a
/// connection of its own: the status, the `x-rule` header and the body.
async fn list(outbound: SocketAddr) -> (StatusCode, Option<String>, String) {
    get_marked(outbound, "/list", "x-rule").await
}

/// What the profile serves: `emoji` itself, unmarked.
fn by_profile() -> (StatusCode, Option<String>, String) {
    (StatusCode::OK, None, "v1".to_owned())
}

/// What the `HTTPRoute` serves: `emoji-v2`, marked.
fn by_route() -> (StatusCode, Option<String>, String) {
    (StatusCode::OK, Some("canary".to_owned()), "v2".to_owned())
}

/// The warning for the `HTTPRoute` set aside, for routes file `routes`.
fn set_aside(routes: &Path) -> String {
    format!(
        "{}: document 1 (HTTPRoute emojivoto/canary): spec.parentRefs[0]: set aside for {}: \
         document 2 (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local), which serves \
         service emojivoto/emoji alone: Linkerd's proxy serves a service whose ServiceProfile \
         has routes or dstOverrides by the profile, and none of this route's rules, timeouts, \
         retries or filters apply",
        routes.display(),
        routes.display()
    )
}

#[tokio::test]
async fn a_profile_with_routes_serves_its_service_and_the_http_route_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let (config, routes) = write_config(dir.path(), v1, v2, &format!("{ROUTE}---\n{PROFILE}"));
    let running = sidecar(&std::fs::read_to_string(&config).unwrap());
    // The profile's route takes /list: neither the route's backend nor
    // its header.
    for _ in 0..5 {
        assert_eq!(list(running.outbound).await, by_profile());
    }
    let metrics = scrape(running.admin).await;
    let counted = series(
        &metrics,
        "route_request_total",
        &["dst=\"emoji\"", "rt_route=\"list\""],
    );
    assert_eq!(counted, 5, "{metrics}");
    stop(running).await;

    // `sidecar check` names the route set aside and the profile that
    // serves the service, and still succeeds.
    let (stdout, passed) = check(&config);
    let warning = set_aside(&routes);
    assert!(
        stdout.contains(&format!("‼ {warning}\n")),
        "{warning}\nin\n{stdout}"
    );
    assert_eq!(stdout.matches("set aside").count(), 1, "{stdout}");
    assert!(passed, "{stdout}");

    // The route alone serves /list.
    let (config, _) = write_config(dir.path(), v1, v2, ROUTE);
    let running = sidecar(&std::fs::read_to_string(&config).unwrap());
    assert_eq!(list(running.outbound).await, by_route());
    stop(running).await;
}

#[tokio::test]
async fn a_profile_with_only_a_retry_budget_leaves_the_http_route_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let text = format!("{ROUTE}---\n{BUDGET_ONLY}");
    let (config, _) = write_config(dir.path(), v1, v2, &text);
    let running = sidecar(&std::fs::read_to_string(&config).unwrap());
    for _ in 0..5 {
        assert_eq!(list(running.outbound).await, by_route());
    }
    // The budget is the profile's: a reserve of 3 retries a second over
    // 10 s.
    let metrics = scrape(running.admin).await;
    assert!(
        metrics.contains("retry_budget_balance{service=\"emoji\"} 30.0\n"),
        "{metrics}"
    );
    stop(running).await;
    let (stdout, _) = check(&config);
    assert!(!stdout.contains("set aside"), "{stdout}");
}

#[tokio::test]
async fn a_reload_that_removes_the_profiles_routes_hands_the_service_back_to_the_http_route() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let (config, routes) = write_config(dir.path(), v1, v2, &format!("{ROUTE}---\n{PROFILE}"));
    let running = sidecar(&std::fs::read_to_string(&config).unwrap());
    assert_eq!(list(running.outbound).await, by_profile());

    // The profile keeps its budget but loses its routes.
    replace_file(&routes, format!("{ROUTE}---\n{BUDGET_ONLY}"));
    reloaded(running.admin, "ok", 1).await;
    until_in_force(|| list(running.outbound), |got| *got == by_route()).await;

    // And back: the profile's routes take the service again.
    replace_file(&routes, format!("{ROUTE}---\n{PROFILE}"));
    reloaded(running.admin, "ok", 2).await;
    until_in_force(|| list(running.outbound), |got| *got == by_profile()).await;
    stop(running).await;
}
