//! The demo mesh: the guide's emojivoto (`web`, `emoji` and `voting`),
//! each behind its own sidecar, on mutual TLS, with a policy, retries and
//! live metrics, all on 127.0.0.1 with no files to prepare.
//!
//! ```text
//! cargo run --release --example demo                        # until Ctrl-C
//! cargo run --release --example demo -- --duration 30s      # what CI runs
//! cargo run --release --example demo -- --no-retries        # watch it fail
//! ```
//!
//! It prints where its files are, the dashboard's address, and then every
//! two seconds a table like `sidecar stat` (success, requests per second,
//! latency percentiles and the share on mutual TLS, per workload) and
//! `web`'s calls as `web` saw them beside every attempt its sidecar made.
//! A sidecar whose metrics cannot be read gets a line under the table
//! saying why. At the end it prints one summary line. A run given its
//! length (`--duration`, as CI runs it) is judged: it exits non-zero
//! if the mesh broke a promise: `web` made no calls, `web`, or `vote-bot`
//! calling `web`, saw less than 99 % success, a request between sidecars
//! was not on mutual TLS, a call the policy denies got anything but its
//! 403 (or none was made), a sidecar's metrics could not be read at the
//! end, or the dashboard at the address it printed did not serve its page
//! at the end. A run without one ends as it is meant to, at Ctrl-C,
//! SIGTERM or SIGHUP, and is not judged: it prints its figures
//! (`demo stopped: ...`) and exits 0, however soon it was stopped, since
//! in its first second `web` may have made no call at all. Either way, a
//! run that could not start, or left its files behind, exits non-zero.
//! When standard output cannot be written (`demo | head`), it stops,
//! says so, puts the summary on standard error (a run stopped before its
//! `--duration` without a verdict) and exits non-zero. A reader
//! who stops reading (Ctrl-S, a full `| less`) does not stop the mesh:
//! tables are written from a thread of their own, those that would pile
//! up are left out, and the next one says how many were
//! (`mesh_examples::demo::output`).
//!
//! The code is `mesh_examples::demo` (examples/src/demo), where each
//! module is one part of the story.

use std::{io::Write, num::NonZeroU32, process::ExitCode, time::Duration};

use clap::Parser;
use mesh_examples::{
    demo::{self, DemoConfig, DemoError, output::Detached},
    sidecar::config::parse_duration,
};

/// Runs the demo mesh on this machine and shows it working.
#[derive(Debug, Parser)]
struct Args {
    /// Stop after this long (for example `30s`) instead of at Ctrl-C, and
    /// exit non-zero if the mesh broke a promise.
    #[arg(long, value_parser = run_duration)]
    duration: Option<Duration>,
    /// Requests a second the load generator sends to `web`, from 1 to
    /// 10000.
    #[arg(long, default_value = "30", value_parser = clap::value_parser!(u32).range(1..=MAX_RPS))]
    rps: u32,
    /// Do not retry `voting`'s failures, so that `web` sees them.
    #[arg(long)]
    no_retries: bool,
    /// The port of web's admin server (and its dashboard); emoji's,
    /// voting's and vote-bot's take the next three, so at most 65532.
    /// 0 lets the system pick.
    #[arg(long, default_value = "4191", value_parser = clap::value_parser!(u16).range(0..=MAX_ADMIN_PORT))]
    admin_port: u16,
}

/// The most requests a second `--rps` takes. The load generator's tick is
/// a second divided by the rate; past a billion it rounds to zero, and
/// long before that the four one-thread sidecars cannot keep up.
const MAX_RPS: i64 = 10_000;

/// The highest `--admin-port`: the four admin servers take it and the next
/// three, which must not run past 65535.
const MAX_ADMIN_PORT: i64 = 65_532;

/// How long the demo waits, once it has stopped, for a reader who is not
/// reading its standard output to take the rest.
const OUTPUT_PATIENCE: Duration = Duration::from_secs(5);

