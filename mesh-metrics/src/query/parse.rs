//! A reader for the exposition text `/metrics` serves.
//!
//! It reads the subset of OpenMetrics (and of Prometheus' older text format,
//! which shares the sample syntax) that prometheus-client writes: comment
//! lines (`# HELP`, `# TYPE`, `# UNIT`) are skipped, `# EOF` ends the body
//! (a line after it is an error; an OpenMetrics body without it was cut
//! short, and is one too: [`Scrape::parse_openmetrics`]), and each
//! sample line is `name{label="value",...} value`, optionally followed by a
//! timestamp and, in OpenMetrics, an exemplar (`# {labels} value
//! [timestamp]`), which are checked and ignored; anything else after the
//! value is an error naming the line, as Prometheus refuses it, since a
//! line it would refuse is not one to half read. Label values may hold the
//! escapes `\\`, `\"` and `\n`. Tokens may be separated, and a line
//! begun, by any blanks and tabs, as the text format allows; a label set that names a label
//! twice, or whose labels are not separated by commas, is an error.
//!
//! A scrape keeps each distinct label name and value once (see
//! [`Sample`]): consecutive lines mostly repeat the labels of the line
//! before, which are then taken without being looked up again.
//!
//! A sample takes 40 bytes however short its line, and a line can be as
//! short as `a 1`: a body of such lines would be held at ten times its
//! size, and a delta of two of them at thirty. So a scrape reads at most
//! [`MAX_SAMPLES`] samples, more than twice what a proxy writes with
//! every family at its series limit, and refuses a body with more.

mod sample;

use std::{borrow::Cow, collections::HashMap, fmt, sync::Arc};

use self::sample::Table;
pub use self::sample::{Name, Sample};

/// The most samples a scrape reads: 2^21, 80 MiB of samples at most.
///
/// A proxy with every family at its default limit of 10,000 series
/// writes about 70 MB (see [`MAX_SCRAPE_BYTES`]), in lines of a hundred
/// bytes and more: under a million samples.
///
/// [`MAX_SCRAPE_BYTES`]: super::scrape::MAX_SCRAPE_BYTES
pub const MAX_SAMPLES: usize = 1 << 21;

/// Every sample of one `/metrics` body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Reads an exposition body.
    ///
    /// # Errors
    ///
    /// When a sample line is malformed, or is past the [`MAX_SAMPLES`]th;
    /// the error names the line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_as(text, false)
    }

    /// Reads an OpenMetrics body, which must end with `# EOF`: a body cut
    /// short (one ended by the close of its connection, which may come
    /// anywhere) would otherwise be read as a whole one, its last value
    /// perhaps a prefix of the one written (`12` of `123`), as Prometheus
    /// refuses it.
    ///
    /// # Errors
    ///
    /// As [`Scrape::parse`], and when the body does not end with `# EOF`.
    pub fn parse_openmetrics(text: &str) -> Result<Self, ParseError> {
        Self::parse_as(text, true)
    }

    fn parse_as(text: &str, openmetrics: bool) -> Result<Self, ParseError> {
        let mut reader = Reader::default();
        let mut ended = false;
        let mut last = 0;
        for (i, line) in text.lines().enumerate() {
            // The text format lets blanks and tabs begin a line, before a
            // sample or a comment alike.
            let line = line.trim_end().trim_start_matches(BLANKS);
            if line.is_empty() {
                continue;
            }
            last = i + 1;
            // OpenMetrics ends a body with `# EOF`: text after it is two
            // bodies run together, or a broken writer.
            if ended {
                return Err(ParseError {
                    line: i + 1,
                    kind: ParseErrorKind::AfterEof,
                });
            }
            if line.starts_with('#') {
                ended = line == "# EOF";
                continue;
            }
            reader
                .sample(line)
                .map_err(|kind| ParseError { line: i + 1, kind })?;
        }
        if openmetrics && !ended {
            return Err(ParseError {
                line: last,
                kind: ParseErrorKind::NoEof,
            });
        }
        Ok(reader.finish())
    }

    /// The samples, in the order they were written.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

