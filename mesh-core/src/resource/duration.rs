//! Durations as the Gateway API writes them (GEP-2257).

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer};

/// A duration in the Gateway API's format (GEP-2257): one to four
/// components, each one to five digits and a unit, `h`, `m`, `s` or `ms`,
/// such as `10s`, `500ms` or `1h30m`. It matches
/// `^([0-9]{1,5}(h|m|s|ms)){1,4}$`. There are no fractions and no signs.
///
/// `0s` is a zero duration; what zero means is up to the field (for a
/// route's `timeouts.request`, GEP-1742 says it disables the timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayDuration(Duration);

impl<'de> Deserialize<'de> for GatewayDuration {
    /// Reads the string in place, so that a bad one is refused at its own
    /// line and column.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::scalar::parse_str(deserializer, "a duration such as 10s or 1h30m", Self::parse)
    }
}

impl GatewayDuration {
    /// Parses a GEP-2257 duration.
    ///
    /// # Errors
    ///
    /// When `s` does not match the format.
    pub fn parse(s: &str) -> Result<Self, InvalidDuration> {
        let invalid = || InvalidDuration { input: s.into() };
        let mut rest = s;
        let mut total = Duration::ZERO;
        let mut components = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return Err(invalid());
            }
            let (number, after) = rest.split_at(digits);
            let number: u64 = number.parse().map_err(|_| invalid())?;
            let (unit, after) = if let Some(after) = after.strip_prefix("ms") {
                (Duration::from_millis(1), after)
            } else if let Some(after) = after.strip_prefix('h') {
                (Duration::from_secs(3600), after)
            } else if let Some(after) = after.strip_prefix('m') {
                (Duration::from_secs(60), after)
            } else if let Some(after) = after.strip_prefix('s') {
                (Duration::from_secs(1), after)
            } else {
                return Err(invalid());
            };
            // At most 99999 × 1 h per component, four components: no overflow.
            total += unit.saturating_mul(u32::try_from(number).map_err(|_| invalid())?);
            components += 1;
            rest = after;
        }
        if components == 0 || components > 4 {
            return Err(invalid());
        }
        Ok(Self(total))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero (`0s`).
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<GatewayDuration> for Duration {
    fn from(d: GatewayDuration) -> Self {
        d.0
    }
}

impl FromStr for GatewayDuration {
    type Err = InvalidDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for GatewayDuration {
    type Error = InvalidDuration;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl fmt::Display for GatewayDuration {
    /// The shortest GEP-2257 spelling, such as `1h30m` or `1s500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        let (h, m, s, ms) = (
            millis / 3_600_000,
            millis / 60_000 % 60,
            millis / 1000 % 60,
            millis % 1000,
        );
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

/// A string that is not a GEP-2257 duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidDuration {
    input: Box<str>,
}

impl InvalidDuration {
    /// The string as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: expected 1 to 4 of a number (up to 5 digits) and a unit h, m, s or ms, such as 10s or 1h30m",
            self.input
        )
    }
}

impl std::error::Error for InvalidDuration {}
