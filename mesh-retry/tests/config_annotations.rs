//! Linkerd annotations that are read but not applied are named for what
//! they are, so that a Linkerd user does not take them for a typo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_retry::config;

fn route(annotations: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: books, namespace: shop, annotations: {{{annotations}}}}}
spec:
  parentRefs: [{{kind: Service, group: core, name: books}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
"
    )
}

#[test]
fn linkerds_response_timeout_is_named_as_not_supported_with_what_to_use() {
    let loaded = config::load(
        "routes.yaml",
        &route("timeout.linkerd.io/response: 5s, timeout.linkerd.io/request: 10s"),
    )
    .unwrap();
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(
        warning.field,
        "metadata.annotations.timeout.linkerd.io/response"
    );
    assert!(
        warning
            .message
            .contains("Linkerd's response timeout is not supported"),
        "{warning}"
    );
    assert!(
        warning.message.contains("timeouts.backendRequest"),
        "{warning}"
    );
    // The annotation beside it is applied.
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(
        books.routes[0].timeouts.request,
        Some(std::time::Duration::from_secs(10))
    );
    // A misspelt key is still called unknown.
    let loaded = config::load("routes.yaml", &route("timeout.linkerd.io/requets: 10s")).unwrap();
    assert!(
        loaded.warnings[0].message.contains("unknown annotation"),
        "{}",
        loaded.warnings[0]
    );
}
