//! Warnings, and the places they point at, name a route or profile as
//! mesh-core's errors do, and as kubectl does: `Kind namespace/name` for a
//! document with a `metadata.namespace`, so that routes of one name in two
//! namespaces are told apart; `Kind name` for one without.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_retry::config::{self, ConfigWarning, RetryResources};

/// An `HTTPRoute` named `books` with `metadata` as written, on the
/// Service `parent`, whose one rule has a `RequestMirror` filter (not
/// supported, so named in a warning).
fn mirrored(metadata: &str, parent: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {metadata}
spec:
  parentRefs: [{parent}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    filters:
    - type: RequestMirror
      requestMirror: {{backendRef: {{name: books-shadow, port: 80}}}}
"
    )
}

/// A route of `kind` named `name` in `shop`, on the Service `books` there.
fn route(kind: &str, name: &str) -> String {
    let matches = if kind == "GRPCRoute" {
        "[{method: {service: shop.Books}}]"
    } else {
        "[{path: {type: PathPrefix, value: /}}]"
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: shop}}
spec:
  parentRefs: [{{group: core, kind: Service, name: books, namespace: shop}}]
  rules:
  - matches: {matches}
"
    )
}

/// The ServiceProfile of `books` in `shop`, which sends a tenth of the
/// service's requests to `books-v2`.
const PROFILE: &str = "\
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: books.shop.svc.cluster.local, namespace: shop}
spec:
  dstOverrides:
  - {authority: books.shop.svc.cluster.local, weight: 900m}
  - {authority: books-v2.shop.svc.cluster.local, weight: 100m}
";

fn shown(warnings: &[ConfigWarning]) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

