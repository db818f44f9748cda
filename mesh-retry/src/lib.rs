//! Retries bounded by a budget, bounded request-body replay, timeouts and deadlines.

pub mod budget;

pub use budget::{Budget, BudgetConfig};
