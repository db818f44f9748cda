//! Durations in the Gateway API format (GEP-2257).
//!
//! Kubernetes users already write timeouts this way in `HTTPRoute`s, so the
//! sidecar's file reads them the same way: one to four parts, each a whole
//! number of up to five digits followed by `h`, `m`, `s` or `ms`. The parts
//! add up, as in Go's `time.ParseDuration`: `1m30s` is 90 seconds, and
//! `1h1h` is two hours. There are no fractions, no negative values and no
//! spaces.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Writes `duration` as the sidecar's file would: hours, minutes, seconds
/// and milliseconds, each only when not zero (`24h`, `1m30s`, `500ms`;
/// `0s` for zero). Anything below a millisecond is left out.
///
/// ```
/// use std::time::Duration;
/// use mesh_examples::sidecar::config::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(86_400)), "24h");
/// assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let parts = [
        (millis / 3_600_000, "h"),
        (millis / 60_000 % 60, "m"),
        (millis / 1_000 % 60, "s"),
        (millis % 1_000, "ms"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text
    }
}

/// Parses a Gateway API duration (GEP-2257), such as `10s`, `1m30s` or
/// `500ms`.
///
/// The accepted text is exactly `^([0-9]{1,5}(h|m|s|ms)){1,4}$`.
///
/// ```
/// use std::time::Duration;
/// use mesh_examples::sidecar::config::parse_duration;
///
/// assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert!(parse_duration("1.5s").is_err());
/// ```
///
/// # Errors
///
/// [`InvalidDuration`] when the text does not match the format. Its message
/// says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = InvalidDuration {
        reason: Reason::Format,
    };
    let mut rest = text;
    let mut parts = 0;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(invalid);
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| invalid)?;
        let (unit, after) = if let Some(after) = after.strip_prefix("ms") {
            (Duration::from_millis(1), after)
        } else if let Some(after) = after.strip_prefix('h') {
            (Duration::from_secs(3600), after)
        } else if let Some(after) = after.strip_prefix('m') {
            (Duration::from_secs(60), after)
        } else if let Some(after) = after.strip_prefix('s') {
            (Duration::from_secs(1), after)
        } else {
            return Err(invalid);
        };
        parts += 1;
        if parts > 4 {
            return Err(invalid);
        }
        // At most 4 × 99999 h: far from overflowing.
        let part = unit.saturating_mul(u32::try_from(value).map_err(|_| invalid)?);
        total = total.saturating_add(part);
        rest = after;
    }
    if parts == 0 {
        return Err(invalid);
    }
    Ok(total)
}

/// A duration was not in the Gateway API format, or was zero where zero
/// makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidDuration {
    reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Format,
    Zero,
}

impl InvalidDuration {
    /// A duration that parsed but must not be zero (a timeout).
    pub(crate) fn zero() -> Self {
        InvalidDuration {
            reason: Reason::Zero,
        }
    }
}

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::Format => f.write_str(
                "expected 1 to 4 parts, each a whole number of up to 5 digits \
                 followed by h, m, s or ms, such as 10s, 1m30s or 500ms",
            ),
            Reason::Zero => f.write_str("expected a duration greater than zero"),
        }
    }
}

impl StdError for InvalidDuration {}
