//! A retry budget in the Gateway API's spelling (GEP-3388) is held to that
//! API's schema: `budgetPercent` is a percentage, 0 to 100.
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
