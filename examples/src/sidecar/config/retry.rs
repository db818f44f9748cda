//! A service's own `retry`, `timeouts` and `budget`: the policy of requests
//! that no `HTTPRoute` rule or `ServiceProfile` route of the service
//! matches.

use std::num::NonZeroU32;

use mesh_core::{
    classify::{GrpcCode, GrpcCodes, StatusRanges},
    proxy::{FailureAccrual, InvalidFailureAccrual},
};
use mesh_retry::{BudgetConfig, RetryPolicy, Timeouts, budget::InvalidBudget};
use serde::Deserialize;
use serde::de::Deserializer;

use super::error::{ConfigError, ConfigErrorKind};
use super::file::{Number, ParseStr, Timeout, Whole};
use super::resolve::Source;

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with attempts, http, grpc, any_method and unprocessed"
)]
pub(super) struct RetrySection {
    attempts: Option<Whole<1, { u32::MAX as u64 }>>,
    http: Option<Statuses>,
    grpc: Option<Codes>,
    any_method: Option<bool>,
    unprocessed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with request, per_try and idle"
)]
pub(super) struct TimeoutsSection {
    request: Option<Timeout>,
    per_try: Option<Timeout>,
    idle: Option<Timeout>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with retry_ratio, min_retries_per_second and ttl"
)]
pub(super) struct BudgetSection {
    retry_ratio: Option<Number>,
    min_retries_per_second: Option<Whole<0, { u32::MAX as u64 }>>,
    ttl: Option<Timeout>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with max_failures, min_penalty, max_penalty and jitter"
)]
pub(super) struct AccrualSection {
    max_failures: Option<Whole<1, { u32::MAX as u64 }>>,
    min_penalty: Option<Timeout>,
    max_penalty: Option<Timeout>,
    jitter: Option<Number>,
}

/// Finagle's and Linkerd's reserve, as [`BudgetConfig::default`] has it.
const DEFAULT_MIN_RETRIES_PER_SECOND: u32 = 10;

#[derive(Debug)]
struct Statuses(StatusRanges);

impl<'de> Deserialize<'de> for Statuses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "http statuses",
            expecting: "statuses such as 5xx, gateway-error, 500-504 or 503, comma-separated",
            parse: |text: &str| retried_statuses(text).map(Statuses),
        })
    }
}

/// The statuses `text` names, as retried statuses: none above 599, which
/// Linkerd's `retry.linkerd.io/http` refuses too, and no success (2xx),
/// which would send every request that succeeded again, as the Gateway
/// API refuses a `retry.codes` entry below 400.
fn retried_statuses(text: &str) -> Result<StatusRanges, String> {
    let statuses = text
        .parse::<StatusRanges>()
        .map_err(|error| error.to_string())?;
    let allowed = "retried statuses are from 100 to 599, and not a success (2xx)";
    for range in statuses.ranges() {
        if *range.end() > MAX_RETRIED_STATUS {
            let status = (*range.start()).max(MAX_RETRIED_STATUS + 1);
            return Err(format!("{status} is not an http status: {allowed}"));
        }
        if *range.start() <= 299 && *range.end() >= 200 {
            let status = (*range.start()).max(200);
            return Err(format!(
                "{status} is a success, which retrying would send again: {allowed}"
            ));
        }
    }
    Ok(statuses)
}

/// The largest status a retry policy names, as Linkerd reads them.
const MAX_RETRIED_STATUS: u16 = 599;

#[derive(Debug)]
struct Codes(GrpcCodes);

impl<'de> Deserialize<'de> for Codes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "grpc codes",
            expecting: "grpc codes such as unavailable or internal, comma-separated",
            parse: |text: &str| retried_codes(text).map(Codes),
        })
    }
}

