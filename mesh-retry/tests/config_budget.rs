//! A retry budget is held to the schema of its spelling: in the Gateway
//! API's (GEP-3388) `budgetPercent` is a percentage, 0 to 100; in Linkerd's
//! ServiceProfile, `retryRatio`, `minRetriesPerSecond` and `ttl` are all
//! required.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

fn profile(budget: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: books.shop.svc.cluster.local, namespace: shop}}
spec:
  retryBudget:
{budget}"
    )
}

#[test]
fn a_budget_percent_above_100_is_refused_where_it_is() {
    for percent in [101, 150, 100_000] {
        let text = profile(&format!("    budgetPercent: {percent}\n"));
        let err = config::load("profile.yaml", &text).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
        assert_eq!(err.field_path(), "spec.retryBudget.budgetPercent", "{err}");
        assert_eq!(err.line(), Some(6), "{err}");
        assert!(
            err.to_string().contains(&format!(
                "budget percent {percent} is outside the allowed range 0 to 100"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_budget_percent_from_0_to_100_is_the_ratio_of_retries() {
    for (percent, ratio) in [(0, 0.0), (20, 0.2), (100, 1.0)] {
        let text = profile(&format!("    budgetPercent: {percent}\n"));
        let loaded = config::load("profile.yaml", &text).unwrap();
        let books = loaded.service("books", Some("shop")).unwrap();
        assert_eq!(books.budget.retry_ratio(), ratio, "{percent}");
    }
}

#[test]
fn a_linkerd_budget_needs_all_three_of_its_fields() {
    // Linkerd's ServiceProfile CRD requires retryRatio, minRetriesPerSecond
    // and ttl together; its controller would read one left out as zero
    // (no reserve, or no window), not as this crate's default.
    for (budget, missing) in [
        (
            "    retryRatio: 0.1\n    ttl: 10s\n",
            "the budget has no minRetriesPerSecond:",
        ),
        (
            "    retryRatio: 0.1\n    minRetriesPerSecond: 5\n",
            "the budget has no ttl:",
        ),
        (
            "    minRetriesPerSecond: 5\n",
            "the budget has no retryRatio or ttl:",
        ),
        (
            "    {}\n",
            "the budget has no retryRatio or minRetriesPerSecond or ttl:",
        ),
    ] {
        let err = config::load("profile.yaml", &profile(budget)).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
        assert_eq!(err.field_path(), "spec.retryBudget", "{err}");
        assert_eq!(err.line(), Some(6), "{err}");
        assert!(err.to_string().contains(missing), "{missing}: {err}");
        assert!(
            err.to_string()
                .contains("requires retryRatio, minRetriesPerSecond and ttl together"),
            "{err}"
        );
    }
    // All three are read as written.
    let text = profile("    retryRatio: 0.1\n    minRetriesPerSecond: 0\n    ttl: 5s\n");
    let loaded = config::load("profile.yaml", &text).unwrap();
    let budget = loaded.service("books", Some("shop")).unwrap().budget;
    assert_eq!(budget.retry_ratio(), 0.1);
    assert_eq!(budget.min_retries_per_second(), 0.0);
    assert_eq!(budget.ttl(), std::time::Duration::from_secs(5));
}
