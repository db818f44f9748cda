//! A retry budget as written in configuration, in either spelling.

use std::time::Duration;

use serde::Deserialize;

use super::{GoDuration, numbers};
use crate::budget::{BudgetConfig, InvalidBudget};

/// A retry budget as configuration writes it, in Linkerd's spelling
/// (a ServiceProfile's `retryBudget`) or the Gateway API's (GEP-3388):
///
/// ```yaml
/// retryBudget:              # Linkerd, Finagle
///   retryRatio: 0.2
///   minRetriesPerSecond: 10
///   ttl: 10s
/// ---
/// retryBudget:              # Gateway API
///   budgetPercent: 20
///   budgetInterval: 10s
///   minRetryRate: { count: 10, interval: 1s }
/// ```
///
/// In Linkerd's spelling all three fields are required, as the
/// ServiceProfile CRD's schema requires them (`required: [minRetriesPerSecond,
/// retryRatio, ttl]`): Linkerd's controller would read a field left out as
/// zero, so a budget without `minRetriesPerSecond` has no reserve there,
/// not the default's ten a second, and one without `ttl` is refused. In the
/// Gateway API's spelling a field left out takes its default. The two
/// spellings cannot be mixed.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpec {
    /// `retryRatio`.
    #[serde(default, deserialize_with = "numbers::retry_ratio")]
    pub retry_ratio: Option<f64>,
    /// `minRetriesPerSecond`.
    #[serde(default, deserialize_with = "numbers::min_retries_per_second")]
    pub min_retries_per_second: Option<u32>,
    /// `ttl`.
    #[serde(default)]
    pub ttl: Option<GoDuration>,
    /// `budgetPercent`.
    #[serde(default, deserialize_with = "numbers::budget_percent")]
    pub budget_percent: Option<u32>,
    /// `budgetInterval`.
    #[serde(default)]
    pub budget_interval: Option<GoDuration>,
    /// `minRetryRate`.
    #[serde(default)]
    pub min_retry_rate: Option<MinRetryRate>,
}

/// `minRetryRate`: at least `count` retries per `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct MinRetryRate {
    /// `count`.
    #[serde(deserialize_with = "numbers::min_retry_count")]
    pub count: u32,
    /// `interval`.
    pub interval: GoDuration,
}

/// A budget field that is wrong: the field (relative to the budget) and
/// what is wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidBudgetSpec {
    /// The field, such as `ttl` or `minRetryRate.interval`; empty for the
    /// budget as a whole.
    pub field: &'static str,
    /// What is wrong, with the allowed range.
    pub message: String,
}

impl BudgetSpec {
    /// The budget, with the defaults for what the Gateway API's spelling
    /// leaves out.
    ///
    /// # Errors
    ///
    /// A field of Linkerd's spelling left out (the error's `field` is then
    /// empty: the budget itself), or the first field outside its range: a
    /// ratio outside 0 to 1000, a
    /// percentage above 100 (the Gateway API's schema refuses one), a ttl
    /// or interval outside 1 s to 60 s, a zero `minRetryRate.interval`; or
    /// fields of both spellings.
    pub fn to_config(&self) -> Result<BudgetConfig, InvalidBudgetSpec> {
        let linkerd = self.retry_ratio.is_some()
            || self.min_retries_per_second.is_some()
            || self.ttl.is_some();
        let gateway = self.budget_percent.is_some()
            || self.budget_interval.is_some()
            || self.min_retry_rate.is_some();
        let default = BudgetConfig::default();
        if linkerd && gateway {
            return Err(InvalidBudgetSpec {
                field: if self.budget_percent.is_some() {
                    "budgetPercent"
                } else if self.budget_interval.is_some() {
                    "budgetInterval"
                } else {
                    "minRetryRate"
                },
                message: "write the budget either as retryRatio, minRetriesPerSecond and ttl, \
                          or as budgetPercent, budgetInterval and minRetryRate, not both"
                    .into(),
            });
        }
        if gateway {
            // GEP-3388's schema: a percentage, `Minimum=0`, `Maximum=100`.
            if let Some(percent) = self.budget_percent.filter(|&p| p > MAX_BUDGET_PERCENT) {
                return Err(InvalidBudgetSpec {
                    field: "budgetPercent",
                    message: format!(
                        "budget percent {percent} is outside the allowed range 0 to \
                         {MAX_BUDGET_PERCENT}"
                    ),
                });
            }
            let rate = self.min_retry_rate.unwrap_or(MinRetryRate {
                count: 10,
                interval: Duration::from_secs(1).into(),
            });
            return BudgetConfig::from_gateway(
                self.budget_percent.unwrap_or(20),
                self.budget_interval.map_or(default.ttl(), GoDuration::get),
                rate.count,
                rate.interval.get(),
            )
            .map_err(|e| match e {
                InvalidBudget::RetryRatio(_) => InvalidBudgetSpec {
                    field: "budgetPercent",
                    message: format!(
                        "budget percent {} is outside the allowed range 0 to \
                         {MAX_BUDGET_PERCENT}",
                        self.budget_percent.unwrap_or(20)
                    ),
                },
                InvalidBudget::Ttl(_) => invalid("budgetInterval", &e),
                _ => invalid("minRetryRate.interval", &e),
            });
        }
        let (Some(ratio), Some(min), Some(ttl)) =
            (self.retry_ratio, self.min_retries_per_second, self.ttl)
        else {
            let missing: Vec<&str> = [
                ("retryRatio", self.retry_ratio.is_none()),
                ("minRetriesPerSecond", self.min_retries_per_second.is_none()),
                ("ttl", self.ttl.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect();
            return Err(InvalidBudgetSpec {
                field: "",
                message: format!(
                    "the budget has no {}: Linkerd's ServiceProfile requires retryRatio, \
                     minRetriesPerSecond and ttl together (write the Gateway API's \
                     budgetPercent, budgetInterval and minRetryRate for defaults)",
                    missing.join(" or ")
                ),
            });
        };
        BudgetConfig::new(ratio, min, ttl.get()).map_err(|e| match e {
            InvalidBudget::RetryRatio(_) => invalid("retryRatio", &e),
            _ => invalid("ttl", &e),
        })
    }
}

/// The largest `budgetPercent` the Gateway API's schema allows: all of
/// the requests.
const MAX_BUDGET_PERCENT: u32 = 100;

fn invalid(field: &'static str, error: &InvalidBudget) -> InvalidBudgetSpec {
    InvalidBudgetSpec {
        field,
        message: error.to_string(),
    }
}
