//! The demo's tables after a stall (output paused with Ctrl-S, Ctrl-Z then
//! `fg`, a machine that slept): one table over the whole gap, then one an
//! interval, not every missed table at once, each over the milliseconds
//! since the one before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{io::Write, num::NonZeroU32, time::Duration};

use mesh_examples::demo::{self, DemoConfig};

/// The demo's output; writing its first table blocks for a second, as a
/// terminal whose output is paused (Ctrl-S) does, and with it the runtime
/// the demo runs on, as a stopped process is.
#[derive(Default)]
struct Stalling {
    out: Vec<u8>,
    tables: usize,
}

impl Write for Stalling {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        if buf.starts_with("── ".as_bytes()) {
            self.tables += 1;
            if self.tables == 1 {
                // Off this runtime, whose clock does not run while the
                // write blocks it.
                std::thread::spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .unwrap();
                    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
                })
                .join()
                .unwrap();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The window of each table, in seconds, as printed.
fn windows(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|line| line.starts_with("── "))
        .filter_map(|line| line.split("the last ").nth(1)?.split('s').next())
        .map(|w| w.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn after_a_stall_the_missed_tables_are_not_printed_in_a_row() {
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(Duration::from_millis(2100)),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let mut out = Stalling::default();
    let summary = demo::run(&config, &mut out, std::future::pending())
        .await
        .unwrap();
    let windows = windows(&String::from_utf8(out.out).unwrap());
    // The table after the stall covers it.
    assert!(windows.len() >= 2, "{windows:?}");
    assert!(windows[1] >= 0.9, "{windows:?}");
    // The tables after it come an interval apart, each over about an
    // interval, not one after another over the time a scrape takes: the
    // missed ones were not printed in a row.
    assert!(
        windows[1..].iter().all(|w| *w >= 0.3),
        "{windows:?}\n{summary}"
    );
}
