//! The report as `linkerd check` prints one: a heading per group, a line
//! per check, details indented under it, and a summary line (`-o table`);
//! the same with the checks that passed left out (`-o short`); or
//! `linkerd check -o json`'s document (`-o json`).

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::{Check, Report, Status};

/// How `sidecar check` prints its report: `-o table` (the default),
/// `short` or `json`, the formats of `linkerd check -o`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// Every check under its heading, then the summary ([`Report`]'s
    /// `Display`).
    #[default]
    Table,
    /// Only the checks that warned or failed, under their headings, then
    /// the summary ([`Report::short`]): all that is left of a report that
    /// passes is its last line.
    Short,
    /// The report as `linkerd check -o json` writes one, for scripts
    /// ([`Report`]'s `Serialize`).
    Json,
}

impl FromStr for Output {
    type Err = InvalidOutput;

    /// `table`, `short` or `json`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "short" => Ok(Self::Short),
            "json" => Ok(Self::Json),
            _ => Err(InvalidOutput),
        }
    }
}

/// An output format other than `table`, `short` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidOutput;

impl fmt::Display for InvalidOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected table, short or json")
    }
}

impl std::error::Error for InvalidOutput {}

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
        write_report(f, self, |_| true)
    }
}

/// [`Report::short`]: the report without the checks that passed.
#[derive(Debug, Clone, Copy)]
pub struct Short<'r>(&'r Report);

impl Report {
    /// The report as `linkerd check -o short` prints one: the checks that
    /// warned or failed under their headings, and the summary line, which
    /// still counts every check. A group whose checks all passed is left
    /// out, heading and all.
    pub fn short(&self) -> Short<'_> {
        Short(self)
    }
}

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_report(f, self.0, |check| check.status != Status::Pass)
    }
}

/// The groups with the checks `shown` keeps, then the summary line.
fn write_report(
    f: &mut fmt::Formatter<'_>,
    report: &Report,
    shown: impl Fn(&Check) -> bool,
) -> fmt::Result {
    for group in &report.groups {
        let mut checks = group.checks.iter().filter(|check| shown(check)).peekable();
        if checks.peek().is_none() {
            continue;
        }
        writeln!(f, "{}", group.name)?;
        writeln!(f, "{}", "-".repeat(group.name.chars().count()))?;
        for check in checks {
            writeln!(f, "{} {}", check.status.symbol(), check.title)?;
            for line in check.detail.iter().flat_map(|detail| detail.lines()) {
                writeln!(f, "    {line}")?;
            }
        }
        writeln!(f)?;
    }
    writeln!(f, "{}", report.summary())
}

/// The document of `linkerd check -o json` (its `CheckOutput`, in
/// linkerd2's `pkg/healthcheck`): `success` is false when a check failed,
/// as the exit status says; each group is a category named by its
/// heading; each check has its title as `description`, and `result`
/// `success`, `warning` or `error`. A check that warned or failed gives
/// why as `error` and what to do about it, when it says, as `hint`
/// ([`Check::error`], [`Check::hint`]); as in Linkerd, a check that passed
/// has neither, so the notes under a passing check are the table's only.
impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let categories = self
            .groups
            .iter()
            .map(|group| JsonCategory {
                category_name: group.name,
                checks: group.checks.iter().map(JsonCheck::of).collect(),
            })
            .collect();
        JsonReport {
            success: self.is_success(),
            categories,
        }
        .serialize(serializer)
    }
}

#[derive(Serialize)]
struct JsonReport<'r> {
    success: bool,
    categories: Vec<JsonCategory<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonCategory<'r> {
    category_name: &'r str,
    checks: Vec<JsonCheck<'r>>,
}

#[derive(Serialize)]
struct JsonCheck<'r> {
    description: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'r str>,
    result: &'static str,
}

impl<'r> JsonCheck<'r> {
    fn of(check: &'r Check) -> Self {
        let (result, error, hint) = match check.status {
            Status::Pass => ("success", None, None),
            Status::Warn => ("warning", check.error(), check.hint.as_deref()),
            Status::Fail => ("error", check.error(), check.hint.as_deref()),
        };
        Self {
            description: &check.title,
            hint,
            error,
            result,
        }
    }
}
