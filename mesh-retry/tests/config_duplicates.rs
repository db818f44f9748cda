//! Two routes of one kind with one name in one file are refused, as two
//! ServiceProfiles for one service are: the cluster keeps one object per
//! kind, namespace and name (the one applied last replaces the other), so
//! reading both would serve rules nobody has in force, silently. Across two
//! files joined by `RetryResources::merge`, the second is named in a
//! warning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

fn route(api_version: &str, kind: &str, metadata: &str, path: &str) -> String {
    let matches = if kind == "GRPCRoute" {
        format!("[{{method: {{service: {path}}}}}]")
    } else {
        format!("[{{path: {{type: PathPrefix, value: /{path}}}}}]")
    };
    format!(
        "apiVersion: {api_version}
kind: {kind}
metadata: {metadata}
spec:
  parentRefs: [{{kind: Service, group: core, name: books, namespace: shop}}]
  rules:
  - matches: {matches}
"
    )
}

const GATEWAY: &str = "gateway.networking.k8s.io/v1";

#[test]
fn a_second_route_of_one_kind_and_name_is_refused_where_it_is() {
    let text = [
        route(
            GATEWAY,
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "old",
        ),
        route(
            GATEWAY,
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "new",
        ),
    ]
    .join("---\n");
    let err = config::load("routes.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    assert_eq!(err.field_path(), "metadata.name", "{err}");
    let message = err.to_string();
    assert!(message.contains("document 2"), "{message}");
    assert!(
        message.contains("a second HTTPRoute shop/books in this text, after document 1"),
        "{message}"
    );
    // A route written once at v1beta1 and once at v1 is still one object.
    let text = [
        route(
            "gateway.networking.k8s.io/v1beta1",
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "old",
        ),
        route(
            GATEWAY,
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "new",
        ),
    ]
    .join("---\n");
    let err = config::load("routes.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    // Two without a namespace land in the same one when applied.
    let text = [
        route(GATEWAY, "GRPCRoute", "{name: calls}", "shop.Books"),
        route(GATEWAY, "GRPCRoute", "{name: calls}", "shop.Authors"),
    ]
    .join("---\n");
    let err = config::load("routes.yaml", &text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
    assert!(
        err.to_string().contains("a second GRPCRoute calls"),
        "{err}"
    );
}

#[test]
fn routes_of_other_kinds_groups_or_namespaces_may_share_a_name() {
    let text = [
        route(GATEWAY, "HTTPRoute", "{name: books, namespace: shop}", "a"),
        route(GATEWAY, "HTTPRoute", "{name: books, namespace: other}", "b"),
        route(
            "policy.linkerd.io/v1beta3",
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "c",
        ),
        route(
            GATEWAY,
            "GRPCRoute",
            "{name: books, namespace: shop}",
            "shop.Books",
        ),
    ]
    .join("---\n");
    let loaded = config::load("routes.yaml", &text).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap();
    // The GRPCRoute takes the service; the three HTTPRoutes are set aside
    // with a warning each, not refused.
    assert_eq!(books.routes.len(), 1);
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
}

#[test]
fn a_route_of_one_kind_and_name_in_two_texts_is_named_when_they_merge() {
    let first = config::load(
        "books-v1.yaml",
        &route(
            GATEWAY,
            "HTTPRoute",
            "{name: books, namespace: shop}",
            "old",
        ),
    )
    .unwrap();
    let other = |kind: &str, api_version: &str, name: &str| {
        let path = if kind == "GRPCRoute" {
            "shop.Books"
        } else {
            "new"
        };
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{}",
            route(
                api_version,
                kind,
                &format!("{{name: {name}, namespace: shop}}"),
                path
            )
        );
        config::load("books-v2.yaml", &text).unwrap()
    };
    let mut merged = first.clone();
    merged.merge(other("HTTPRoute", GATEWAY, "books"));
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert_eq!(warning.origin, "books-v2.yaml");
    assert_eq!(warning.document, 2);
    assert_eq!(warning.kind, "HTTPRoute");
    assert_eq!(warning.name.as_deref(), Some("books"));
    assert_eq!(warning.field, "metadata.name");
    assert!(
        warning.message.contains(
            "a second HTTPRoute shop/books, after books-v1.yaml document 1: the cluster keeps one"
        ),
        "{warning}"
    );
    // Both are still served, as the warning says.
    assert_eq!(
        merged.service("books", Some("shop")).unwrap().routes.len(),
        2
    );

    // Another name, kind or API group is another object.
    for (kind, api_version, name) in [
        ("HTTPRoute", GATEWAY, "books-v2"),
        ("GRPCRoute", GATEWAY, "books"),
        ("HTTPRoute", "policy.linkerd.io/v1beta3", "books"),
    ] {
        let mut merged = first.clone();
        merged.merge(other(kind, api_version, name));
        assert!(
            merged.warnings.iter().all(|w| w.field != "metadata.name"),
            "{kind} {api_version} {name}: {:?}",
            merged.warnings
        );
    }
}

#[test]
fn two_service_profiles_for_one_service_in_two_texts_are_named_when_they_merge() {
    let profile = |route: &str, ratio: f64| {
        format!(
            "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  retryBudget: {{retryRatio: {ratio}, minRetriesPerSecond: 10, ttl: 10s}}
  routes:
  - name: {route}
    condition: {{method: GET, pathRegex: /{route}}}
"
        )
    };
    let mut merged = config::load("profile-v1.yaml", &profile("old", 0.5)).unwrap();
    let route_file = config::load(
        "route.yaml",
        &route(GATEWAY, "HTTPRoute", "{name: books, namespace: shop}", "r"),
    )
    .unwrap();
    // A service's HTTPRoute from another text is no second profile.
    merged.merge(route_file);
    assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
    // The budget stays the profile's.
    let books = merged.service("books", Some("shop")).unwrap();
    assert_eq!(books.budget.retry_ratio(), 0.5);
    // The second profile's budget, the default's, is the one served, as
    // it would be in force in a cluster.
    merged.merge(config::load("profile-v2.yaml", &profile("new", 0.2)).unwrap());
    let books = merged.service("books", Some("shop")).unwrap();
    assert_eq!(books.budget, mesh_retry::BudgetConfig::default());
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert_eq!(warning.origin, "profile-v2.yaml");
    assert_eq!(warning.document, 1);
    assert_eq!(warning.kind, "ServiceProfile");
    assert_eq!(
        warning.name.as_deref(),
        Some("books.shop.svc.cluster.local")
    );
    assert_eq!(warning.field, "metadata.name");
    assert!(
        warning.message.contains(
            "a second ServiceProfile for service books, after profile-v1.yaml document 1"
        ),
        "{warning}"
    );
}
