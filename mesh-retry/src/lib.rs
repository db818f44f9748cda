//! Retries bounded by a budget, bounded request-body replay, timeouts and
//! deadlines, as tower layers.

pub mod budget;
pub mod deadline;
pub mod metrics;
pub mod replay;
pub mod retry;
pub mod timeout;

pub use self::{
    budget::{Budget, BudgetConfig},
    deadline::Deadline,
    metrics::{RetryMetrics, RouteRetryMetrics},
    retry::{Backoff, Retry, RetryLayer, RetryPolicy},
    timeout::{AttemptTimeoutLayer, RequestTimeoutLayer, Timeouts},
};