/// The codes `text` names, as retried codes: not `ok`, a call that
/// succeeded, which retrying would send again; Linkerd refuses it in
/// `retry.linkerd.io/grpc` too.
fn retried_codes(text: &str) -> Result<GrpcCodes, String> {
    let codes = text
        .parse::<GrpcCodes>()
        .map_err(|error| error.to_string())?;
    if codes.contains(GrpcCode::OK) {
        return Err(
            "ok (0) is a successful call, which retrying would send again: name failure \
             codes only, such as unavailable"
                .to_owned(),
        );
    }
    Ok(codes)
}

/// A whole number from 1 to `u32::MAX`, as its type reads it.
fn non_zero_u32(value: Whole<1, { u32::MAX as u64 }>) -> NonZeroU32 {
    u32::try_from(value.0)
        .ok()
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MAX)
}

/// The retry policy `retry:` describes: retries on, with the defaults of
/// [`RetryPolicy`] for what it leaves out.
pub(super) fn resolve_retry(section: RetrySection) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Some(attempts) = section.attempts {
        policy = policy.with_max_attempts(non_zero_u32(attempts));
    }
    if let Some(statuses) = section.http {
        policy = policy.with_http_statuses(statuses.0);
    }
    if let Some(codes) = section.grpc {
        policy = policy.with_grpc_codes(codes.0);
    }
    if let Some(any) = section.any_method {
        policy = policy.with_any_method(any);
    }
    if let Some(unprocessed) = section.unprocessed {
        policy = policy.with_unprocessed(unprocessed);
    }
    policy
}

pub(super) fn resolve_timeouts(section: &TimeoutsSection) -> Timeouts {
    Timeouts {
        request: section.request.map(|t| t.0),
        per_try: section.per_try.map(|t| t.0),
        idle: section.idle.map(|t| t.0),
    }
}

/// The failure accrual `failure_accrual:` describes, with Linkerd's
/// defaults for what it leaves out, checked against Linkerd's ranges; `at`
/// is the section's field path.
pub(super) fn resolve_accrual(
    section: &AccrualSection,
    at: &str,
    source: Source<'_>,
) -> Result<FailureAccrual, ConfigError> {
    let default = FailureAccrual::default();
    FailureAccrual::new(
        section
            .max_failures
            .map_or(default.max_failures(), non_zero_u32),
        section.min_penalty.map_or(default.min_penalty(), |t| t.0),
        section.max_penalty.map_or(default.max_penalty(), |t| t.0),
        section.jitter.map_or(default.jitter(), |jitter| jitter.0),
    )
    .map_err(|error| {
        let field = match error {
            InvalidFailureAccrual::Penalties { .. } => "min_penalty",
            InvalidFailureAccrual::ZeroPenalty => "max_penalty",
            InvalidFailureAccrual::Jitter(_) => "jitter",
        };
        invalid(source, &format!("{at}.{field}"), error)
    })
}

/// The budget `budget:` describes, checked against the ranges Finagle
/// allows; `at` is the section's field path.
pub(super) fn resolve_budget(
    section: &BudgetSection,
    at: &str,
    source: Source<'_>,
) -> Result<BudgetConfig, ConfigError> {
    let default = BudgetConfig::default();
    let ratio = section
        .retry_ratio
        .map_or(default.retry_ratio(), |ratio| ratio.0);
    let min = section
        .min_retries_per_second
        .map_or(DEFAULT_MIN_RETRIES_PER_SECOND, |min| {
            u32::try_from(min.0).unwrap_or(u32::MAX)
        });
    let ttl = section.ttl.map_or(default.ttl(), |t| t.0);
    BudgetConfig::new(ratio, min, ttl).map_err(|error| {
        let field = match error {
            InvalidBudget::Ttl(_) => "ttl",
            _ => "retry_ratio",
        };
        invalid(source, &format!("{at}.{field}"), error)
    })
}

/// The error for a value at `path` that its type refused with `error`.
fn invalid(
    source: Source<'_>,
    path: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> ConfigError {
    source
        .error(ConfigErrorKind::InvalidValue, path, path, error.to_string())
        .with_source(Some(Box::new(error)))
}
