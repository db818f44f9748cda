//! A ServiceProfile's `dstOverrides`, Linkerd's traffic split of a whole
//! service (what linkerd-smi's `TrafficSplit` controller writes): every
//! request addressed to the service, on a profile route or on none, goes
//! to one of the overrides by weight, through real sockets, and an
//! `HTTPRoute` rule's `backendRefs` give way to them as Linkerd's proxy
//! serves such a service by its profile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, sync::atomic::Ordering};

use http::StatusCode;
use support::{
    upstreams::{count, get, named, reloaded, sidecar_yaml},
    *,
};

/// `emoji`'s profile, with a route for `/list` and `overrides` as its
/// `dstOverrides` entries.
fn profile(overrides: &[(&str, &str)]) -> String {
    let mut text = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: /list}
  dstOverrides:
"
    .to_owned();
    for (authority, weight) in overrides {
        text.push_str(&format!(
            "  - authority: {authority}\n    weight: {weight}\n"
        ));
    }
    text
}

/// The stable service at 900m and the canary at 100m, as the
/// `TrafficSplit` controller writes a 9:1 split.
fn canary() -> String {
    profile(&[
        ("emoji.emojivoto.svc.cluster.local:8080", "900m"),
        ("emoji-v2.emojivoto.svc.cluster.local:8080", "100m"),
    ])
}

#[tokio::test]
async fn a_900m_100m_split_sends_a_tenth_of_every_request_of_the_service_to_the_canary() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, &canary()));

    // Half on the profile's route, half on none of its routes: Linkerd
    // splits the whole service.
    let (on_route, on_route_v2) = count(sidecar.outbound, "/list", 500).await;
    let (unmatched, unmatched_v2) = count(sidecar.outbound, "/other", 500).await;
    let (stable, canary) = (on_route + unmatched, on_route_v2 + unmatched_v2);
    // 900 and 100 expected, with a standard deviation of 9.5: the band is
    // over five of them wide on each side, which a fair draw leaves about
    // once in ten million runs. Without the split, all 1000 go to v1.
    assert!(
        (850..=950).contains(&stable),
        "{stable} to v1, {canary} to v2"
    );
    assert!(
        (50..=150).contains(&canary),
        "{stable} to v1, {canary} to v2"
    );
    assert!(
        on_route_v2 > 0 && unmatched_v2 > 0,
        "{on_route_v2}, {unmatched_v2}"
    );
    assert_eq!(stable + canary, 1000);
    assert_eq!(v1_hits.load(Ordering::SeqCst), stable);
    assert_eq!(v2_hits.load(Ordering::SeqCst), canary);

    // Each attempt is counted under the backend that took it, and the
    // request under the service it was addressed to.
    let metrics = scrape(sidecar.admin).await;
    let backend = |backend: &str| {
        series(
            &metrics,
            "outbound_http_route_backend_requests_total",
            &[
                "parent_name=\"emoji\"",
                "route_kind=\"ServiceProfile\"",
                "route_name=\"list\"",
                &format!("backend_name=\"{backend}\""),
            ],
        )
    };
    assert_eq!(backend("emoji"), on_route as u64, "{metrics}");
    assert_eq!(backend("emoji-v2"), on_route_v2 as u64, "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn weight_0_sends_none_and_all_weights_0_leave_the_service_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    // The stable half at 0: everything to the canary.
    let routes = profile(&[("emoji", "0"), ("emoji-v2.emojivoto", "1")]);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, &routes));
    assert_eq!(count(sidecar.outbound, "/list", 50).await, (0, 50));
    assert_eq!(count(sidecar.outbound, "/other", 50).await, (0, 50));
    assert_eq!(v1_hits.load(Ordering::SeqCst), 0);
    stop(sidecar).await;

    // Every weight 0 is no split, as in Linkerd: the service itself, not
    // the 500 of an HTTPRoute rule whose backendRefs all weigh 0.
    let routes = profile(&[("emoji", "0"), ("emoji-v2", "0m")]);
    let sidecar = support::sidecar(&sidecar_yaml(dir.path(), v1, v2, &routes));
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (20, 0));
    assert_eq!(count(sidecar.outbound, "/other", 20).await, (20, 0));
    assert_eq!(v2_hits.load(Ordering::SeqCst), 100);
    stop(sidecar).await;
}

