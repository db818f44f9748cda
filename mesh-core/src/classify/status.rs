//! Sets of HTTP status codes, written the way retry conditions write them.

use std::{fmt, ops::RangeInclusive, str::FromStr};

use http::StatusCode;

const MIN: u16 = 100;
const MAX: u16 = 999;
const WORDS: usize = (MAX - MIN) as usize / 64 + 1;

/// A set of HTTP status codes: which statuses count as failures, or which
/// ones a retry policy retries.
///
/// It is a bit set over every code [`StatusCode`] can hold (100 to 999), so
/// it is `Copy` and [`contains`](Self::contains) is one mask test, with no
/// allocation.
///
/// It parses from a comma-separated list whose items are any of:
///
/// | item | statuses |
/// |---|---|
/// | `503` | 503 |
/// | `500-504` | 500 to 504, both included |
/// | `5xx` | 500 to 599 (any class digit 1 to 9) |
/// | `gateway-error` | 502, 503 and 504 (Envoy's name) |
///
/// These are the forms Linkerd's `retry.linkerd.io/http` annotation and
/// Envoy's `retry_on` accept. Whitespace around items is ignored, and so is
/// the case of `xx` and `gateway-error`.
///
/// ```
/// use mesh_core::classify::StatusRanges;
///
/// let ranges: StatusRanges = "gateway-error, 429".parse()?;
/// assert!(ranges.contains(http::StatusCode::SERVICE_UNAVAILABLE));
/// assert!(!ranges.contains(http::StatusCode::INTERNAL_SERVER_ERROR));
/// assert_eq!(ranges.to_string(), "429,502-504");
/// # Ok::<(), mesh_core::classify::InvalidStatusRange>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StatusRanges {
    bits: [u64; WORDS],
}

impl StatusRanges {
    /// No statuses.
    pub const fn empty() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// 500 to 599: the default failure set.
    pub const fn server_errors() -> Self {
        Self::empty().with_const_range(500, 599)
    }

    /// 502, 503 and 504.
    pub const fn gateway_errors() -> Self {
        Self::empty().with_const_range(502, 504)
    }

    /// This set with `status` added.
    #[must_use]
    pub const fn with_status(self, status: StatusCode) -> Self {
        let code = status.as_u16();
        self.with_const_range(code, code)
    }

    /// This set with every status from `range.start()` to `range.end()`
    /// added.
    ///
    /// # Errors
    ///
    /// [`InvalidStatusRange::OutOfRange`] when either end is outside 100 to
    /// 999, and [`InvalidStatusRange::Reversed`] when the start is after the
    /// end.
    pub fn with_range(self, range: RangeInclusive<u16>) -> Result<Self, InvalidStatusRange> {
        let (start, end) = range.into_inner();
        for code in [start, end] {
            if !(MIN..=MAX).contains(&code) {
                return Err(InvalidStatusRange::OutOfRange(u32::from(code)));
            }
        }
        if start > end {
            return Err(InvalidStatusRange::Reversed { start, end });
        }
        Ok(self.with_const_range(start, end))
    }

    /// Adds every status from `start` to `end`, both within 100..=999.
    const fn with_const_range(mut self, start: u16, end: u16) -> Self {
        let mut code = start;
        while code <= end && code <= MAX {
            if code >= MIN {
                let i = (code - MIN) as usize;
                self.bits[i / 64] |= 1 << (i % 64);
            }
            code += 1;
        }
        self
    }

    /// All statuses in either set.
    #[must_use]
    pub const fn union(mut self, other: Self) -> Self {
        let mut w = 0;
        while w < WORDS {
            self.bits[w] |= other.bits[w];
            w += 1;
        }
        self
    }

    /// Whether `status` is in the set.
    pub const fn contains(&self, status: StatusCode) -> bool {
        self.contains_u16(status.as_u16())
    }

    const fn contains_u16(&self, code: u16) -> bool {
        if code < MIN || code > MAX {
            return false;
        }
        let i = (code - MIN) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The set as maximal ranges of consecutive statuses, in ascending
    /// order.
    pub fn ranges(&self) -> impl Iterator<Item = RangeInclusive<u16>> + '_ {
        let mut code = MIN;
        std::iter::from_fn(move || {
            while code <= MAX && !self.contains_u16(code) {
                code += 1;
            }
            if code > MAX {
                return None;
            }
            let start = code;
            while code < MAX && self.contains_u16(code + 1) {
                code += 1;
            }
            let end = code;
            code += 1;
            Some(start..=end)
        })
    }
}

impl FromStr for StatusRanges {
    type Err = InvalidStatusRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').try_fold(Self::empty(), |set, item| {
            Ok(set.union(parse_item(item.trim())?))
        })
    }
}

fn parse_item(item: &str) -> Result<StatusRanges, InvalidStatusRange> {
    if item.is_empty() {
        return Err(InvalidStatusRange::Empty);
    }
    if item.eq_ignore_ascii_case("gateway-error") {
        return Ok(StatusRanges::gateway_errors());
    }
    if let [class @ b'1'..=b'9', x1, x2] = item.as_bytes()
        && x1.eq_ignore_ascii_case(&b'x')
        && x2.eq_ignore_ascii_case(&b'x')
    {
        let start = u16::from(class - b'0') * 100;
        return Ok(StatusRanges::empty().with_const_range(start, start + 99));
    }
    let (start, end) = match item.split_once('-') {
        Some((start, end)) => (parse_code(start.trim())?, parse_code(end.trim())?),
        None => {
            let code = parse_code(item)?;
            (code, code)
        }
    };
    StatusRanges::empty().with_range(start..=end)
}

fn parse_code(s: &str) -> Result<u16, InvalidStatusRange> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidStatusRange::NotAStatus);
    }
    // All digits, so the only way to fail is overflow.
    let n = s.parse::<u32>().unwrap_or(u32::MAX);
    match u16::try_from(n) {
        Ok(code) if (MIN..=MAX).contains(&code) => Ok(code),
        _ => Err(InvalidStatusRange::OutOfRange(n)),
    }
}

impl fmt::Display for StatusRanges {
    /// Writes the set in the form it parses from: `5xx` for a whole class,
    /// `500-504` for a range, `503` for one status, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let (start, end) = range.into_inner();
            if start == end {
                write!(f, "{start}")?;
            } else if start % 100 == 0 && end == start + 99 {
                write!(f, "{}xx", start / 100)?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusRanges({self})")
    }
}

/// Why a string is not a list of HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidStatusRange {
    /// The string, or an item of the list, is empty.
    Empty,
    /// An item is not a status, a range, a class (`5xx`) or `gateway-error`.
    NotAStatus,
    /// A status is outside 100 to 999.
    OutOfRange(u32),
    /// A range starts after it ends (`504-500`).
    Reversed {
        /// The first status written.
        start: u16,
        /// The last status written.
        end: u16,
    },
}

impl fmt::Display for InvalidStatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty http status range"),
            Self::NotAStatus => f.write_str(
                "expected an http status, a range such as `500-504`, a class such as `5xx`, or `gateway-error`",
            ),
            Self::OutOfRange(n) => write!(f, "http status {n} is outside 100-999"),
            Self::Reversed { start, end } => {
                write!(f, "http status range {start}-{end} starts after it ends")
            }
        }
    }
}

impl std::error::Error for InvalidStatusRange {}
