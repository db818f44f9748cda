//! Dates and spans as the report prints them: `2026-12-01T10:00:00Z` and
//! `2d 23h`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A moment as an RFC 3339 UTC timestamp, to the second.
#[derive(Debug, Clone, Copy)]
pub(super) struct Utc(pub(super) SystemTime);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Certificates cannot be valid before 1970 in a way that matters
        // here; earlier moments print as the epoch.
        let secs = self
            .0
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let text = i64::try_from(secs)
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .and_then(|at| at.format(&Rfc3339).ok());
        match text {
            Some(text) => f.write_str(&text),
            // Past year 9999, which RFC 3339 cannot write.
            None => write!(f, "{secs}s after the epoch"),
        }
    }
}

/// A span in its two largest units: `2d 23h`, `5h 12m`, `3m 10s`, `42s`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span(pub(super) Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (days, hours, minutes, seconds) = (
            secs / 86_400,
            secs % 86_400 / 3600,
            secs % 3600 / 60,
            secs % 60,
        );
        if days > 0 {
            write!(f, "{days}d {hours}h")
        } else if hours > 0 {
            write!(f, "{hours}h {minutes}m")
        } else if minutes > 0 {
            write!(f, "{minutes}m {seconds}s")
        } else {
            write!(f, "{seconds}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_prints_rfc_3339() {
        let at = |secs| Utc(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day in a century leap year) at 12:34:56.
        assert_eq!(at(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn span_prints_its_two_largest_units() {
        let span = |secs| Span(Duration::from_secs(secs)).to_string();
        assert_eq!(span(42), "42s");
        assert_eq!(span(190), "3m 10s");
        assert_eq!(span(5 * 3600 + 12 * 60 + 7), "5h 12m");
        assert_eq!(span(2 * 86_400 + 23 * 3600 + 59), "2d 23h");
    }
}