/// A line of an exposition body that is not a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    line: usize,
    kind: ParseErrorKind,
}

impl ParseError {
    /// The line, counted from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What is wrong with it.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }
}

/// What is wrong with a sample line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The metric name is empty or has a character names may not.
    Name,
    /// The label set is malformed: a bad name, a missing `=` or quote, an
    /// unknown escape, or no closing brace.
    Labels,
    /// The value is missing or not a number.
    Value,
    /// Something other than a timestamp or an exemplar follows the value.
    Trailing,
    /// The text holds 2^32 or more distinct label texts or labels, or 4 GiB
    /// of distinct label texts: more than a scrape can read.
    TooLarge,
    /// A line follows OpenMetrics' `# EOF`, which ends a body.
    AfterEof,
    /// The text holds more than [`MAX_SAMPLES`] samples.
    TooManySamples,
    /// An OpenMetrics body ends without `# EOF`: it was cut short. The
    /// line is the last one it has, 0 for a body of none.
    NoEof,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Name => "bad metric name",
            ParseErrorKind::Labels => "bad label set",
            ParseErrorKind::Value => "bad sample value",
            ParseErrorKind::Trailing => "text after the sample value",
            ParseErrorKind::TooLarge => "too many labels",
            ParseErrorKind::AfterEof => "text after # EOF",
            ParseErrorKind::TooManySamples => {
                return write!(f, "more than {MAX_SAMPLES} samples by line {}", self.line);
            }
            ParseErrorKind::NoEof if self.line == 0 => {
                return f.write_str("an empty body, where an OpenMetrics body has # EOF");
            }
            ParseErrorKind::NoEof => {
                return write!(
                    f,
                    "no # EOF after line {}, where an OpenMetrics body ends",
                    self.line
                );
            }
        };
        write!(f, "{what} on line {}", self.line)
    }
}

impl std::error::Error for ParseError {}

/// The blanks that may separate tokens: OpenMetrics writes one space; the
/// text format allows any number of spaces and tabs.
const BLANKS: [char; 2] = [' ', '\t'];

/// Reads sample lines into a [`Table`] of their labels.
#[derive(Default)]
struct Reader<'t> {
    table: Table,
    /// The id of each text in `table`.
    ids: HashMap<Cow<'t, str>, u32>,
    /// Each sample name read.
    names: HashMap<&'t str, Name>,
    /// The last line's name, and its labels as written with their ids:
    /// a line mostly repeats them, at the same places.
    last_name: Option<(&'t str, Name)>,
    last_labels: Vec<Written<'t>>,
    /// The samples read, each with its run of `table.labels`, and the
    /// empty table `empty` until `table` is complete: they take it in
    /// place, rather than copied into a second list.
    samples: Vec<Sample>,
    empty: Arc<Table>,
}

/// A label as a line wrote it (its value still escaped), and its ids.
struct Written<'t> {
    key: &'t str,
    value: &'t str,
    ids: (u32, u32),
}

