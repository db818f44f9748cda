//! Durations as Linkerd writes them: Go's `time.ParseDuration`.

use std::{fmt, str::FromStr, time::Duration};

use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

/// A duration in Go's notation, which Linkerd's annotations and
/// ServiceProfiles use: one or more decimal numbers, each with a unit (`ns`,
/// `us` or `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5s` or `1h30m`.
/// A bare `0` is zero. Signs are not accepted: no timeout is negative.
///
/// Every Gateway API duration (`10s`, `1h30m`) is also a Go duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(Duration);

impl<'de> Deserialize<'de> for GoDuration {
    /// Reads the string in place, so that a bad one is refused at its own
    /// line and column. Read first as a `String` and parsed after, it was
    /// refused where the mapping around it begins, lines away.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Go duration such as 300ms, 1.5s or 1h30m")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<GoDuration, E> {
        GoDuration::parse(value).map_err(E::custom)
    }
}

impl GoDuration {
    /// Parses a Go duration.
    ///
    /// # Errors
    ///
    /// [`InvalidGoDuration`] when `s` is not one.
    pub fn parse(s: &str) -> Result<Self, InvalidGoDuration> {
        let invalid = || InvalidGoDuration {
            input: s.into(),
            too_long: false,
            days: false,
        };
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut rest = s;
        let mut nanos: u128 = 0;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .ok_or_else(invalid)?;
            let (number, after) = rest.split_at(number_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let per_unit: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return Err(invalid()),
            };
            nanos = nanos
                .checked_add(scaled(number, per_unit).ok_or_else(invalid)?)
                .ok_or_else(invalid)?;
            rest = after;
        }
        if nanos > MAX_NANOS {
            return Err(InvalidGoDuration {
                input: s.into(),
                too_long: true,
                days: false,
            });
        }
        Ok(Self::from_nanos(nanos))
    }

    /// Parses a duration of one of Linkerd's `retry.linkerd.io/*` or
    /// `timeout.linkerd.io/*` annotations: a Go duration, or a whole
    /// number of days such as `1d`. Linkerd's policy controller reads these
    /// annotations with a parser of its own (`parse_duration` in linkerd2's
    /// `policy-controller/k8s/index/src/outbound/index.rs`), which takes
    /// one whole number with a unit of `ms`, `s`, `m`, `h` or `d`: every
    /// such value but the days is a Go duration too, so reading both keeps
    /// a Linkerd user's annotations working.
    ///
    /// # Errors
    ///
    /// [`InvalidGoDuration`] when `s` is neither.
    pub(super) fn parse_annotation(s: &str) -> Result<Self, InvalidGoDuration> {
        let days = s
            .strip_suffix('d')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        let Some(days) = days else {
            return Self::parse(s).map_err(|e| InvalidGoDuration { days: true, ..e });
        };
        let nanos = days
            .parse::<u128>()
            .ok()
            .and_then(|d| d.checked_mul(NANOS_PER_DAY))
            .filter(|&n| n <= MAX_NANOS);
        match nanos {
            Some(nanos) => Ok(Self::from_nanos(nanos)),
            None => Err(InvalidGoDuration {
                input: s.into(),
                too_long: true,
                days: true,
            }),
        }
    }

    /// `nanos`, at most [`MAX_NANOS`], as a duration.
    fn from_nanos(nanos: u128) -> Self {
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder is below 10^9, so it fits a u32.
        let sub = (nanos % 1_000_000_000) as u32;
        Self(Duration::new(secs, sub))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// The longest duration Go has: `i64::MAX` nanoseconds,
/// `2562047h47m16.854775807s`, about 292 years. `time.ParseDuration`
/// refuses anything longer, and so does this, so that a timeout far past
/// any clock's range never reaches one.
const MAX_NANOS: u128 = i64::MAX as u128;

/// A day, in nanoseconds.
const NANOS_PER_DAY: u128 = 86_400 * 1_000_000_000;

/// `number` (digits with at most one `.`) times `per_unit` nanoseconds,
/// with the fraction truncated to whole nanoseconds.
fn scaled(number: &str, per_unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(per_unit)?;
    let mut scale = per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        total = total.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(total)
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl FromStr for GoDuration {
    type Err = InvalidGoDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for GoDuration {
    type Error = InvalidGoDuration;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// A string that is not a Go duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidGoDuration {
    input: Box<str>,
    /// It reads, but is longer than Go's longest duration.
    too_long: bool,
    /// Whole days were allowed too, as in a Linkerd annotation.
    days: bool,
}

impl InvalidGoDuration {
    /// The string as given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for InvalidGoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.too_long {
            return write!(
                f,
                "invalid duration {:?}: longer than Go's longest, 2562047h47m16.854775807s (about 292 years)",
                self.input
            );
        }
        write!(
            f,
            "invalid duration {:?}: expected numbers with units ns, us, ms, s, m or h, such as 300ms, 1.5s or 1h30m",
            self.input
        )?;
        if self.days {
            f.write_str(", or whole days, such as 1d")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidGoDuration {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h30m", Duration::from_secs(5400)),
            ("2m0.5s", Duration::from_millis(120_500)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            (".5s", Duration::from_millis(500)),
            (
                "2562047h47m16.854775807s",
                Duration::new(9_223_372_036, 854_775_807),
            ),
        ] {
            assert_eq!(GoDuration::parse(text).unwrap().get(), expected, "{text}");
        }
    }

    #[test]
    fn annotations_take_linkerds_whole_days_too() {
        for (text, expected) in [
            ("1d", Duration::from_secs(86_400)),
            ("0d", Duration::ZERO),
            ("106751d", Duration::from_secs(106_751 * 86_400)),
            ("1m30s", Duration::from_secs(90)),
            ("0", Duration::ZERO),
        ] {
            let parsed = GoDuration::parse_annotation(text).unwrap().get();
            assert_eq!(parsed, expected, "{text}");
        }
        // Days are Linkerd's annotations' alone: not Go's.
        assert!(GoDuration::parse("1d").is_err());
        for text in ["d", "1.5d", "1d12h", "-1d", "1 d"] {
            let err = GoDuration::parse_annotation(text).unwrap_err();
            assert_eq!(err.input(), text);
            assert!(
                err.to_string().ends_with("or whole days, such as 1d"),
                "{err}"
            );
        }
        let err = GoDuration::parse_annotation("106752d").unwrap_err();
        assert!(
            err.to_string().contains("longer than Go's longest"),
            "{err}"
        );
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "",
            "10",
            "s",
            "1.2.3s",
            "-1s",
            "10 s",
            "5d",
            "1e3ms",
            "ten seconds",
        ] {
            let err = GoDuration::parse(text).unwrap_err();
            assert_eq!(err.input(), text);
        }
        // One nanosecond past Go's longest duration, and far past it.
        for text in ["2562047h47m16.854775808s", "3000000000000000h"] {
            let err = GoDuration::parse(text).unwrap_err();
            assert!(
                err.to_string().contains("longer than Go's longest"),
                "{err}"
            );
        }
        assert_eq!(
            GoDuration::parse("5d").unwrap_err().to_string(),
            "invalid duration \"5d\": expected numbers with units ns, us, ms, s, m or h, such as 300ms, 1.5s or 1h30m"
        );
    }
}
