//! A reader for the exposition text `/metrics` serves.
//!
//! It reads the subset of OpenMetrics (and of Prometheus' older text format,
//! which shares the sample syntax) that prometheus-client writes: comment
//! lines (`# HELP`, `# TYPE`, `# UNIT`, `# EOF`) are skipped, and each
//! sample line is `name{label="value",...} value`, optionally followed by a
//! timestamp or an exemplar, which are ignored. Label values may hold the
//! escapes `\\`, `\"` and `\n`. Tokens may be separated by any blanks
//! and tabs, as the text format allows; a label set that names a label
//! twice, or whose labels are not separated by commas, is an error.

use std::fmt;

/// One sample of a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name, suffix included (`request_total`,
    /// `response_latency_ms_bucket`).
    pub name: String,
    /// The labels, in the order they were written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

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
    /// When a sample line is malformed; the error names the line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).map_err(|kind| ParseError { line: i + 1, kind })?;
            samples.push(sample);
        }
        Ok(Self { samples })
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
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Name => "bad metric name",
            ParseErrorKind::Labels => "bad label set",
            ParseErrorKind::Value => "bad sample value",
        };
        write!(f, "{what} on line {}", self.line)
    }
}

impl std::error::Error for ParseError {}

/// The blanks that may separate tokens: OpenMetrics writes one space; the
/// text format allows any number of spaces and tabs.
const BLANKS: [char; 2] = [' ', '\t'];

fn parse_sample(line: &str) -> Result<Sample, ParseErrorKind> {
    let name_end = line.find(['{', ' ', '\t']).ok_or(ParseErrorKind::Value)?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(ParseErrorKind::Name);
    }
    let mut rest = line[name_end..].trim_start_matches(BLANKS);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?.trim_start_matches(BLANKS);
    }
    // What may follow the value (a timestamp, an exemplar) is not read.
    let value = rest.split(BLANKS).next().filter(|v| !v.is_empty());
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: value.and_then(parse_value).ok_or(ParseErrorKind::Value)?,
    })
}

/// Reads `k="v",...}` and returns what follows the brace.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, ParseErrorKind> {
    loop {
        s = s.trim_start_matches(BLANKS);
        if let Some(rest) = s.strip_prefix('}') {
            if names_a_label_twice(labels) {
                return Err(ParseErrorKind::Labels);
            }
            return Ok(rest);
        }
        let eq = s.find('=').ok_or(ParseErrorKind::Labels)?;
        let key = s[..eq].trim_end_matches(BLANKS);
        if !is_label_name(key) {
            return Err(ParseErrorKind::Labels);
        }
        s = s[eq + 1..]
            .trim_start_matches(BLANKS)
            .strip_prefix('"')
            .ok_or(ParseErrorKind::Labels)?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next().ok_or(ParseErrorKind::Labels)? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or(ParseErrorKind::Labels)?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return Err(ParseErrorKind::Labels),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        // A comma, or the closing brace, may follow.
        s = s[end + 1..].trim_start_matches(BLANKS);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(ParseErrorKind::Labels);
        }
    }
}

/// Whether two of `labels` have the same name. The scraped server decides
/// how many labels a sample has: past a few, the names are sorted rather
/// than compared pairwise, which for a line of 200,000 labels would take
/// 2 × 10^10 comparisons.
fn names_a_label_twice(labels: &[(String, String)]) -> bool {
    const PAIRWISE: usize = 16;
    if labels.len() <= PAIRWISE {
        return labels
            .iter()
            .enumerate()
            .any(|(i, (k, _))| labels[..i].iter().any(|(other, _)| other == k));
    }
    let mut names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.windows(2).any(|pair| pair[0] == pair[1])
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
mod tests {
    use super::*;

    #[test]
    fn reads_samples_labels_and_special_values() {
        let text = "# HELP request Total.\n# TYPE request counter\n\
                    request_total{direction=\"inbound\",srv_name=\"a\\\"b\\\\c\\nd\"} 3\n\
                    up 1 1700000000\n\
                    lat_bucket{le=\"+Inf\"} 7 # {trace_id=\"x\"} 1.0\n\
                    g -Inf\n# EOF\n";
        let scrape = Scrape::parse(text).unwrap();
        let s = scrape.samples();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "request_total");
        assert_eq!(s[0].label("direction"), Some("inbound"));
        assert_eq!(s[0].label("srv_name"), Some("a\"b\\c\nd"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!((s[1].name.as_str(), s[1].value), ("up", 1.0));
        assert_eq!(s[2].label("le"), Some("+Inf"));
        assert_eq!(s[2].value, 7.0);
        assert_eq!(s[3].value, f64::NEG_INFINITY);
    }

    #[test]
    fn malformed_lines_are_named() {
        let err = Scrape::parse("ok 1\nbad{x=1} 2\n").unwrap_err();
        assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Labels));
        let err = Scrape::parse("a{x=\"1\"} one\n").unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Value);
        let err = Scrape::parse("9lives 1\n").unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Name);
        assert_eq!(err.to_string(), "bad metric name on line 1");
    }

    #[test]
    fn the_text_format_may_separate_tokens_with_any_blanks_and_tabs() {
        // Prometheus' text format 0.0.4: "tokens on the same line may be
        // separated by any number of blanks and/or tabs".
        let text = "a_total{x=\"1\"}  5\n\
                    b\t6\t1700000000\n\
                    c {x=\"1\"} 7\n\
                    d{ x = \"1\" , y=\"2\" }\t8\n";
        let scrape = Scrape::parse(text).unwrap();
        let s = scrape.samples();
        let got: Vec<_> = s.iter().map(|s| (s.name.as_str(), s.value)).collect();
        assert_eq!(got, [("a_total", 5.0), ("b", 6.0), ("c", 7.0), ("d", 8.0)]);
        assert_eq!((s[3].label("x"), s[3].label("y")), (Some("1"), Some("2")));
        assert_eq!(s[2].label("x"), Some("1"));
    }

    #[test]
    fn a_sample_with_many_labels_is_read_in_one_pass() {
        // 200,000 labels make a line of 2 MB, well within a scrape.
        let labels: Vec<String> = (0..200_000).map(|i| format!("l{i}=\"v\"")).collect();
        let line = format!("m{{{}}} 1\n", labels.join(","));
        let scrape = Scrape::parse(&line).unwrap();
        assert_eq!(scrape.samples()[0].labels.len(), 200_000);
        let twice = format!("m{{{},l7=\"w\"}} 1\n", labels.join(","));
        let err = Scrape::parse(&twice).unwrap_err();
        assert_eq!(err.kind(), ParseErrorKind::Labels);
    }

    #[test]
    fn a_label_named_twice_or_labels_without_a_comma_are_errors() {
        let err = Scrape::parse("ok 1\na{x=\"1\",x=\"2\"} 2\n").unwrap_err();
        assert_eq!((err.line(), err.kind()), (2, ParseErrorKind::Labels));
        let err = Scrape::parse("a{x=\"1\"y=\"2\"} 2\n").unwrap_err();
        assert_eq!((err.line(), err.kind()), (1, ParseErrorKind::Labels));
        // A trailing comma is allowed.
        assert!(Scrape::parse("a{x=\"1\",} 2\n").is_ok());
    }
}