impl<'t> Reader<'t> {
    fn sample(&mut self, line: &'t str) -> Result<(), ParseErrorKind> {
        if self.samples.len() >= MAX_SAMPLES {
            return Err(ParseErrorKind::TooManySamples);
        }
        let Some(name_end) = line.find(['{', ' ', '\t']) else {
            // One word: a name without its value, or no sample at all
            // (`<html>`, from an address that serves a page), which is
            // its name's fault, not its value's.
            self.name(line)?;
            return Err(ParseErrorKind::Value);
        };
        let (name, rest) = line.split_at(name_end);
        let name = self.name(name)?;
        let mut rest = rest.trim_start_matches(BLANKS);
        let start = self.label_count()?;
        if let Some(after) = rest.strip_prefix('{') {
            rest = self.labels(after)?.trim_start_matches(BLANKS);
        }
        let end = self.label_count()?;
        let (value, tail) = rest.split_once(BLANKS).unwrap_or((rest, ""));
        let value = Some(value).filter(|v| !v.is_empty());
        let value = value.and_then(parse_value).ok_or(ParseErrorKind::Value)?;
        // What may follow the value (a timestamp, an exemplar) is checked
        // but not read: text past them is a line this reader would
        // otherwise half read, as Prometheus refuses it.
        if !is_sample_tail(tail) {
            return Err(ParseErrorKind::Trailing);
        }
        let empty = self.empty.clone();
        self.samples
            .push(Sample::new(name, value, empty, (start, end)));
        Ok(())
    }

    fn label_count(&self) -> Result<u32, ParseErrorKind> {
        u32::try_from(self.table.labels.len()).map_err(|_| ParseErrorKind::TooLarge)
    }

    fn name(&mut self, name: &'t str) -> Result<Name, ParseErrorKind> {
        if let Some((last, known)) = &self.last_name
            && *last == name
        {
            return Ok(known.clone());
        }
        let known = match self.names.get(name) {
            Some(known) => known.clone(),
            None if is_metric_name(name) => {
                let known = Name::new(name);
                self.names.insert(name, known.clone());
                known
            }
            None => return Err(ParseErrorKind::Name),
        };
        self.last_name = Some((name, known.clone()));
        Ok(known)
    }

    /// Reads `k="v",...}` and returns what follows the brace.
    fn labels(&mut self, mut s: &'t str) -> Result<&'t str, ParseErrorKind> {
        let first = self.table.labels.len();
        loop {
            s = s.trim_start_matches(BLANKS);
            if let Some(rest) = s.strip_prefix('}') {
                let labels = self.table.labels.get(first..).unwrap_or_default();
                if names_a_label_twice(labels) {
                    return Err(ParseErrorKind::Labels);
                }
                return Ok(rest);
            }
            let eq = s.find('=').ok_or(ParseErrorKind::Labels)?;
            let key = s[..eq].trim_end_matches(BLANKS);
            s = s[eq + 1..]
                .trim_start_matches(BLANKS)
                .strip_prefix('"')
                .ok_or(ParseErrorKind::Labels)?;
            let (value, escaped) = quoted(s)?;
            let at = self.table.labels.len() - first;
            let ids = match self.last_labels.get(at) {
                Some(last) if last.key == key && last.value == value => last.ids,
                _ => {
                    if !is_label_name(key) {
                        return Err(ParseErrorKind::Labels);
                    }
                    let ids = (self.intern(key, false)?, self.intern(value, escaped)?);
                    let written = Written { key, value, ids };
                    match self.last_labels.get_mut(at) {
                        Some(last) => *last = written,
                        None => self.last_labels.push(written),
                    }
                    ids
                }
            };
            self.table.labels.push(ids);
            // A comma, or the closing brace, may follow the closing quote.
            s = s[value.len() + 1..].trim_start_matches(BLANKS);
            if let Some(rest) = s.strip_prefix(',') {
                s = rest;
            } else if !s.starts_with('}') {
                return Err(ParseErrorKind::Labels);
            }
        }
    }

    /// The id of `text` (unescaped first when `escaped`) in the table.
    fn intern(&mut self, text: &'t str, escaped: bool) -> Result<u32, ParseErrorKind> {
        let text = if escaped {
            Cow::Owned(unescape(text))
        } else {
            Cow::Borrowed(text)
        };
        if let Some(&id) = self.ids.get(text.as_ref()) {
            return Ok(id);
        }
        let id = self.table.push(&text).ok_or(ParseErrorKind::TooLarge)?;
        self.ids.insert(text, id);
        Ok(id)
    }

    fn finish(mut self) -> Scrape {
        self.table.shrink_to_fit();
        let table = Arc::new(self.table);
        for s in &mut self.samples {
            s.set_table(&table);
        }
        self.samples.shrink_to_fit();
        Scrape {
            samples: self.samples,
        }
    }
}

/// The value of a label as written, up to its closing quote (which `s`
/// holds), and whether it holds escapes; an escape other than `\\`,
/// `\"` and `\n`, or no closing quote, is an error. `"` and `\\` are
/// ASCII, so no byte of another character is taken for them.
fn quoted(s: &str) -> Result<(&str, bool), ParseErrorKind> {
    let bytes = s.as_bytes();
    let (mut i, mut escaped) = (0, false);
    loop {
        match bytes.get(i) {
            Some(b'"') => return Ok((s.get(..i).ok_or(ParseErrorKind::Labels)?, escaped)),
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'\\' | b'"' | b'n') => {
                    escaped = true;
                    i += 2;
                }
                _ => return Err(ParseErrorKind::Labels),
            },
            Some(_) => i += 1,
            None => return Err(ParseErrorKind::Labels),
        }
    }
}

