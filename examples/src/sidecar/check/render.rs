//! The report as `linkerd check` prints one: a heading per group, a line
//! per check, details indented under it, and a summary line.

use std::fmt;

use super::{Report, Status};

impl Report {
    /// The last line of the report: `✔ 9 checks passed`, `‼ 10 checks
    /// passed, 1 with a warning` or `✖ 2 of 10 checks failed, 1 warning`.
    pub fn summary(&self) -> String {
        let total = self.checks().count();
        let warned = self.count(Status::Warn);
        let failed = self.count(Status::Fail);
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let symbol = self.status().symbol();
        match (failed, warned) {
            (0, 0) => format!("{symbol} {} passed", plural(total, "check", "checks")),
            (0, _) => format!(
                "{symbol} {} passed, {}",
                plural(total, "check", "checks"),
                plural(warned, "with a warning", "with warnings"),
            ),
            (_, 0) => format!("{symbol} {failed} of {total} checks failed"),
            (_, _) => format!(
                "{symbol} {failed} of {total} checks failed, {}",
                plural(warned, "warning", "warnings")
            ),
        }
    }
}

/// The whole report, ending with the summary line and a newline.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for group in &self.groups {
            writeln!(f, "{}", group.name)?;
            writeln!(f, "{}", "-".repeat(group.name.chars().count()))?;
            for check in &group.checks {
                writeln!(f, "{} {}", check.status.symbol(), check.title)?;
                for line in check.detail.iter().flat_map(|detail| detail.lines()) {
                    writeln!(f, "    {line}")?;
                }
            }
            writeln!(f)?;
        }
        writeln!(f, "{}", self.summary())
    }
}
