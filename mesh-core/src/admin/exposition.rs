//! The two text formats `/metrics` answers in, and which one a request
//! gets.
//!
//! prometheus-client (0.24) writes one format only, OpenMetrics 1.0.0
//! text. Prometheus reads it, but much of what reads metrics does not:
//! `promtool check metrics`, older agents, and anything that asks for
//! `text/plain` read only the Prometheus text format 0.0.4. The two differ
//! in a few places, so [`to_text_004`] rewrites the encoder's OpenMetrics
//! into 0.0.4 once per scrape that asks for it, family by family:
//!
//! | OpenMetrics | 0.0.4 |
//! |---|---|
//! | counter family `foo`, sample `foo_total` | `# HELP`/`# TYPE` name `foo_total`, as the sample does |
//! | info family `foo`, sample `foo_info` | `# TYPE foo_info gauge` (0.0.4 has no info type) |
//! | `stateset` | `gauge` |
//! | `gaugehistogram` | `histogram` |
//! | `unknown` | `untyped` |
//! | `foo_created` of a counter, histogram or summary | dropped: 0.0.4 has no creation time |
//! | `# UNIT`, exemplars (`… # {…} v`), `# EOF` | dropped: 0.0.4 has none of them |
//! | `# HELP` escapes `\\`, `\n`, `\"` | only `\\` and `\n` are escapes in 0.0.4, so `\"` becomes `"` |
//! | timestamp in seconds, a float | milliseconds, an integer |
//!
//! Gauges, histograms (`_bucket`, `_sum`, `_count`) and label values
//! (escaped alike in both formats) are copied as they are.
//!
//! # Negotiation
//!
//! [`Format::negotiate`] reads the request's `Accept` as a Prometheus scrape
//! target is asked to in Prometheus' [content negotiation] document: the
//! format the header weighs highest wins, and when the header names none
//! of ours, text 0.0.4 is the last resort. Prometheus itself asks for
//! OpenMetrics first (2.x sends
//! `application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`),
//! so it keeps getting OpenMetrics, with exemplars and `_created`. A
//! request with no `Accept`, or curl's `*/*`, gets text 0.0.4: RFC 9110
//! §12.5.1 reads both as "any type", and client_golang's `promhttp`, the
//! reference exposer, serves 0.0.4 to them too, so a tool that names no
//! format gets the one every consumer reads.
//!
//! [content negotiation]: https://prometheus.io/docs/instrumenting/content_negotiation/

use std::fmt::{self, Write as _};

use http::{HeaderMap, header};

/// The OpenMetrics content type, the answer to a request that prefers it.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The Prometheus text format 0.0.4 content type, the answer to every
/// other request.
pub(crate) const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text format `/metrics` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0.0, as prometheus-client writes it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text004,
}

/// How closely a media range in `Accept` names a format: RFC 9110 §12.5.1
/// lets the most specific range that matches decide its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Precision {
    /// `*/*`.
    Any,
    /// `text/*` or `application/*`.
    Type,
    /// `text/plain`, with no version.
    Subtype,
    /// `text/plain; version=0.0.4`.
    Version,
}

/// What `Accept` says of one format: the most precise range that matched
/// it and its weight, in thousandths.
#[derive(Clone, Copy, Debug, Default)]
struct Weight {
    matched: Option<(Precision, u16)>,
}

impl Weight {
    fn offer(&mut self, precision: Precision, q: u16) {
        self.matched = match self.matched {
            // A more precise range overrides a less precise one; ranges
            // as precise as each other count for the better weight.
            Some((p, old)) if p > precision => Some((p, old)),
            Some((p, old)) if p == precision => Some((p, old.max(q))),
            _ => Some((precision, q)),
        };
    }

    fn q(self) -> u16 {
        self.matched.map_or(0, |(_, q)| q)
    }

    fn named(self) -> bool {
        self.matched.is_some_and(|(p, _)| p >= Precision::Subtype)
    }
}