/// A label value as written, its escapes (checked by [`quoted`]) read.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(c) => out.push(c),
            None => break,
        }
    }
    out
}

/// Whether two of `labels` have the same name. The scraped server decides
/// how many labels a sample has: past a few, the names are sorted rather
/// than compared pairwise, which for a line of 200,000 labels would take
/// 2 × 10^10 comparisons.
fn names_a_label_twice(labels: &[(u32, u32)]) -> bool {
    const PAIRWISE: usize = 16;
    if labels.len() <= PAIRWISE {
        return labels
            .iter()
            .enumerate()
            .any(|(i, (k, _))| labels[..i].iter().any(|(other, _)| other == k));
    }
    let mut names: Vec<u32> = labels.iter().map(|&(k, _)| k).collect();
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
}

/// Whether `tail`, what follows a sample's value, is nothing, or what the
/// formats allow there: a timestamp (milliseconds in the text format,
/// seconds in OpenMetrics), then in OpenMetrics an exemplar, `# {labels}
/// value [timestamp]`.
fn is_sample_tail(tail: &str) -> bool {
    let tail = tail.trim_start_matches(BLANKS);
    let tail = match tail.split_once(BLANKS) {
        _ if tail.is_empty() || tail.starts_with('#') => tail,
        Some((timestamp, rest)) if is_timestamp(timestamp) => rest.trim_start_matches(BLANKS),
        None if is_timestamp(tail) => "",
        _ => return false,
    };
    match tail.strip_prefix('#') {
        None => tail.is_empty(),
        Some(exemplar) => is_exemplar(exemplar),
    }
}

fn is_timestamp(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Whether `s`, what follows an exemplar's `#`, is `{labels} value
/// [timestamp]`.
fn is_exemplar(s: &str) -> bool {
    let Some(mut s) = s.trim_start_matches(BLANKS).strip_prefix('{') else {
        return false;
    };
    loop {
        s = s.trim_start_matches(BLANKS);
        if let Some(rest) = s.strip_prefix('}') {
            s = rest;
            break;
        }
        let Some((key, rest)) = s.split_once('=') else {
            return false;
        };
        let Some(rest) = rest.trim_start_matches(BLANKS).strip_prefix('"') else {
            return false;
        };
        let Ok((value, _)) = quoted(rest) else {
            return false;
        };
        if !is_label_name(key.trim_matches(BLANKS)) {
            return false;
        }
        s = rest[value.len() + 1..].trim_start_matches(BLANKS);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return false;
        }
    }
    let mut tokens = s.split(BLANKS).filter(|t| !t.is_empty());
    let value = tokens.next().and_then(parse_value);
    let timestamp = tokens.next();
    value.is_some() && timestamp.is_none_or(is_timestamp) && tokens.next().is_none()
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
