//! Plain-text tables in the style of `linkerd viz stat`.

use super::{Golden, ScrapeError, Target};
use crate::printable::Printable;

/// The columns of [`Golden`]'s figures, in the order [`golden`] fills them.
pub(crate) const GOLDEN_HEADER: [&str; 5] = [
    "SUCCESS",
    "RPS",
    "LATENCY_P50",
    "LATENCY_P95",
    "LATENCY_P99",
];

/// A table: a header and rows of cells; the first column is left-aligned
/// and the others right-aligned, three spaces apart.
///
/// Cells hold names read from scrapes (routes, servers, identities), which
/// an admin server that is broken or not ours can fill with anything, so
/// their control characters are written escaped (`\u{1b}`, `\u{a}`): the
/// table goes to a terminal, where an escape sequence would act (clear
/// the screen, rewrite what other rows say) and a newline would forge a
/// row.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, mut cells: Vec<String>) {
        for cell in &mut cells {
            let printable = Printable::new(cell);
            if !printable.is_plain() {
                *cell = printable.to_string();
            }
        }
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    line += &format!("{cell:<w$}");
                } else {
                    line += &format!("   {cell:>w$}");
                }
            }
            out += line.trim_end();
            out.push('\n');
        }
        out
    }
}

/// What a cell shows of a figure that cannot be computed: one without
/// data, or NaN or infinite, which no reader can use (`NaN%`, `infrps`).
const NONE: &str = "-";

/// `90.00%`, or `-` with no data.
pub(crate) fn percent(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        None => NONE.into(),
        Some(v) => format!("{:.2}%", v * 100.0),
    }
}

/// `12.3rps`, or `-` for a rate that cannot be computed.
pub(crate) fn rps(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}rps")
    } else {
        NONE.into()
    }
}

/// `3ms`, `2.5ms` under 10 ms, or `-` with no data.
///
/// A tie is rounded away from zero, 12.5 ms to `13ms`: linkerd's
/// metrics-api rounds a latency so (Go's `math.Round`) before `linkerd viz
/// stat` prints it, and interpolated quantiles fall on halves often (half
/// a response into a bucket of two). Formatting alone (`{:.0}`) rounds a
/// tie to even, `12ms`.
pub(crate) fn latency(v: Option<f64>) -> String {
    match v.filter(|v| v.is_finite()) {
        None => NONE.into(),
        Some(ms) if ms < 10.0 => {
            let s = format!("{:.1}", (ms * 10.0).round() / 10.0);
            format!("{}ms", s.trim_end_matches(".0"))
        }
        Some(ms) => format!("{:.0}ms", ms.round()),
    }
}

/// The cells of `g` under [`GOLDEN_HEADER`]. Latencies that leave out
/// histogram series are marked `*`; [`dropped_note`] says why.
pub(crate) fn golden(g: &Golden) -> [String; 5] {
    let mark = |mut cell: String| {
        if g.latency_series_dropped > 0 {
            cell.push('*');
        }
        cell
    };
    [
        percent(g.success),
        rps(g.rps),
        mark(latency(g.latency_ms_p50)),
        mark(latency(g.latency_ms_p95)),
        mark(latency(g.latency_ms_p99)),
    ]
}

/// The line under a table whose rows' latencies leave out histogram
/// series (a `*`), naming how many and why; empty when none do. A figure
/// computed from less than was served says so, as a replica that could
/// not be scraped shows in MESHED.
pub(crate) fn dropped_note<'a>(rows: impl IntoIterator<Item = &'a Golden>) -> String {
    let dropped: u64 = rows
        .into_iter()
        .map(|g| g.latency_series_dropped)
        .fold(0, u64::saturating_add);
    if dropped == 0 {
        return String::new();
    }
    let max = super::delta::MAX_BOUNDS;
    format!(
        "* latency leaves out {dropped} histogram series: each had more than {max} buckets, or \
         would have taken its source past {max} distinct bounds; SUCCESS and RPS still count \
         their responses\n"
    )
}

/// The lines under a table naming each target that could not be scraped,
/// and why, with the causes of the failure (`connection refused`, the
/// line that did not parse); empty when every target answered. `0/1`
/// under MESHED, or a workload's routes missing, does not tell a wrong
/// port from a sidecar that is restarting.
pub(crate) fn unreachable_note(targets: &[Target], failures: &[Option<ScrapeError>]) -> String {
    let mut out = String::new();
    for (target, failure) in targets.iter().zip(failures) {
        if let Some(e) = failure {
            out += &unreachable_line(&target.name, &causes(e));
        }
    }
    out
}

/// The line that says `name` could not be scraped, and why.
pub(crate) fn unreachable_line(name: &str, why: &str) -> String {
    format!(
        "could not scrape {}: {}\n",
        Printable::new(name),
        Printable::new(why)
    )
}

/// `e` and its causes, each after a `: `.
pub(crate) fn causes(e: &ScrapeError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(vec!["NAME", "SUCCESS", "RPS"]);
        t.row(vec!["web".into(), percent(Some(0.9)), rps(12.34)]);
        t.row(vec!["emoji-svc".into(), percent(None), rps(0.0)]);
        assert_eq!(
            t.render(),
            "NAME        SUCCESS       RPS\n\
             web          90.00%   12.3rps\n\
             emoji-svc         -    0.0rps\n"
        );
        assert_eq!(latency(Some(2.0)), "2ms");
        assert_eq!(latency(Some(2.66)), "2.7ms");
        assert_eq!(latency(Some(150.2)), "150ms");
    }

    #[test]
    fn a_figure_that_cannot_be_computed_is_a_dash() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                [rps(v), percent(Some(v)), latency(Some(v))],
                ["-", "-", "-"],
                "{v}"
            );
        }
    }
}
