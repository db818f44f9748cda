//! `top`: a live view of workloads and their routes.
//!
//! Every interval it scrapes each admin server once and shows what changed
//! since the previous scrape: the `stat` table of workloads, then each
//! workload's inbound routes, busiest first. In a terminal it redraws in
//! place; with [`Format::Json`] it writes one JSON object per frame, one per
//! line, for scripts that follow it.

use std::{io::Write, num::NonZeroUsize, time::Duration};

use serde::Serialize;
use tokio::time::Instant;

use super::{
    Format, QueryError, Scrape, Target, deltas,
    render::{self, Table},
    routes::{RouteRow, name_cells, route_rows},
    scrape_each, split,
    stat::{StatRow, render_stat, stat_rows},
};
use crate::labels::Direction;

/// A table frame drawn over the one before, as `top(1)` and `watch(1)`
/// draw theirs: the cursor goes home, each line clears what is left of
/// the line it overwrites (`ESC[K`), and the end clears the rows below
/// (`ESC[J`). Clearing the whole screen first (`ESC[2J`) instead makes
/// the terminal show a blank screen between frames, a flicker, and
/// xterm, VTE and kitty push the cleared screen into the scrollback, a
/// copy per frame.
fn drawn_over(text: &str) -> String {
    let mut frame = String::with_capacity(text.len() + 64);
    frame.push_str("\x1b[H");
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(line) => {
                frame.push_str(line);
                frame.push_str("\x1b[K\n");
            }
            None => {
                frame.push_str(line);
                frame.push_str("\x1b[K");
            }
        }
    }
    frame.push_str("\x1b[J");
    frame
}

/// One frame of `top`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Frame {
    /// The time this frame covers.
    pub window_seconds: f64,
    /// One row per workload.
    pub workloads: Vec<StatRow>,
    /// Every workload's inbound routes, busiest first.
    pub routes: Vec<RouteRow>,
    /// The targets without figures in this frame, and why: `0/1` under
    /// MESHED does not tell a wrong port from a sidecar that is
    /// restarting. Empty when every target answered.
    pub unreachable: Vec<Unreachable>,
}

/// A target that did not answer a frame's scrape, or the one before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// The workload it is a replica of.
    pub name: String,
    /// Its admin address.
    pub addr: String,
    /// Why it could not be scraped, with the causes: `cannot connect to
    /// 127.0.0.1:4191: Connection refused (os error 111)`.
    pub error: String,
}

impl Frame {
    /// The frame between two rounds of scrapes of `targets` (`None` where a
    /// target did not answer), `elapsed` apart. A workload none of whose
    /// replicas answered both rounds shows as `0/N` meshed, with no data.
    pub fn between(
        targets: &[Target],
        before: &[Option<Scrape>],
        after: &[Option<Scrape>],
        elapsed: Duration,
    ) -> Self {
        let deltas = deltas(before, after, elapsed);
        let mut routes = route_rows(targets, &deltas, None);
        routes.sort_by(|a, b| {
            let busier = b.golden.rps.total_cmp(&a.golden.rps);
            busier.then_with(|| a.route.cmp(&b.route))
        });
        Self {
            window_seconds: elapsed.as_secs_f64(),
            workloads: stat_rows(targets, &deltas, Direction::Inbound),
            routes,
            unreachable: Vec::new(),
        }
    }
}

/// Renders one frame as text: a title line, the workloads, and the routes.
///
/// # Errors
///
/// Only when JSON encoding fails.
pub fn render_frame(frame: &Frame, format: Format) -> Result<String, QueryError> {
    if format == Format::Json {
        // Escaped as the other views' JSON (`to_json`), on one line.
        return serde_json::to_string(frame)
            .map(|s| {
                let mut s = crate::printable::escape_json_string(s);
                s.push('\n');
                s
            })
            .map_err(QueryError::Json);
    }
    let mut out = format!("mesh top: the last {:.1}s\n\n", frame.window_seconds);
    out += &render_stat(&frame.workloads, Format::Table)?;
    for u in &frame.unreachable {
        out += &render::unreachable_line(&u.name, &u.error);
    }
    out.push('\n');
    // The routes are inbound ones: the third column is the server that
    // owns each (`srv_name`), as `sidecar authz` calls it.
    let mut header = vec!["WORKLOAD", "ROUTE", "SERVER"];
    header.extend(render::GOLDEN_HEADER);
    let mut table = Table::new(header);
    let names = name_cells(&frame.routes);
    for (r, [route, server]) in frame.routes.iter().zip(names) {
        let mut cells = vec![r.workload.clone(), route, server];
        cells.extend(render::golden(&r.golden));
        table.row(cells);
    }
    out += &table.render();
    out += &render::dropped_note(frame.routes.iter().map(|r| &r.golden));
    Ok(out)
}

/// `sidecar top`: writes a frame to `out` every `interval`, each covering
/// the interval before it, until `frames` have been written (forever when
/// `None`). A target that does not answer shows as not meshed rather than
/// ending the view, so the view survives a restart of what it watches.
/// A table redraws the terminal at each frame ([`run_redrawing`]).
///
/// # Errors
///
/// When `targets` is empty, `interval` is zero, JSON encoding fails, or
/// `out` cannot be written.
pub async fn run<W: Write>(
    out: &mut W,
    targets: &[Target],
    interval: Duration,
    format: Format,
    frames: Option<NonZeroUsize>,
) -> Result<(), QueryError> {
    let redraw = format == Format::Table;
    run_redrawing(out, targets, interval, format, frames, redraw).await
}

