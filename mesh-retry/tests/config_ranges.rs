//! Values the resources' own schemas refuse are refused here too, with the
//! field and the allowed range, rather than read into a policy that does
//! something nobody wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

/// The error for `text`, as displayed; panics if it loads.
fn error(text: &str) -> String {
    let err = config::load("test.yaml", text).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
    err.to_string()
}

const PROFILE: &str = r#"
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: { name: books.shop.svc.cluster.local, namespace: shop }
spec:
  routes:
  - name: create
    condition: { method: POST, pathRegex: /books }
    isRetryable: true
    responseClasses:
    - condition: { status: { min: 500, max: 504 } }
      isFailure: true
"#;

#[test]
fn a_response_class_status_range_must_be_a_range_of_statuses() {
    for (range, field, message) in [
        (
            "{ min: 504, max: 500 }",
            "status",
            "status range 504 to 500 starts after it ends",
        ),
        (
            "{ min: 50, max: 504 }",
            "status.min",
            "status 50 is outside the allowed range 100 to 599",
        ),
        (
            "{ min: 500, max: 600 }",
            "status.max",
            "status 600 is outside the allowed range 100 to 599",
        ),
        (
            "{ range: { min: 599, max: 500 } }",
            "status.range",
            "status range 599 to 500 starts after it ends",
        ),
    ] {
        let text = PROFILE.replace("{ min: 500, max: 504 }", range);
        let message =
            format!("spec.routes[0].responseClasses[0].condition.{field}: {message} at line");
        let err = error(&text);
        assert!(err.contains(&message), "{range}: {err}");
    }
    // Nested conditions are checked too, where they are.
    let nested = PROFILE.replace(
        "{ status: { min: 500, max: 504 } }",
        "{ all: [ { status: { min: 500 } }, { not: { status: { min: 300, max: 200 } } } ] }",
    );
    let err = error(&nested);
    assert!(
        err.contains(
            "spec.routes[0].responseClasses[0].condition.all[1].not.status: \
             status range 300 to 200 starts after it ends"
        ),
        "{err}"
    );
}

#[test]
fn a_zero_status_bound_is_unset_as_in_linkerd() {
    // 502 and up are no failures; 500 and 501 stay failures, as every 5xx
    // no class names.
    let text = PROFILE
        .replace("{ min: 500, max: 504 }", "{ min: 502, max: 0 }")
        .replace("isFailure: true", "isFailure: false");
    let loaded = config::load("test.yaml", &text).unwrap();
    let route = &loaded.service("books", Some("shop")).unwrap().routes[0];
    let retried = route.retry.http_statuses();
    assert!(!retried.contains(StatusCode::BAD_GATEWAY));
    assert!(!retried.contains(StatusCode::from_u16(599).unwrap()));
    assert!(retried.contains(StatusCode::INTERNAL_SERVER_ERROR));
}

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: books, namespace: shop }
spec:
  parentRefs: [{ group: core, kind: Service, name: books }]
  rules:
  - timeouts: { request: 3s, backendRequest: 1s }
    retry: { codes: [502, 503], attempts: 2 }
"#;

#[test]
fn retry_codes_are_the_gateway_apis_400_to_599() {
    for code in ["200", "302", "399", "600", "999"] {
        let err = error(&ROUTE.replace("codes: [502, 503]", &format!("codes: [502, {code}]")));
        let message = format!(
            "spec.rules[0].retry.codes[1]: http status {code} is outside the allowed range 400 to 599"
        );
        assert!(err.contains(&message), "{code}: {err}");
    }
    let text = ROUTE.replace("codes: [502, 503]", "codes: [400, 429, 599]");
    let loaded = config::load("test.yaml", &text).unwrap();
    let retried = loaded.services[0].routes[0].retry.http_statuses();
    assert_eq!(retried, &"400,429,599".parse().unwrap());
}

#[test]
fn a_backend_request_timeout_longer_than_the_request_timeout_is_refused() {
    let err = error(&ROUTE.replace("backendRequest: 1s", "backendRequest: 5s"));
    assert!(
        err.contains(
            "spec.rules[0].timeouts.backendRequest: backendRequest timeout 5s \
             cannot be longer than the request timeout 3s"
        ),
        "{err}"
    );
    // Equal is allowed, and so is any when the request timeout is off.
    for timeouts in [
        "{ request: 3s, backendRequest: 3s }",
        "{ request: 0s, backendRequest: 5s }",
        "{ backendRequest: 5s }",
    ] {
        let text = ROUTE.replace("{ request: 3s, backendRequest: 1s }", timeouts);
        config::load("test.yaml", &text).unwrap();
    }
}

#[test]
fn linkerd_annotations_without_a_limit_retry_once_as_in_linkerd() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books
  namespace: shop
  annotations: { retry.linkerd.io/http: 5xx }
spec:
  parentRefs: [{ group: core, kind: Service, name: books }]
  rules:
  - matches: [{ path: { value: /a } }]
  - matches: [{ path: { value: /b } }]
    retry: { attempts: 3 }
"#;
    let loaded = config::load("test.yaml", text).unwrap();
    let routes = &loaded.services[0].routes;
    let attempts = |i: usize| routes[i].retry.max_attempts().get();
    assert_eq!(attempts(0), 2, "Linkerd's limit defaults to one retry");
    assert_eq!(attempts(1), 4, "the rule's own attempts win");
    let limited = text.replace(
        "{ retry.linkerd.io/http: 5xx }",
        "{ retry.linkerd.io/http: 5xx, retry.linkerd.io/limit: \"3\" }",
    );
    let loaded = config::load("test.yaml", &limited).unwrap();
    assert_eq!(loaded.services[0].routes[0].retry.max_attempts().get(), 4);
}