/// The shortest `--duration`: a run must last long enough for traffic to
/// flow before its success can be judged.
const MIN_DURATION: Duration = Duration::from_secs(1);

/// Parses `--duration`: a duration of at least [`MIN_DURATION`].
fn run_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|e| e.to_string())?;
    if duration < MIN_DURATION {
        return Err(format!(
            "the demo needs at least {}s of traffic to judge the mesh",
            MIN_DURATION.as_secs()
        ));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    // Logs go to standard error, plain unless it is a terminal: standard
    // output carries the tables and the summary, for people and for grep.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = DemoConfig {
        rps: NonZeroU32::new(args.rps).unwrap_or(NonZeroU32::MIN),
        duration: args.duration,
        retries: !args.no_retries,
        admin_port: args.admin_port,
        ..DemoConfig::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("demo: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let stop = match runtime.block_on(async { stop_signal() }) {
        Ok(stop) => stop,
        Err(error) => {
            eprintln!("demo: cannot listen for signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Tables go through a thread of their own, so that a reader who stops
    // reading (Ctrl-S, a full `| less`) stalls the text, not the mesh.
    let mut out = match Detached::stdout() {
        Ok(out) => out,
        Err(error) => {
            eprintln!("demo: cannot start the output thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Only a run given its length is judged: one stopped by hand may be
    // stopped before `web` has made a call, and stopping it is no failure.
    let judged = config.duration.is_some();
    let line = |summary: &demo::report::Summary| {
        if judged {
            summary.to_string()
        } else {
            summary.unjudged().to_string()
        }
    };
    match runtime.block_on(demo::run(&config, &mut out, stop)) {
        Ok(summary) => {
            // When the reader has gone (`demo | head`) or does not come
            // back in time, the summary goes to standard error, and the run
            // fails as when a table could not be written.
            let summary_line = line(&summary);
            let written =
                writeln!(out, "{summary_line}").and_then(|()| out.finish(OUTPUT_PATIENCE));
            if let Err(error) = written {
                eprintln!("demo: cannot write the output\n  caused by: {error}\n{summary_line}");
                return ExitCode::FAILURE;
            }
            if !judged || summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        // Stopped while the sidecars were still starting: as soon as the
        // user wanted, with its files removed.
        Err(DemoError::Stopped) if !judged => {
            let written = writeln!(out, "demo stopped before the mesh was ready")
                .and_then(|()| out.finish(OUTPUT_PATIENCE));
            if written.is_err() {
                eprintln!("demo stopped before the mesh was ready");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            // What was printed before the error comes before it; a run
            // that ended and only then failed (its files stayed) still
            // shows its summary, on standard error when the output has gone.
            // A run that stopped when its output went was not run for its
            // length: its figures, without a verdict.
            let shown = match &error {
                DemoError::OutputLost { summary, .. } => Some(summary.unjudged().to_string()),
                _ => error.summary().map(line),
            };
            match shown {
                Some(summary) => {
                    let written =
                        writeln!(out, "{summary}").and_then(|()| out.finish(OUTPUT_PATIENCE));
                    if written.is_err() {
                        eprintln!("{summary}");
                    }
                }
                None => {
                    let _ = out.finish(OUTPUT_PATIENCE);
                }
            }
            eprintln!("demo: {error}");
            for cause in mesh_examples::causes(&error) {
                eprintln!("  caused by: {cause}");
            }
            // Only a taken port is cured by other ports: a sidecar out of
            // file descriptors, say, would fail on any.
            if let Some(taken) = error.taken_admin_port() {
                eprintln!(
                    "  hint: {taken} is taken; the admin servers use ports {}-{}, \
                     and `--admin-port 0` lets the system pick them",
                    config.admin_port,
                    config.admin_port.saturating_add(3)
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// Listens for Ctrl-C (SIGINT), SIGTERM and SIGHUP, the ways people,
/// process managers and a closed terminal stop a program, from now on: a
/// future that resolves at any, so that all of them shut the mesh down and
/// remove its files, the CA's private keys among them.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    })
}
