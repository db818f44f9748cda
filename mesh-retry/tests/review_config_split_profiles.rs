//! ServiceProfiles of one service in two namespaces, as Linkerd's
//! destination controller serves them: a client gets the profile of the
//! service's name in its own namespace when there is one, else the one in
//! the service's namespace, and a profile in any other namespace serves
//! it nothing. A `TrafficSplit`, which linkerd-smi writes into the profile
//! in the service's namespace, does not reach a client served its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config::{self, RetryResources, ServiceRetryPolicy};

/// A ServiceProfile of `emoji.emojivoto` in `namespace`, with one route
/// `route` and `extra` at the end of its `spec`.
fn profile(namespace: &str, route: &str, extra: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: emoji.emojivoto.svc.cluster.local, namespace: {namespace}}}
spec:
  routes:
  - name: {route}
    condition: {{pathRegex: '/list'}}
{extra}"
    )
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emoji-stable, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
  - name: by-route
    matches: [{path: {type: PathPrefix, value: /list}}]
";

/// `emoji` in `emojivoto` as a client in `namespace` is served it.
fn served(resources: &RetryResources, namespace: &str) -> ServiceRetryPolicy {
    resources
        .for_namespace(namespace)
        .service("emoji", Some("emojivoto"))
        .unwrap()
        .clone()
}

fn names(service: &ServiceRetryPolicy) -> Vec<String> {
    service.routes.iter().map(|r| r.name.to_string()).collect()
}

#[test]
fn a_profile_in_the_clients_namespace_is_served_to_its_clients_in_place_of_the_services() {
    let budget = "  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 7, ttl: 10s}\n";
    let text = format!(
        "{}---\n{}",
        profile("emojivoto", "list", ""),
        profile("web", "web-list", budget)
    );
    // Two objects of one name in two namespaces, as a cluster holds them.
    let loaded = config::load("profiles.yaml", &text).unwrap();
    let web = served(&loaded, "web");
    assert_eq!(names(&web), ["web-list"]);
    assert_ne!(web.budget, served(&loaded, "emojivoto").budget);
    for namespace in ["emojivoto", "other"] {
        let service = served(&loaded, namespace);
        assert_eq!(names(&service), ["list"], "{namespace}");
    }
    // Still two of one name in one namespace are refused.
    let twice = format!(
        "{}---\n{}",
        profile("web", "list", ""),
        profile("web", "web-list", "")
    );
    let err = config::load("profiles.yaml", &twice).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    assert_eq!(err.document(), Some(2), "{err}");
}

#[test]
fn a_profile_in_a_third_namespace_leaves_the_routes_of_other_clients_in_charge() {
    let text = format!("{ROUTE}---\n{}", profile("web", "web-list", ""));
    let loaded = config::load("profiles.yaml", &text).unwrap();
    // A client in emojivoto has no profile of the service: its HTTPRoute
    // serves it, and a 404 the rest.
    let own = served(&loaded, "emojivoto");
    assert!(!own.served_by_profile());
    assert_eq!(names(&own), ["by-route"]);
    assert_eq!(own.unmatched(), config::Unmatched::NotFound);
    // A client in web is served the profile, which sets the route aside.
    let mut web = served(&loaded, "web");
    assert!(web.served_by_profile());
    assert_eq!(web.set_aside_for_profile().len(), 1);
    assert_eq!(names(&web), ["web-list"]);
}

#[test]
fn a_split_does_not_reach_a_client_served_its_own_namespaces_profile() {
    let split = "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: emoji-split, namespace: emojivoto}
spec:
  service: emoji
  backends: [{service: emoji-v2, weight: 1}]
";
    let overrides =
        "  dstOverrides: [{authority: emoji-v9.emojivoto.svc.cluster.local, weight: 1}]\n";
    let text = format!("{split}---\n{}", profile("web", "web-list", overrides));
    let loaded = config::load("profiles.yaml", &text).unwrap();
    let first = |service: &ServiceRetryPolicy| service.dst_overrides()[0].name.clone();
    assert_eq!(first(&served(&loaded, "emojivoto")), "emoji-v2");
    let web = served(&loaded, "web");
    assert_eq!(first(&web), "emoji-v9");
    assert!(!web.dst_overrides_from_traffic_split());
}
