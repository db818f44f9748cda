//! Conditions on header and query parameter values, and the anchored
//! regular expressions they share with paths.

use std::{borrow::Cow, fmt};

use http::{HeaderMap, HeaderName};
use regex::Regex;

use super::InvalidRouteMatch;

/// A regular expression that must match a whole value, compiled once.
///
/// The Gateway API's `RegularExpression` matches the full path or value, not
/// a substring, so the pattern is anchored at both ends: `/books/\d+`
/// matches `/books/42` but not `/books/42/reviews`. The syntax is the `regex`
/// crate's, which is close to RE2's and matches in linear time, so a
/// pattern from configuration cannot make matching slow.
#[derive(Clone)]
pub struct FullRegex {
    pattern: Box<str>,
    regex: Regex,
}

impl FullRegex {
    /// Compiles `pattern`, anchored at both ends.
    ///
    /// # Errors
    ///
    /// When `pattern` does not compile; the error names the pattern and has
    /// the `regex` error as its source.
    pub fn new(pattern: &str) -> Result<Self, InvalidRouteMatch> {
        // Compiling the pattern on its own first proves its groups are
        // balanced, so wrapping it cannot change what it means.
        Regex::new(pattern).map_err(|e| InvalidRouteMatch::regex(pattern, e))?;
        let regex = Regex::new(&format!(r"\A(?:{pattern})\z"))
            // In `(?x)` mode a trailing comment would swallow the closing
            // group; a newline ends the comment and is otherwise ignored.
            .or_else(|_| Regex::new(&format!("\\A(?:{pattern}\n)\\z")))
            .map_err(|e| InvalidRouteMatch::regex(pattern, e))?;
        Ok(Self {
            pattern: pattern.into(),
            regex,
        })
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// The pattern as given, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for FullRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for FullRegex {}

impl fmt::Debug for FullRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FullRegex").field(&self.pattern).finish()
    }
}

/// A condition on a header or query parameter value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    /// The value equals this string, byte for byte (case-sensitive).
    Exact(Box<str>),
    /// The whole value matches this expression.
    Regex(FullRegex),
}

impl ValueMatch {
    /// A value that must equal `value`.
    pub fn exact(value: impl Into<Box<str>>) -> Self {
        Self::Exact(value.into())
    }

    /// A value that must match `pattern` as a whole.
    ///
    /// # Errors
    ///
    /// When `pattern` does not compile.
    pub fn regex(pattern: &str) -> Result<Self, InvalidRouteMatch> {
        FullRegex::new(pattern).map(Self::Regex)
    }

    /// Whether `value` meets the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => value == &**exact,
            Self::Regex(regex) => regex.is_match(value),
        }
    }

    /// A header value: bytes that a regex only matches when they are UTF-8.
    fn matches_bytes(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(exact) => value == exact.as_bytes(),
            Self::Regex(regex) => std::str::from_utf8(value).is_ok_and(|v| regex.is_match(v)),
        }
    }

    /// A raw, still-encoded query value.
    fn matches_encoded(&self, raw: &str) -> bool {
        match self {
            Self::Exact(exact) => decoded_eq(raw, exact),
            Self::Regex(regex) => regex.is_match(&decode(raw)),
        }
    }
}

/// A condition on a request header.
///
/// Header names are case-insensitive, as in HTTP. A header that appears
/// more than once matches when any one of its values does. A value that is
/// not UTF-8 never matches a regular expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    name: HeaderName,
    value: ValueMatch,
}

impl HeaderMatch {
    /// Header `name` must meet `value`.
    pub fn new(name: HeaderName, value: ValueMatch) -> Self {
        Self { name, value }
    }

    /// Header `name` must equal `value`.
    pub fn exact(name: HeaderName, value: impl Into<Box<str>>) -> Self {
        Self::new(name, ValueMatch::exact(value))
    }

    /// Header `name` must match `pattern` as a whole.
    ///
    /// # Errors
    ///
    /// When `pattern` does not compile.
    pub fn regex(name: HeaderName, pattern: &str) -> Result<Self, InvalidRouteMatch> {
        Ok(Self::new(name, ValueMatch::regex(pattern)?))
    }

    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The condition on its value.
    pub fn value(&self) -> &ValueMatch {
        &self.value
    }

    /// Whether `headers` meet the condition. A missing header does not.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(&self.name)
            .iter()
            .any(|v| self.value.matches_bytes(v.as_bytes()))
    }
}

/// A condition on a query parameter.
///
/// The query string is split on `&` and each pair on its first `=` as the
/// request is matched, with no map built. Names and values are compared
/// after form decoding (`%41` is `A`, `+` is a space), and names are
/// case-sensitive. A parameter that appears more than once matches when any
/// one of its values does. A parameter without `=` has the empty value.
///
/// Matching allocates only in one case: a regular expression tested on a
/// value that holds `%` or `+`, which is decoded into a temporary string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryParamMatch {
    name: Box<str>,
    value: ValueMatch,
}

impl QueryParamMatch {
    /// Parameter `name` must meet `value`.
    pub fn new(name: impl Into<Box<str>>, value: ValueMatch) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }

    /// Parameter `name` must equal `value`.
    pub fn exact(name: impl Into<Box<str>>, value: impl Into<Box<str>>) -> Self {
        Self::new(name, ValueMatch::exact(value))
    }

    /// Parameter `name` must match `pattern` as a whole.
    ///
    /// # Errors
    ///
    /// When `pattern` does not compile.
    pub fn regex(name: impl Into<Box<str>>, pattern: &str) -> Result<Self, InvalidRouteMatch> {
        Ok(Self::new(name, ValueMatch::regex(pattern)?))
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The condition on its value.
    pub fn value(&self) -> &ValueMatch {
        &self.value
    }

    /// Whether a query string (without the `?`) meets the condition. No
    /// query, or no such parameter, does not.
    pub fn matches(&self, query: Option<&str>) -> bool {
        query.is_some_and(|query| {
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .any(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    decoded_eq(name, &self.name) && self.value.matches_encoded(value)
                })
        })
    }
}

/// Whether form-decoding `raw` gives `expected`, without allocating.
fn decoded_eq(raw: &str, expected: &str) -> bool {
    FormDecode::new(raw).eq(expected.bytes())
}

/// Form-decodes `raw`, borrowing it when there is nothing to decode.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let bytes: Vec<u8> = FormDecode::new(raw).collect();
    match String::from_utf8(bytes) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The bytes of `application/x-www-form-urlencoded` text, decoded: `+` is a
/// space and `%XX` a byte. A `%` not followed by two hex digits stays as it
/// is.
struct FormDecode<'a> {
    bytes: std::slice::Iter<'a, u8>,
}

impl<'a> FormDecode<'a> {
    fn new(raw: &'a str) -> Self {
        Self {
            bytes: raw.as_bytes().iter(),
        }
    }
}

impl Iterator for FormDecode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        match *self.bytes.next()? {
            b'+' => Some(b' '),
            b'%' => {
                let rest = self.bytes.as_slice();
                if let [hi, lo, ..] = rest
                    && let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo))
                {
                    self.bytes.nth(1);
                    Some(hi << 4 | lo)
                } else {
                    Some(b'%')
                }
            }
            b => Some(b),
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
