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
