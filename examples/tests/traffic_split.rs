//! An SMI `TrafficSplit` read from the policy files, through real
//! sockets: its apex service's requests go to its backends by weight, as
//! the `dstOverrides` linkerd-smi writes for it send them, and the
//! service is then served by its profile's default route, its
//! `HTTPRoute`s set aside. A reload puts a changed split in force, and
//! one that does not read leaves the last good one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::sync::atomic::Ordering;

use support::{
    upstreams::{check, count, get, named, reloaded, write_config},
    *,
};

/// A `TrafficSplit` of `emoji` at `version`, with `emoji` and `emoji-v2`
/// weighing `v1` and `v2`.
fn split(version: &str, v1: &str, v2: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/{version}
kind: TrafficSplit
metadata: {{name: emoji-split, namespace: emojivoto}}
spec:
  service: emoji
  backends:
  - service: emoji
    weight: {v1}
  - service: emoji-v2
    weight: {v2}
"
    )
}

/// An `HTTPRoute` of `emoji` that would send `/list` to `emoji` alone.
const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-stable, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
    backendRefs: [{name: emoji, port: 8080}]
";

#[tokio::test]
async fn a_3_to_1_split_sends_a_quarter_of_every_request_to_the_second_backend() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, v1_hits), (v2, v2_hits)) = (named("v1").await, named("v2").await);
    let text = format!("{ROUTE}---\n{}", split("v1alpha2", "3", "1"));
    let (config, routes) = write_config(dir.path(), v1, v2, &text);
    let sidecar = sidecar(&std::fs::read_to_string(&config).unwrap());

    // Half on the path the HTTPRoute would have taken to emoji alone,
    // half on none: the split takes the whole service.
    let (on_route, on_route_v2) = count(sidecar.outbound, "/list", 400).await;
    let (unmatched, unmatched_v2) = count(sidecar.outbound, "/other", 400).await;
    let (first, second) = (on_route + unmatched, on_route_v2 + unmatched_v2);
    // 600 and 200 expected, with a standard deviation of 12.2: the band
    // is over five and a half of them wide on each side, which a fair
    // draw leaves about once in a hundred million runs. Without the
    // split, all 800 go to v1 (and /other is answered 404).
    assert!(
        (530..=670).contains(&first),
        "{first} to v1, {second} to v2"
    );
    assert!(
        (130..=270).contains(&second),
        "{first} to v1, {second} to v2"
    );
    assert!(
        on_route_v2 > 0 && unmatched_v2 > 0,
        "{on_route_v2}, {unmatched_v2}"
    );
    assert_eq!(first + second, 800);
    assert_eq!(v1_hits.load(Ordering::SeqCst), first);
    assert_eq!(v2_hits.load(Ordering::SeqCst), second);
    stop(sidecar).await;

    // `sidecar check` names the HTTPRoute set aside, and the split that
    // serves the service in its place.
    let (stdout, passed) = check(&config);
    let warning = format!(
        "{}: document 1 (HTTPRoute emojivoto/emoji-stable): spec.parentRefs[0]: set aside for \
         {}: document 2 (TrafficSplit emojivoto/emoji-split), which serves service \
         emojivoto/emoji alone",
        routes.display(),
        routes.display()
    );
    assert!(stdout.contains(&warning), "{warning}\nin\n{stdout}");
    assert!(passed, "{stdout}");
}

#[tokio::test]
async fn a_reload_puts_a_changed_split_in_force_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ((v1, _), (v2, _)) = (named("v1").await, named("v2").await);
    // No split yet: the service itself.
    let (config, routes) = write_config(dir.path(), v1, v2, "");
    let sidecar = sidecar(&std::fs::read_to_string(&config).unwrap());
    assert_eq!(count(sidecar.outbound, "/list", 10).await, (10, 0));

    // Everything to emoji-v2, in v1alpha1's quantities.
    replace_file(&routes, split("v1alpha1", "0", "1000m"));
    reloaded(sidecar.admin, "ok", 1).await;
    until_in_force(
        || get(sidecar.outbound, "/list"),
        |(_, _, body)| body == "v2",
    )
    .await;
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (0, 20));

    // A v1alpha2 weight is a whole number: the last good split stays.
    replace_file(&routes, split("v1alpha2", "1", "500m"));
    reloaded(sidecar.admin, "error", 1).await;
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (0, 20));

    // The split removed: the service itself again.
    replace_file(&routes, "");
    reloaded(sidecar.admin, "ok", 2).await;
    until_in_force(
        || get(sidecar.outbound, "/list"),
        |(_, _, body)| body == "v1",
    )
    .await;
    assert_eq!(count(sidecar.outbound, "/list", 20).await, (20, 0));
    stop(sidecar).await;
}