fn load(origin: &str, text: &str) -> RetryResources {
    config::load(origin, text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn routes_of_one_name_in_two_namespaces_are_told_apart_where_they_are_named() {
    let shop_parent = "{group: core, kind: Service, name: books, namespace: shop}";
    let text = [
        mirrored("{name: books, namespace: shop}", shop_parent),
        // A consumer route, from `library`, on the same Service.
        mirrored("{name: books, namespace: library}", shop_parent),
        // In the namespace it is applied to, which the text does not say.
        mirrored("{name: books}", "{group: core, kind: Service, name: books}"),
    ]
    .join("---\n");
    let loaded = load("routes.yaml", &text);
    let mirror = "spec.rules[0].filters[0]: RequestMirror filters are not supported; the rule \
                  applies without it";
    assert_eq!(
        shown(&loaded.warnings),
        [
            format!("routes.yaml: document 1 (HTTPRoute shop/books): {mirror}"),
            format!("routes.yaml: document 2 (HTTPRoute library/books): {mirror}"),
            format!("routes.yaml: document 3 (HTTPRoute books): {mirror}"),
        ]
    );
    let namespaces: Vec<Option<&str>> = loaded
        .warnings
        .iter()
        .map(|w| w.namespace.as_deref())
        .collect();
    assert_eq!(namespaces, [Some("shop"), Some("library"), None]);

    let books = loaded.service("books", Some("shop")).unwrap();
    let sources: Vec<Option<String>> = (0..books.routes.len())
        .map(|i| books.rule_source(i))
        .collect();
    assert_eq!(
        sources,
        [
            Some("routes.yaml: document 1 (HTTPRoute shop/books): spec.rules[0]".to_owned()),
            Some("routes.yaml: document 2 (HTTPRoute library/books): spec.rules[0]".to_owned()),
        ]
    );
    let unplaced = loaded.service("books", None).unwrap();
    assert_eq!(
        unplaced.rule_source(0).as_deref(),
        Some("routes.yaml: document 3 (HTTPRoute books): spec.rules[0]")
    );
}

#[test]
fn an_http_route_set_aside_names_its_namespace() {
    let text = [route("HTTPRoute", "web"), route("GRPCRoute", "calls")].join("---\n");
    let loaded = load("routes.yaml", &text);
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(warning.namespace.as_deref(), Some("shop"));
    let shown = warning.to_string();
    assert!(
        shown.starts_with(
            "routes.yaml: document 1 (HTTPRoute shop/web): spec.parentRefs[0]: set aside for \
             service shop/books, whose GRPCRoutes (shop/calls) take its requests"
        ),
        "{shown}"
    );
}

#[test]
fn a_second_route_or_profile_from_another_text_names_its_namespace() {
    let mut merged = load("books-v1.yaml", &route("HTTPRoute", "books"));
    merged.merge(load("books-v2.yaml", &route("HTTPRoute", "books")));
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert_eq!(warning.namespace.as_deref(), Some("shop"));
    assert!(
        warning.to_string().starts_with(
            "books-v2.yaml: document 1 (HTTPRoute shop/books): metadata.name: a second \
             HTTPRoute shop/books, after books-v1.yaml document 1"
        ),
        "{warning}"
    );

    let mut merged = load("profile-v1.yaml", PROFILE);
    merged.merge(load("profile-v2.yaml", PROFILE));
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert_eq!(warning.namespace.as_deref(), Some("shop"));
    assert!(
        warning.to_string().starts_with(
            "profile-v2.yaml: document 1 (ServiceProfile shop/books.shop.svc.cluster.local): \
             metadata.name: a second ServiceProfile for service books, after profile-v1.yaml \
             document 1"
        ),
        "{warning}"
    );
}

#[test]
fn a_dst_override_names_its_profile_with_its_namespace() {
    let loaded = load("profile.yaml", PROFILE);
    let books = loaded.service("books", Some("shop")).unwrap();
    let sources: Vec<&str> = books.dst_overrides().iter().map(|o| &*o.source).collect();
    assert_eq!(
        sources,
        [
            "profile.yaml: document 1 (ServiceProfile shop/books.shop.svc.cluster.local): \
             spec.dstOverrides[0]",
            "profile.yaml: document 1 (ServiceProfile shop/books.shop.svc.cluster.local): \
             spec.dstOverrides[1]",
        ]
    );
    // Without a namespace, the profile is named alone.
    let bare = PROFILE.replace(", namespace: shop}", "}");
    let loaded = load("profile.yaml", &bare);
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(
        books.dst_overrides()[0].source,
        "profile.yaml: document 1 (ServiceProfile books.shop.svc.cluster.local): \
         spec.dstOverrides[0]"
    );
}

#[test]
fn a_namespace_that_is_not_one_is_not_shown() {
    let warning = ConfigWarning {
        origin: "routes.yaml".to_owned(),
        document: 2,
        kind: "HTTPRoute".to_owned(),
        namespace: Some("Shop".to_owned()),
        name: Some("books".to_owned()),
        field: "spec.rules[0]".to_owned(),
        message: "not applied".to_owned(),
    };
    assert_eq!(
        warning.to_string(),
        "routes.yaml: document 2 (HTTPRoute books): spec.rules[0]: not applied"
    );
}

#[test]
fn routes_written_without_a_namespace_are_named_alone_in_the_messages_about_them() {
    let bare = |kind: &str, name: &str| route(kind, name).replace(", namespace: shop}", "}");
    let text = [bare("HTTPRoute", "web"), bare("GRPCRoute", "calls")].join("---\n");
    let loaded = load("routes.yaml", &text);
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(warning.namespace, None);
    let shown = warning.to_string();
    assert!(
        shown.starts_with(
            "routes.yaml: document 1 (HTTPRoute web): spec.parentRefs[0]: set aside for \
             service books, whose GRPCRoutes (calls) take its requests"
        ),
        "{shown}"
    );

    let mut merged = load("books-v1.yaml", &bare("HTTPRoute", "books"));
    merged.merge(load("books-v2.yaml", &bare("HTTPRoute", "books")));
    let [warning] = &merged.warnings[..] else {
        panic!("{:?}", merged.warnings)
    };
    assert!(
        warning.to_string().starts_with(
            "books-v2.yaml: document 1 (HTTPRoute books): metadata.name: a second HTTPRoute \
             books, after books-v1.yaml document 1"
        ),
        "{warning}"
    );
}
