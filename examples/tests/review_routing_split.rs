//! An SMI `TrafficSplit` whose backends are not all served, through real
//! sockets: a backend that is not an outbound service has its share
//! answered 500, and the warning of the log and of `sidecar check` names
//! the split's entry as a `TrafficSplit`'s, which is what the user wrote,
//! not as `dstOverrides`; a split whose every weight is 0 splits nothing
//! and leaves the service's `HTTPRoute`s in charge, as Linkerd's proxy,
//! which drops overrides of weight 0, leaves them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::atomic::Ordering;

use http::StatusCode;
use support::{
    upstreams::{check, get, named, write_config},
    *,
};

/// A `v1alpha2` `TrafficSplit` of `emoji` between `backends`, each a
/// service and its weight.
fn split(backends: &[(&str, u32)]) -> String {
    let mut text = "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: emoji-split, namespace: emojivoto}
spec:
  service: emoji
  backends:
"
    .to_owned();
    for (service, weight) in backends {
        text.push_str(&format!("  - {{service: {service}, weight: {weight}}}\n"));
    }
    text
}

/// An `HTTPRoute` of `emoji` that sends `/list` to `emoji-v2`.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-canary, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
    backendRefs: [{name: emoji-v2, port: 8080}]
";

#[tokio::test]
async fn a_split_backend_that_is_no_outbound_service_is_warned_of_as_the_splits() {
    const MISSING: &str = "backend service emoji-v3.emojivoto is not in outbound.services";
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, _)) = (named("v1").await, named("v2").await);
    let text = split(&[("emoji-v3", 1)]);
    let (config, routes) = write_config(dir.path(), v1, v2, &text);
    let sidecar = sidecar(&std::fs::read_to_string(&config).unwrap());
    // The split's one backend takes every request, and answers each 500.
    for path in ["/list", "/other"] {
        let (status, error, _) = get(sidecar.outbound, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(error.as_deref(), Some(MISSING), "{path}");
    }
    assert_eq!(v1_hits.load(Ordering::SeqCst), 0);
    stop(sidecar).await;

    // `sidecar check` names the entry, and the TrafficSplit that sends the
    // requests there: the user wrote no dstOverrides.
    let (stdout, passed) = check(&config);
    let warning = format!(
        "‼ {}: document 1 (TrafficSplit emojivoto/emoji-split): spec.backends[0]: service \
         emoji's TrafficSplit sends requests to service emoji-v3.emojivoto, which is not in \
         outbound.services; the requests drawn to it are answered 500 (gRPC UNAVAILABLE)\n",
        routes.display()
    );
    assert!(stdout.contains(&warning), "{warning}\nin\n{stdout}");
    assert!(!stdout.contains("dstOverrides send"), "{stdout}");
    assert!(passed, "{stdout}");
}

#[tokio::test]
async fn a_split_whose_every_weight_is_0_leaves_the_http_route_in_charge() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let text = format!("{ROUTE}---\n{}", split(&[("emoji", 0), ("emoji-v2", 0)]));
    let (config, _) = write_config(dir.path(), v1, v2, &text);
    let sidecar = sidecar(&std::fs::read_to_string(&config).unwrap());
    // The route's backend takes /list, and its 404 answers the rest: the
    // split neither serves the service nor sends anything nowhere.
    for _ in 0..5 {
        let (status, error, body) = get(sidecar.outbound, "/list").await;
        assert_eq!((status, error, body.as_str()), (StatusCode::OK, None, "v2"));
    }
    assert_eq!(
        get(sidecar.outbound, "/other").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(v2_hits.load(Ordering::SeqCst), 5);
    assert_eq!(v1_hits.load(Ordering::SeqCst), 0);
    stop(sidecar).await;

    // Nothing is set aside.
    let (stdout, passed) = check(&config);
    assert!(!stdout.contains("set aside"), "{stdout}");
    assert!(passed, "{stdout}");
}
