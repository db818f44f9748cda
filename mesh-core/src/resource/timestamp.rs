//! `metadata.creationTimestamp`, read as the instant it names.
//!
//! The Gateway API breaks ties between equally specific matches of
//! different routes by the routes' age: the oldest by
//! `metadata.creationTimestamp` wins. Authorization (a Server's routes) and
//! outbound routing (a Service's) both order matches that way, so both
//! read the timestamp here. Kubernetes writes it in RFC 3339, such as
//! `2024-05-01T12:00:00Z`; the reader accepts what RFC 3339 allows, so a
//! manifest written by hand with an offset or fractions of a second
//! compares as the instant it names, not as text.

use std::{cmp::Ordering, fmt, str::FromStr};

/// An instant, as `metadata.creationTimestamp` writes it: compare two with
/// [`Ord`], earlier first.
///
/// ```
/// use mesh_core::resource::Timestamp;
///
/// let utc = Timestamp::parse("2024-05-01T12:00:00Z")?;
/// let paris = Timestamp::parse("2024-05-01T14:00:00+02:00")?;
/// assert_eq!(utc, paris);
/// assert!(Timestamp::parse("2024-05-01T11:59:59.5Z")? < utc);
/// assert!(Timestamp::parse("2024-05-01 12:00:00").is_err());
/// # Ok::<(), mesh_core::resource::InvalidTimestamp>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    seconds: i64,
    nanos: u32,
}

impl Timestamp {
    /// Reads an RFC 3339 time, as Kubernetes writes and reads
    /// `metadata.creationTimestamp`: `2024-05-01T12:00:00Z`, with
    /// optional fractions of a second (digits past the ninth are dropped)
    /// and a `Z` or `±hh:mm` offset.
    ///
    /// # Errors
    ///
    /// [`InvalidTimestamp`], holding the text, for anything else: a date
    /// alone, a space for the `T`, no offset, a day the month does not
    /// have, a leap second.
    pub fn parse(text: &str) -> Result<Self, InvalidTimestamp> {
        parse_rfc3339(text).ok_or_else(|| InvalidTimestamp(text.to_owned()))
    }

    /// Whole seconds since 1970-01-01T00:00:00Z (negative before).
    pub fn unix_seconds(&self) -> i64 {
        self.seconds
    }

    /// Nanoseconds past [`unix_seconds`](Self::unix_seconds).
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// The order the Gateway API breaks ties between objects by: the
    /// older `creationTimestamp` first, and an object without one after
    /// every object with one, as it would be the newest once applied.
    /// Routes (of a Server, a Service or an `EgressNetwork`) and
    /// `EgressNetwork`s are ranked so, each then by its name.
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// use mesh_core::resource::Timestamp;
    ///
    /// let old = Some(Timestamp::parse("2024-01-01T00:00:00Z")?);
    /// let new = Some(Timestamp::parse("2025-01-01T00:00:00Z")?);
    /// assert_eq!(Timestamp::older_first(old, new), Ordering::Less);
    /// assert_eq!(Timestamp::older_first(None, new), Ordering::Greater);
    /// assert_eq!(Timestamp::older_first(None, None), Ordering::Equal);
    /// # Ok::<(), mesh_core::resource::InvalidTimestamp>(())
    /// ```
    pub fn older_first(a: Option<Self>, b: Option<Self>) -> Ordering {
        match (a, b) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A `creationTimestamp` that is not an RFC 3339 time. Its message quotes
/// the text and shows the form expected; the caller names the document
/// and field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTimestamp(String);

impl InvalidTimestamp {
    /// The text that was refused.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 time such as 2024-05-01T12:00:00Z",
            self.0
        )
    }
}

impl std::error::Error for InvalidTimestamp {}

fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let part = b.get(from..from + n)?;
        part.iter().try_fold(0_u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && matches!(b.get(10), Some(b'T' | b't'))) {
        return None;
    }
    if !(at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0_u32;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && at(i + 3, b':') => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset * 60;
    Some(Timestamp { seconds, nanos })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the date, in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(text: &str) -> (i64, u32) {
        let t = Timestamp::parse(text).unwrap();
        (t.unix_seconds(), t.subsec_nanos())
    }

    #[test]
    fn timestamps_read_as_kubernetes_writes_them() {
        assert_eq!(at("1970-01-01T00:00:00Z"), (0, 0));
        assert_eq!(at("2024-05-01T12:00:00Z"), (1_714_564_800, 0));
        assert_eq!(at("2000-02-29T23:59:59Z"), (951_868_799, 0));
        assert_eq!(at("2024-05-01T14:00:00+02:00"), (1_714_564_800, 0));
        assert_eq!(
            at("2024-05-01T11:30:00.25-00:30"),
            (1_714_564_800, 250_000_000)
        );
        assert_eq!(
            at("2024-05-01t12:00:00.1234567891z"),
            (1_714_564_800, 123_456_789)
        );
        assert_eq!(at("1969-12-31T23:59:59Z"), (-1, 0));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "1900-02-29T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00+24:00",
            "2024-05-01T12:00:00Zjunk",
            "2024-05-01T12:00:00Z\n",
            "yesterday",
        ] {
            let err = Timestamp::parse(bad).unwrap_err();
            assert_eq!(err.text(), bad);
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn earlier_instants_order_first_whatever_their_offsets() {
        let mut times: Vec<Timestamp> = [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:30:00+01:00",
            "2024-05-01T11:59:59.999999999Z",
            "2024-04-30T23:00:00-13:30",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        times.sort();
        let seconds: Vec<i64> = times.iter().map(Timestamp::unix_seconds).collect();
        assert_eq!(
            seconds,
            [1_714_563_000, 1_714_564_799, 1_714_564_800, 1_714_566_600]
        );
    }
}
