//! A ServiceProfile condition that sets nothing is refused, as Linkerd's
//! profile validation refuses it ("a request match must have a field
//! set"): read as it is written, it would hold for every request (a route
//! that takes all the service's traffic, and retries every method of it
//! when `isRetryable`) or for every response (a class that calls a `200`
//! a failure), which no one means. A misspelt field (`pathregex`), which
//! is only warned about, leaves exactly such a condition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

fn profile(routes: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  routes:
{routes}"
    )
}

fn refused(routes: &str) -> (String, String, Option<usize>) {
    let err = config::load("profile.yaml", &profile(routes)).unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
    (err.field_path().to_owned(), err.to_string(), err.line())
}

#[test]
fn a_route_condition_that_sets_nothing_is_refused_where_it_is() {
    let (field, message, line) =
        refused("  - name: everything\n    condition: {}\n    isRetryable: true\n");
    assert_eq!(field, "spec.routes[0].condition");
    assert!(
        message.contains("sets none of method, pathRegex, all, any or not"),
        "{message}"
    );
    assert_eq!(line, Some(7), "{message}");
    // A misspelt field leaves the condition empty too.
    let (field, _, _) = refused(
        "  - name: list\n    condition: {method: GET, pathRegex: /list}\n  - name: typo\n    condition: {pathregex: /books}\n",
    );
    assert_eq!(field, "spec.routes[1].condition");
    // So does an empty condition inside `all` or `any`.
    let (field, _, _) = refused(
        "  - name: nested\n    condition:\n      all:\n      - {method: GET}\n      - {}\n",
    );
    assert_eq!(field, "spec.routes[0].condition.all[1]");
    let (field, _, _) = refused(
        "  - name: nested\n    condition:\n      method: GET\n      any: [{pathRegex: /a}, {}]\n",
    );
    assert_eq!(field, "spec.routes[0].condition.any[1]");
}

#[test]
fn a_response_condition_that_sets_nothing_is_refused_where_it_is() {
    let (field, message, _) = refused(
        "  - name: list
    condition: {method: GET}
    responseClasses:
    - condition: {status: {min: 500}}
      isFailure: true
    - condition: {}
      isFailure: true
",
    );
    assert_eq!(field, "spec.routes[0].responseClasses[1].condition");
    assert!(
        message.contains("sets none of status, all, any or not"),
        "{message}"
    );
    let (field, _, _) = refused(
        "  - name: list
    condition: {method: GET}
    responseClasses:
    - condition: {not: {}}
      isFailure: true
",
    );
    assert_eq!(field, "spec.routes[0].responseClasses[0].condition.not");
}

#[test]
fn conditions_that_set_something_still_load() {
    let text = profile(
        "  - name: list
    condition:
      all:
      - {method: GET}
      - any: [{pathRegex: /a}, {pathRegex: /b}]
    responseClasses:
    - condition: {any: [{status: {min: 500, max: 503}}, {status: {min: 429, max: 429}}]}
      isFailure: true
    - condition: {not: {status: {min: 200, max: 299}}}
      isFailure: false
",
    );
    let loaded = config::load("profile.yaml", &text).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(books.routes[0].matches.len(), 2);
}

#[test]
fn a_status_range_written_in_both_spellings_is_refused_where_it_is() {
    // `range` would be read and `min` left aside: 500 to 599 would be
    // failures, not 503 alone.
    let (field, message, line) = refused(
        "  - name: list
    condition: {method: GET}
    responseClasses:
    - condition:
        status: {min: 503, range: {min: 500, max: 599}}
      isFailure: true
",
    );
    assert_eq!(
        field, "spec.routes[0].responseClasses[0].condition.status.range",
        "{message}"
    );
    assert!(message.contains("write its bounds once"), "{message}");
    assert_eq!(line, Some(10), "{message}");
}
