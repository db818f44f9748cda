//! What `sidecar check` says of the routing resources, in the words the
//! sidecar logs: a route, ServiceProfile or TrafficSplit of a service
//! that is not in `outbound.services` is named where it is written, and
//! an `HTTPRoute` of a service with `GRPCRoute`s and a ServiceProfile is
//! set aside for the profile that serves the service. These run the
//! `sidecar` binary (`cargo build -p mesh-examples --example sidecar`
//! first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};

use support::{signal, upstreams::check, wait_for};

/// A plaintext sidecar in `emojivoto` whose one outbound service is
/// `emoji`, with `routes` as its policy file: the configuration's path
/// and the routes'.
fn write_config(dir: &Path, routes: &str) -> (PathBuf, PathBuf) {
    let file = dir.join("routes.yaml");
    std::fs::write(&file, routes).unwrap();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [127.0.0.1:9]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 0s\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    );
    let config = dir.join("sidecar.yaml");
    std::fs::write(&config, yaml).unwrap();
    (config, file)
}

/// An `HTTPRoute`, a ServiceProfile and a `TrafficSplit` of `emoji-v9`,
/// which is not an outbound service.
const UNLISTED: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: v9-route, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji-v9}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /list}}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji-v9.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - {name: list, condition: {method: GET, pathRegex: /list}}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: v9-split, namespace: emojivoto}
spec:
  service: emoji-v9
  backends:
  - {service: emoji, weight: 1}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_resource_of_a_service_not_in_outbound_services_as_the_log_does() {
    let dir = tempfile::tempdir().unwrap();
    let (config, routes) = write_config(dir.path(), UNLISTED);
    let routes = routes.display();
    let unused = "service emoji-v9.emojivoto is not in outbound.services, so the sidecar does \
                  not use this resource; add the service, or correct the name";
    let warnings = [
        format!(
            "{routes}: document 1 (HTTPRoute emojivoto/v9-route): spec.parentRefs[0]: {unused}"
        ),
        format!(
            "{routes}: document 2 (ServiceProfile \
             emojivoto/emoji-v9.emojivoto.svc.cluster.local): metadata.name: {unused}"
        ),
        format!("{routes}: document 3 (TrafficSplit emojivoto/v9-split): spec.service: {unused}"),
    ];
    let (stdout, passed) = check(&config);
    for warning in &warnings {
        assert!(
            stdout.contains(&format!("‼ {warning}\n")),
            "{warning}\nin\n{stdout}"
        );
    }
    // A warning: the sidecar starts with them.
    assert!(passed, "{stdout}");

    // The sidecar logs the same three.
    let (child, lines) = support::run_logging(&config, "info");
    let mut log = String::new();
    for _ in &warnings {
        log.push_str(&wait_for(
            &lines,
            "outbound routes: service not in outbound.services",
        ));
    }
    for warning in &warnings {
        assert!(log.contains(warning.as_str()), "{warning}\nin\n{log}");
    }
    signal(&child, "-TERM");
    wait_for(&lines, "sidecar stopped");
}

/// An `HTTPRoute`, a `GRPCRoute` and a ServiceProfile with a route, all
/// of `emoji`.
const BOTH_KINDS_AND_A_PROFILE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - matches: [{method: {method: ListAll}}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  routes:
  - {name: list, condition: {method: GET, pathRegex: /list}}
";

#[test]
fn an_http_route_beside_grpc_routes_is_set_aside_for_the_profile_that_serves_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let (config, routes) = write_config(dir.path(), BOTH_KINDS_AND_A_PROFILE);
    let (stdout, passed) = check(&config);
    let routes = routes.display();
    let aside = |document: usize, kind: &str, name: &str| {
        format!(
            "‼ {routes}: document {document} ({kind} emojivoto/{name}): spec.parentRefs[0]: set \
             aside for {routes}: document 3 (ServiceProfile \
             emojivoto/emoji.emojivoto.svc.cluster.local), which serves service emojivoto/emoji \
             alone: Linkerd's proxy serves a service whose ServiceProfile has routes or \
             dstOverrides by the profile, and none of this route's rules, timeouts, retries or \
             filters apply\n"
        )
    };
    for warning in [
        aside(1, "HTTPRoute", "emoji-http"),
        aside(2, "GRPCRoute", "emoji-grpc"),
    ] {
        assert!(stdout.contains(&warning), "{warning}\nin\n{stdout}");
    }
    assert!(!stdout.contains("whose GRPCRoutes"), "{stdout}");
    assert!(passed, "{stdout}");
}
