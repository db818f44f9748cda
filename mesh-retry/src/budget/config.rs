//! The budget's parameters, validated once.

use std::{fmt, time::Duration};

/// The parameters of a [`Budget`](super::Budget), in Finagle's terms.
///
/// | parameter | default | allowed |
/// |---|---|---|
/// | [`retry_ratio`](Self::retry_ratio) | 0.2 | 0 to 1000 |
/// | [`min_retries_per_second`](Self::min_retries_per_second) | 10 | any |
/// | [`ttl`](Self::ttl) | 10 s | 1 s to 60 s |
///
/// These are the defaults of Finagle, of Linkerd's ServiceProfile
/// `retryBudget` and of tower's `TpsBudget`. The same budget can be written
/// in the Gateway API's spelling (GEP-3388) with
/// [`from_gateway`](Self::from_gateway): a percentage, an interval and a
/// minimum retry rate over an interval of its own.
///
/// ```
/// use std::time::Duration;
/// use mesh_retry::BudgetConfig;
///
/// let config = BudgetConfig::new(0.3, 5, Duration::from_secs(20))?;
/// assert_eq!(config.retry_ratio(), 0.3);
///
/// let err = BudgetConfig::new(0.2, 10, Duration::from_secs(120)).unwrap_err();
/// assert_eq!(err.to_string(), "ttl 120s is outside the allowed range 1s to 60s");
/// # Ok::<(), mesh_retry::budget::InvalidBudget>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    retry_ratio: f64,
    min_retries: u32,
    min_retries_interval: Duration,
    ttl: Duration,
}

/// The smallest and largest ratio Finagle accepts.
const RATIO_RANGE: (f64, f64) = (0.0, 1000.0);
/// The shortest and longest ttl Finagle accepts.
const TTL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

impl Default for BudgetConfig {
    /// A ratio of 0.2, 10 retries per second in reserve, and a ttl of 10 s.
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            min_retries: 10,
            min_retries_interval: Duration::from_secs(1),
            ttl: Duration::from_secs(10),
        }
    }
}

impl BudgetConfig {
    /// A budget that allows `retry_ratio` retries per request on top of a
    /// reserve of `min_retries_per_second` per second, counting over `ttl`.
    ///
    /// # Errors
    ///
    /// [`InvalidBudget::RetryRatio`] when the ratio is outside 0 to 1000 (or
    /// not a number), and [`InvalidBudget::Ttl`] when the ttl is outside 1 s
    /// to 60 s.
    pub fn new(
        retry_ratio: f64,
        min_retries_per_second: u32,
        ttl: Duration,
    ) -> Result<Self, InvalidBudget> {
        Self::with_min_rate(
            retry_ratio,
            min_retries_per_second,
            Duration::from_secs(1),
            ttl,
        )
    }

    /// The Gateway API's spelling (GEP-3388): `budgetPercent` of requests may
    /// be retried, over `budgetInterval`, plus a `minRetryRate` of `count`
    /// retries per `interval`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), with the percentage checked as a ratio (0 to
    /// 100 000 %), and [`InvalidBudget::MinRetryInterval`] when the rate's
    /// interval is zero.
    pub fn from_gateway(
        budget_percent: u32,
        budget_interval: Duration,
        min_retry_count: u32,
        min_retry_interval: Duration,
    ) -> Result<Self, InvalidBudget> {
        if min_retry_interval.is_zero() {
            return Err(InvalidBudget::MinRetryInterval);
        }
        Self::with_min_rate(
            f64::from(budget_percent) / 100.0,
            min_retry_count,
            min_retry_interval,
            budget_interval,
        )
    }

    fn with_min_rate(
        retry_ratio: f64,
        min_retries: u32,
        min_retries_interval: Duration,
        ttl: Duration,
    ) -> Result<Self, InvalidBudget> {
        if !(RATIO_RANGE.0..=RATIO_RANGE.1).contains(&retry_ratio) {
            return Err(InvalidBudget::RetryRatio(retry_ratio));
        }
        if !(TTL_RANGE.0..=TTL_RANGE.1).contains(&ttl) {
            return Err(InvalidBudget::Ttl(ttl));
        }
        Ok(Self {
            retry_ratio,
            min_retries,
            min_retries_interval,
            ttl,
        })
    }

    /// How many retries each request adds to the budget: 0.2 allows one
    /// retry for every five requests.
    pub fn retry_ratio(&self) -> f64 {
        self.retry_ratio
    }

    /// The retries per second that are always allowed, whatever the traffic,
    /// so that a client with few requests can still retry.
    pub fn min_retries_per_second(&self) -> f64 {
        f64::from(self.min_retries) / self.min_retries_interval.as_secs_f64()
    }

    /// How long a request's deposit, and a retry's withdrawal, count.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The reserve: `min_retries_per_second × ttl`, the retries a budget
    /// allows with no requests at all, in units of `1 / scale` retry.
    pub(super) fn reserve_units(&self, scale: i64) -> i64 {
        let numerator = u128::from(self.min_retries)
            .saturating_mul(self.ttl.as_nanos())
            .saturating_mul(scale.unsigned_abs().into());
        let units = numerator / self.min_retries_interval.as_nanos().max(1);
        i64::try_from(units).unwrap_or(i64::MAX)
    }
}

/// A budget parameter outside its allowed range.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum InvalidBudget {
    /// `retry_ratio` (`retryRatio`, or `budgetPercent` / 100) is outside
    /// 0 to 1000.
    RetryRatio(f64),
    /// `ttl` (`budgetInterval`) is outside 1 s to 60 s.
    Ttl(Duration),
    /// `minRetryRate.interval` is zero.
    MinRetryInterval,
}

impl fmt::Display for InvalidBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RetryRatio(ratio) => write!(
                f,
                "retry ratio {ratio} is outside the allowed range {} to {}",
                RATIO_RANGE.0, RATIO_RANGE.1
            ),
            Self::Ttl(ttl) => write!(
                f,
                "ttl {ttl:?} is outside the allowed range {:?} to {:?}",
                TTL_RANGE.0, TTL_RANGE.1
            ),
            Self::MinRetryInterval => f.write_str("minimum retry rate interval must be above zero"),
        }
    }
}

impl std::error::Error for InvalidBudget {}