/// [`run`], drawing each table frame over the one before only when
/// `redraw`: written to a file or a pipe, the terminal's control
/// sequences are noise, so there each frame follows the one before, a
/// blank line apart.
///
/// # Errors
///
/// As [`run`].
pub async fn run_redrawing<W: Write>(
    out: &mut W,
    targets: &[Target],
    interval: Duration,
    format: Format,
    frames: Option<NonZeroUsize>,
    redraw: bool,
) -> Result<(), QueryError> {
    if targets.is_empty() {
        return Err(QueryError::NoTargets);
    }
    if interval.is_zero() {
        return Err(QueryError::ZeroInterval);
    }
    // A round's counters are read as its scrapes begin: the admin servers
    // that answer at once are read then, whatever a round then waits for
    // (a target that never answers holds it up for the scrape's timeout).
    // Timed from the end of one round to the end of the next, a frame
    // after a round held up 5 s would cover 5 s more, or less, than its
    // counters do: at worst no time at all, and no rate.
    let mut taken = Instant::now();
    let (mut before, mut failed) = split(scrape_each(targets).await);
    // Each round is due an interval after the one before began; one that
    // came late (the round before it was held up) begins at once, and the
    // next is due an interval after it. Rounds that caught up on the
    // intervals a late one missed, as an interval's ticks do, would each
    // cover the instants since the one before, and read a rate from one
    // request or none. A time past the clock's range never comes (tokio's
    // interval would panic at it).
    let mut due = taken.checked_add(interval);
    let mut written = 0;
    loop {
        match due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
        let now = Instant::now();
        due = now.checked_add(interval);
        let (after, failures) = split(scrape_each(targets).await);
        let mut frame = Frame::between(
            targets,
            &before,
            &after,
            now.saturating_duration_since(taken),
        );
        // This scrape's failure, else the one before's: either leaves the
        // target without figures.
        frame.unreachable = targets
            .iter()
            .zip(failures.iter().zip(&failed))
            .filter_map(|(t, (now, then))| {
                now.as_ref().or(then.as_ref()).map(|e| Unreachable {
                    name: t.name.clone(),
                    addr: t.addr.clone(),
                    error: render::causes(e),
                })
            })
            .collect();
        before = after;
        failed = failures;
        taken = now;
        let text = render_frame(&frame, format)?;
        let text = match format {
            Format::Table if redraw => drawn_over(&text),
            Format::Table if written > 0 => format!("\n{text}"),
            _ => text,
        };
        out.write_all(text.as_bytes()).map_err(QueryError::Write)?;
        out.flush().map_err(QueryError::Write)?;
        written += 1;
        if frames.is_some_and(|n| written >= n.get()) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod run_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_frame_is_drawn_over_the_last_clearing_only_what_it_does_not_cover() {
        assert_eq!(
            drawn_over("NAME  SR\nweb   100%\n"),
            "\x1b[HNAME  SR\x1b[K\nweb   100%\x1b[K\n\x1b[J"
        );
        assert_eq!(drawn_over("no trailing"), "\x1b[Hno trailing\x1b[K\x1b[J");
        assert!(!drawn_over("a\nb\n").contains("\x1b[2J"));
    }

    #[test]
    fn the_route_table_names_its_servers_as_servers() {
        let frame = Frame {
            window_seconds: 2.0,
            workloads: Vec::new(),
            routes: Vec::new(),
            unreachable: Vec::new(),
        };
        let text = render_frame(&frame, Format::Table).unwrap();
        let header = text
            .lines()
            .rev()
            .find(|l| l.starts_with("WORKLOAD"))
            .unwrap();
        let columns: Vec<&str> = header.split_whitespace().take(3).collect();
        assert_eq!(columns, ["WORKLOAD", "ROUTE", "SERVER"], "{text}");
    }

    #[test]
    fn a_json_frame_escapes_the_c1_controls_of_scraped_names() {
        let after = Scrape::parse(
            "response_total{direction=\"inbound\",srv_name=\"web\",\
             route_name=\"a\u{9b}2J\",classification=\"success\"} 5\n",
        )
        .unwrap();
        let targets = Target::parse_list("web=a:1").unwrap();
        let frame = Frame::between(
            &targets,
            &[Some(Scrape::default())],
            &[Some(after)],
            Duration::from_secs(1),
        );
        let json = render_frame(&frame, Format::Json).unwrap();
        assert!(!json.contains('\u{9b}'), "{json:?}");
        assert!(json.contains(r#""route":"a\u009b2J""#), "{json}");
        assert_eq!(json.lines().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interval_past_what_the_clock_can_tell_waits_rather_than_panics() {
        // The first frame was due at the time of the first scrape plus the
        // interval, a sum past the clock's range for `Duration::MAX`: the
        // view panicked rather than wait.
        let targets = Target::parse_list("web=127.0.0.1:9").unwrap();
        let mut out = Vec::new();
        let view = run(&mut out, &targets, Duration::MAX, Format::Json, None);
        let waited = tokio::time::timeout(Duration::from_secs(24 * 3600), view).await;
        assert!(waited.is_err(), "{waited:?}");
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_zero_interval_is_an_error_not_a_panic() {
        let targets = Target::parse_list("web=127.0.0.1:9").unwrap();
        let mut out = Vec::new();
        let error = run(&mut out, &targets, Duration::ZERO, Format::Table, None)
            .await
            .unwrap_err();
        assert!(matches!(error, QueryError::ZeroInterval), "{error:?}");
        assert!(out.is_empty());
    }
}
