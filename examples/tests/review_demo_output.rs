//! A reader who goes away while the demo runs (`demo | head`) stops it,
//! and the run's figures still reach standard error, as the demo's docs
//! promise: a table that could not be written returned from the run at
//! once, with no summary, so the figures and the verdict were lost with
//! standard output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    io::{BufRead, BufReader, Write},
    num::NonZeroU32,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use mesh_examples::demo::{self, DemoConfig, DemoError};

/// An output whose reader goes away after the first table has begun.
#[derive(Default)]
struct GoneAtTheFirstTable {
    text: String,
}

impl Write for GoneAtTheFirstTable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if text.starts_with("── ") {
            return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        }
        self.text.push_str(&text);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_written_ends_the_run_with_its_summary() {
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(Duration::from_secs(60)),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let mut out = GoneAtTheFirstTable::default();
    let error = demo::run(&config, &mut out, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "cannot write the output");
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("roken pipe"), "{cause}");
    // What ran until the reader went: the first table's traffic.
    let summary = error.summary().expect("the run's summary");
    assert!(summary.requests > 0, "{}", summary.unjudged());
    assert!(summary.elapsed < Duration::from_secs(60), "{summary:?}");
    let files = out
        .text
        .lines()
        .find_map(|line| line.strip_prefix("files: "))
        .and_then(|rest| rest.split(' ').next())
        .map(PathBuf::from)
        .expect("the demo said where its files are");
    assert!(!files.exists(), "{} was left behind", files.display());
    assert!(matches!(error, DemoError::OutputLost { .. }), "{error:?}");
}

#[test]
fn the_demo_program_puts_the_figures_on_standard_error_when_its_reader_goes() {
    let mut child = Command::new(support::example_binary("demo"))
        .args(["--admin-port", "0", "--rps", "5", "--duration", "60s"])
        .env("RUST_LOG", "off")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("dashboard: ") {
            break;
        }
    }
    // The reader goes away before the first table, long before the run's
    // 60 s are up.
    drop(lines);
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("demo: cannot write the output"), "{err}");
    // Stopped before its length, so its figures without a verdict.
    assert!(err.contains("demo stopped: "), "{err}");
    assert!(err.contains(" requests to web "), "{err}");
}
