//! The process families read `/proc/self/stat` and `/proc/self/status`,
//! which hold the program's name as the kernel keeps it: 15 bytes at most,
//! cut wherever they end, so a UTF-8 name can end inside a character, and
//! it may hold spaces and parentheses. Whatever the name, the families that
//! come from those files are in the scrape. This file is a test binary of its own, as
//! it renames its process.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use mesh_metrics::{BuildInfo, register_process_metrics};
use prometheus_client::{encoding::text::encode, registry::Registry};

#[test]
fn cpu_memory_and_start_time_are_read_whatever_the_process_name() {
    // "a (b) ", then the first two bytes of a three-byte character, as a
    // long UTF-8 program name is cut.
    std::fs::write("/proc/self/comm", b"a (b) \xe6\x97").unwrap();
    let stat = std::fs::read("/proc/self/stat").unwrap();
    assert!(stat.windows(10).any(|w| w == b"(a (b) \xe6\x97)"));

    let mut registry = Registry::default();
    register_process_metrics(&mut registry, &BuildInfo::new("0.0.0"));
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    // A family whose file could not be read past the name is left out of
    // the scrape: each is there, with a number. What the numbers should be
    // is the unit tests' business (`process.rs`).
    for name in [
        "process_start_time_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value > 0.0 || name == "process_cpu_seconds_total", "{line}");
    }
}