impl Format {
    /// The format to answer a request with these headers in. See the
    /// [module docs](self).
    ///
    /// A range whose weight is not a number from 0 to 1 is skipped, as is
    /// an `Accept` value that is not ASCII: the answer is still a body,
    /// in the format the rest of the header asks for.
    pub(crate) fn negotiate(headers: &HeaderMap) -> Self {
        let mut openmetrics = Weight::default();
        let mut text = Weight::default();
        let mut any_accept = false;
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            any_accept = true;
            for range in split_outside_quotes(value, b',') {
                offer(range, &mut openmetrics, &mut text);
            }
        }
        if !any_accept {
            return Self::Text004;
        }
        let (om, txt) = (openmetrics.q(), text.q());
        // A tie goes to OpenMetrics only when the client named it rather
        // than reaching it through a wildcard: `*/*` alone is no request
        // for it.
        if om > txt || (om == txt && om > 0 && openmetrics.named()) {
            Self::OpenMetrics
        } else {
            Self::Text004
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS,
            Self::Text004 => TEXT_004,
        }
    }
}

/// Weighs one media range of `Accept` for both formats.
fn offer(range: &str, openmetrics: &mut Weight, text: &mut Weight) {
    let mut parts = split_outside_quotes(range, b';');
    let Some(media) = parts.next() else { return };
    let Some((kind, subtype)) = media.trim().split_once('/') else {
        return;
    };
    let (kind, subtype) = (kind.trim(), subtype.trim());
    let mut version = None;
    let mut q = 1000;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match name.trim() {
            n if n.eq_ignore_ascii_case("q") => match parse_q(value) {
                Some(weight) => q = weight,
                None => return,
            },
            n if n.eq_ignore_ascii_case("version") => version = Some(value),
            _ => {}
        }
    }
    let any_type = kind == "*";
    if any_type && subtype == "*" {
        openmetrics.offer(Precision::Any, q);
        text.offer(Precision::Any, q);
    } else if kind.eq_ignore_ascii_case("application") {
        if subtype == "*" {
            openmetrics.offer(Precision::Type, q);
        } else if subtype.eq_ignore_ascii_case("openmetrics-text") {
            offer_versioned(openmetrics, version, "1.0.0", q);
        }
    } else if kind.eq_ignore_ascii_case("text") {
        if subtype == "*" {
            text.offer(Precision::Type, q);
        } else if subtype.eq_ignore_ascii_case("plain") {
            offer_versioned(text, version, "0.0.4", q);
        }
    }
}

/// A range that names our media type: without a version it means any
/// version, ours included; with another version it names a format we do
/// not write, and says nothing of ours.
fn offer_versioned(weight: &mut Weight, version: Option<&str>, ours: &str, q: u16) {
    match version {
        None => weight.offer(Precision::Subtype, q),
        Some(v) if v == ours => weight.offer(Precision::Version, q),
        Some(_) => {}
    }
}

/// A weight (RFC 9110 §12.4.2: `0`, `1`, up to three decimals) in
/// thousandths; `None` for anything else.
pub(super) fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits `s` at `sep`, except inside a quoted string (a parameter value
/// may hold either separator).
fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if b == sep && !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

/// A line of OpenMetrics text that [`to_text_004`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvertError {
    line: usize,
    what: &'static str,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenMetrics line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ConvertError {}

/// An OpenMetrics metric type, and what 0.0.4 makes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            "info" => Self::Info,
            "stateset" => Self::StateSet,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }

    /// The 0.0.4 type.
    fn text_type(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge | Self::Info | Self::StateSet => "gauge",
            Self::Histogram | Self::GaugeHistogram => "histogram",
            Self::Summary => "summary",
            Self::Unknown => "untyped",
        }
    }

    /// What 0.0.4 appends to the family's name to name it: the one sample
    /// name of a counter or an info metric, which OpenMetrics leaves off
    /// the family.
    fn suffix(self) -> &'static str {
        match self {
            Self::Counter => "_total",
            Self::Info => "_info",
            _ => "",
        }
    }

    /// Whether the family may carry a `_created` sample.
    fn has_created(self) -> bool {
        matches!(self, Self::Counter | Self::Histogram | Self::Summary)
    }
}

/// The family whose samples are being copied.
#[derive(Clone, Copy, Debug)]
struct Family<'a> {
    name: &'a str,
    kind: Kind,
}

impl Family<'_> {
    fn is_created(&self, sample: &str) -> bool {
        self.kind.has_created()
            && sample.len() == self.name.len() + "_created".len()
            && sample.starts_with(self.name)
            && sample.ends_with("_created")
    }
}