#[tokio::test]
async fn an_override_that_is_no_outbound_service_gets_the_documented_500() {
    const MISSING: &str = "backend service emoji-v3.emojivoto is not in outbound.services";
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let routes = profile(&[("emoji-v3.emojivoto.svc.cluster.local:8080", "1")]);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, &routes));
    for path in ["/list", "/other"] {
        for _ in 0..5 {
            let (status, error, body) = get(sidecar.outbound, path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(error.as_deref(), Some(MISSING), "{path}");
            assert_eq!(body, "");
        }
    }
    assert_eq!(v2_hits.load(Ordering::SeqCst), 0);
    stop(sidecar).await;
}

#[tokio::test]
async fn the_overrides_take_an_http_routes_requests_over_its_backend_refs() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    // The rule sends everything to emoji; the profile, everything to
    // emoji-v2. Linkerd's proxy serves the profile in place of the route:
    // the rule is set aside, and the profile's default route takes /list
    // and /other alike (the rule alone would answer /other 404).
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-stable, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
    backendRefs: [{name: emoji, port: 8080}]
";
    let split = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  dstOverrides:
  - {authority: emoji-v2.emojivoto.svc.cluster.local:8080, weight: 1}
";
    let sidecar = sidecar(&sidecar_yaml(
        dir.path(),
        v1,
        v2,
        &format!("{route}---\n{split}"),
    ));
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (0, 20));
    assert_eq!(count(sidecar.outbound, "/other", 20).await, (0, 20));
    // Every request is on the profile's default route, and counted in
    // its families as Linkerd counts a profile with overrides.
    let metrics = scrape(sidecar.admin).await;
    let default = "route_request_total{direction=\"outbound\",dst=\"emoji\"} 40\n";
    assert!(metrics.contains(default), "{default} in {metrics}");
    stop(sidecar).await;

    // Without the profile: the rule's backend, and the Gateway API's 404.
    let sidecar = support::sidecar(&sidecar_yaml(dir.path(), v1, v2, route));
    assert_eq!(count(sidecar.outbound, "/list", 5).await, (5, 0));
    assert_eq!(
        get(sidecar.outbound, "/other").await.0,
        StatusCode::NOT_FOUND
    );
    stop(sidecar).await;
}

#[tokio::test]
async fn a_reload_that_changes_the_weights_is_in_force_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    let to = |v1: &str, v2: &str| profile(&[("emoji", v1), ("emoji-v2", v2)]);
    let sidecar = sidecar(&sidecar_yaml(dir.path(), v1, v2, &to("1", "0")));
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (20, 0));

    let file = dir.path().join("routes.yaml");
    replace_file(&file, to("0", "1"));
    reloaded(sidecar.admin, "ok", 1).await;
    until_in_force(
        || get(sidecar.outbound, "/list"),
        |(_, _, body)| body == "v2",
    )
    .await;
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (0, 20));
    assert_eq!(count(sidecar.outbound, "/other", 20).await, (0, 20));

    // A negative weight does not read: the last good split stays.
    replace_file(&file, to("1", "-1"));
    reloaded(sidecar.admin, "error", 1).await;
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (0, 20));
    stop(sidecar).await;
}

#[test]
fn a_bad_quantity_is_refused_at_start_naming_its_entry_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let v1: SocketAddr = "127.0.0.1:1".parse().unwrap();
    for (weight, says) in [
        ("-1", "is negative"),
        ("ten", "not a Kubernetes quantity"),
        ("1.5", "write \"1.5\""),
        ("500k", "wrap around"),
    ] {
        let routes = profile(&[("emoji", "1"), ("emoji-v2", weight)]);
        let yaml = sidecar_yaml(dir.path(), v1, v1, &routes);
        let config =
            mesh_examples::sidecar::config::SidecarConfig::from_yaml(&yaml, "test.yaml").unwrap();
        let Err(error) = mesh_examples::sidecar::start(config) else {
            panic!("{weight} was taken");
        };
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(&format!("\ncaused by: {cause}"));
            source = cause.source();
        }
        assert!(
            text.contains("document 1")
                && text.contains("spec.dstOverrides[1].weight")
                && text.contains("at line 12")
                && text.contains(says),
            "{weight}: {text}"
        );
    }
}
