//! A ServiceProfile value that cannot be read is refused at its own line,
//! with its field and what it may be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceError;
use mesh_retry::config;

/// A profile with `budget` under `retryBudget` (from line 6) and one route
/// whose last line is `extra` (line 14, after a budget of three lines).
fn profile(budget: &str, extra: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  retryBudget:
{budget}
  routes:
  - name: list
    condition:
      method: GET
    isRetryable: true
{extra}"
    )
}

const BUDGET: &str = "    retryRatio: 0.2\n    minRetriesPerSecond: 10\n    ttl: 10s";

fn refused(text: &str) -> ResourceError {
    config::load("profile.yaml", text).unwrap_err()
}

#[test]
fn a_duration_that_is_not_one_is_refused_at_its_own_line() {
    for (text, field, line) in [
        (
            profile(
                "    retryRatio: 0.2\n    minRetriesPerSecond: 10\n    ttl: -1s",
                "",
            ),
            "spec.retryBudget.ttl",
            8,
        ),
        (
            profile("    budgetPercent: 20\n    budgetInterval: 10 s", ""),
            "spec.retryBudget.budgetInterval",
            7,
        ),
        (
            profile(
                "    budgetPercent: 20\n    minRetryRate:\n      count: 1\n      interval: 1x",
                "",
            ),
            "spec.retryBudget.minRetryRate.interval",
            9,
        ),
        (
            profile(BUDGET, "    timeout: 300"),
            "spec.routes[0].timeout",
            14,
        ),
        (
            profile(BUDGET, "    timeout: 300000000h"),
            "spec.routes[0].timeout",
            14,
        ),
    ] {
        let err = refused(&text);
        assert_eq!(err.field_path(), field, "{err}");
        assert_eq!(err.line(), Some(line), "{err}");
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}

#[test]
fn a_duration_that_is_not_a_string_says_what_is_expected() {
    let err = refused(&profile(BUDGET, "    timeout: [1s]"));
    assert_eq!(err.field_path(), "spec.routes[0].timeout", "{err}");
    assert_eq!(err.line(), Some(14), "{err}");
    assert!(err.to_string().contains("a Go duration"), "{err}");
}

#[test]
fn a_number_past_what_its_type_holds_is_refused_with_the_fields_range() {
    let class =
        |status: &str| format!("    responseClasses:\n    - condition: {{status: {status}}}");
    for (text, field, line, message) in [
        (
            profile(BUDGET, &class("{min: 70000}")),
            "spec.routes[0].responseClasses[0].condition.status.min",
            15,
            "status 70000 is outside the allowed range 100 to 599",
        ),
        (
            profile(BUDGET, &class("{range: {max: -1}}")),
            "spec.routes[0].responseClasses[0].condition.status.range.max",
            15,
            "status -1 is outside the allowed range 100 to 599",
        ),
        (
            profile("    budgetPercent: -1", ""),
            "spec.retryBudget.budgetPercent",
            6,
            "budget percent -1 is outside the allowed range 0 to 100",
        ),
        (
            profile("    budgetPercent: 99999999999", ""),
            "spec.retryBudget.budgetPercent",
            6,
            "budget percent 99999999999 is outside the allowed range 0 to 100",
        ),
        (
            profile(
                "    retryRatio: 0.2\n    minRetriesPerSecond: -1\n    ttl: 10s",
                "",
            ),
            "spec.retryBudget.minRetriesPerSecond",
            7,
            "min retries per second -1 is outside the allowed range 0 to 4294967295",
        ),
        (
            profile("    minRetryRate: {count: 4294967296, interval: 1s}", ""),
            "spec.retryBudget.minRetryRate.count",
            6,
            "minimum retry count 4294967296 is outside the allowed range 0 to 4294967295",
        ),
    ] {
        let err = refused(&text);
        assert_eq!(err.field_path(), field, "{err}");
        assert_eq!(err.line(), Some(line), "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn a_retry_ratio_that_is_not_a_number_says_what_it_may_be() {
    let err = refused(&profile(
        "    retryRatio: lots\n    minRetriesPerSecond: 10\n    ttl: 10s",
        "",
    ));
    assert_eq!(err.field_path(), "spec.retryBudget.retryRatio", "{err}");
    assert_eq!(err.line(), Some(6), "{err}");
    assert!(
        err.to_string()
            .contains("expected a retry ratio from 0 to 1000"),
        "{err}"
    );
    for (ratio, expected) in [("1", 1.0), ("0", 0.0), ("0.25", 0.25), ("1000", 1000.0)] {
        let text = profile(
            &format!("    retryRatio: {ratio}\n    minRetriesPerSecond: 10\n    ttl: 10s"),
            "",
        );
        let loaded = config::load("profile.yaml", &text).unwrap();
        let books = loaded.service("books", Some("shop")).unwrap();
        assert_eq!(books.budget.retry_ratio(), expected, "{ratio}");
    }
    let err = refused(&profile(
        "    retryRatio: 99999999999999999999\n    minRetriesPerSecond: 10\n    ttl: 10s",
        "",
    ));
    assert!(
        err.to_string()
            .contains("outside the allowed range 0 to 1000"),
        "{err}"
    );
}

#[test]
fn numbers_within_their_range_still_load() {
    let text = profile(
        "    budgetPercent: 100\n    minRetryRate: {count: 4294967295, interval: 1s}",
        "    responseClasses:\n    - condition: {status: {min: 0, max: ~}}\n      isFailure: true",
    );
    config::load("profile.yaml", &text).unwrap();
    let text = profile(
        "    retryRatio: 0.2\n    minRetriesPerSecond: 0\n    ttl: 10s",
        "    responseClasses:\n    - condition: {status: {range: {min: 500, max: 599}}}",
    );
    config::load("profile.yaml", &text).unwrap();
}