/// Appends the Prometheus text format 0.0.4 of `openmetrics` (a complete
/// OpenMetrics exposition, as prometheus-client writes it) to `out`. See
/// the [module docs](self) for what changes.
///
/// The work per sample is a scan of its line for the end of its labels
/// and its value: names and types are worked out once per family.
pub(crate) fn to_text_004(openmetrics: &str, out: &mut String) -> Result<(), ConvertError> {
    let mut family: Option<Family<'_>> = None;
    // `# HELP` may come before the `# TYPE` that says what to name it.
    let mut help: Option<(&str, &str)> = None;
    for (index, line) in openmetrics.split('\n').enumerate() {
        let err = |what| ConvertError {
            line: index + 1,
            what,
        };
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            if let Some((name, text)) = help.take() {
                write_help(out, name, "", text);
            }
            sample(out, line, family.as_ref()).map_err(err)?;
            continue;
        };
        let mut tokens = comment.trim_start_matches(' ').splitn(3, ' ');
        match (tokens.next(), tokens.next()) {
            (Some("EOF"), None) => break,
            (Some("HELP"), Some(name)) => {
                let text = tokens.next().unwrap_or("");
                if let Some((pending, text)) = help.take() {
                    write_help(out, pending, "", text);
                }
                match family {
                    Some(f) if f.name == name => write_help(out, name, f.kind.suffix(), text),
                    _ => help = Some((name, text)),
                }
            }
            (Some("TYPE"), Some(name)) => {
                let kind = tokens
                    .next()
                    .and_then(Kind::parse)
                    .ok_or_else(|| err("a TYPE line without a known metric type"))?;
                match help.take() {
                    Some((pending, text)) if pending == name => {
                        write_help(out, name, kind.suffix(), text);
                    }
                    Some((pending, text)) => write_help(out, pending, "", text),
                    None => {}
                }
                family = Some(Family { name, kind });
                out.push_str("# TYPE ");
                out.push_str(name);
                out.push_str(kind.suffix());
                out.push(' ');
                out.push_str(kind.text_type());
                out.push('\n');
            }
            (Some("UNIT"), Some(_)) => {}
            (Some("HELP" | "TYPE" | "UNIT"), None) => {
                return Err(err("a metadata line without a metric name"));
            }
            // 0.0.4 reads any other comment as a comment.
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if let Some((name, text)) = help {
        write_help(out, name, "", text);
    }
    Ok(())
}

/// Writes `# HELP name+suffix text` with `text`'s OpenMetrics escapes
/// turned into 0.0.4's: `\"` is a plain `"` there, and a backslash that
/// escapes nothing is written as the escaped backslash it stands for.
fn write_help(out: &mut String, name: &str, suffix: &str, text: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push_str(suffix);
    out.push(' ');
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.as_bytes().first() {
            Some(b'\\') => out.push_str("\\\\"),
            Some(b'n') => out.push_str("\\n"),
            Some(b'"') => out.push('"'),
            _ => {
                out.push_str("\\\\");
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
    out.push('\n');
}

/// Copies one sample line, without its exemplar, with its timestamp in
/// milliseconds; a family's `_created` sample is left out.
fn sample(out: &mut String, line: &str, family: Option<&Family<'_>>) -> Result<(), &'static str> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    if family.is_some_and(|f| f.is_created(&line[..name_end])) {
        return Ok(());
    }
    let labels_end = if line.as_bytes()[name_end] == b'{' {
        name_end + labels_len(&line[name_end..]).ok_or("labels that are never closed")?
    } else {
        name_end
    };
    // After the labels only the value, a timestamp and an exemplar are
    // left, none of them quoted: the exemplar is the first ` # `.
    let rest = &line[labels_end..];
    let rest = rest.find(" # ").map_or(rest, |at| &rest[..at]);
    let mut tokens = rest.split(' ').filter(|t| !t.is_empty());
    tokens.next().ok_or("a sample without a value")?;
    let Some(timestamp) = tokens.next() else {
        out.push_str(&line[..labels_end]);
        out.push_str(rest);
        out.push('\n');
        return Ok(());
    };
    if tokens.next().is_some() {
        return Err("text after a sample's timestamp");
    }
    let seconds: f64 = timestamp
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite())
        .ok_or("a timestamp that is not a number")?;
    let rest = rest.trim_end_matches(' ');
    out.push_str(&line[..labels_end]);
    out.push_str(&rest[..rest.len() - timestamp.len()]);
    // Saturates far beyond any real date.
    let millis = (seconds * 1000.0).round() as i64;
    let _ = write!(out, "{millis}");
    out.push('\n');
    Ok(())
}

/// The length of the label set at the start of `s` (`{…}`, braces
/// included), or `None` when it is never closed.
fn labels_len(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
