//! Process metrics and `proxy_build_info`.
//!
//! The standard Prometheus process families, read from `/proc/self` on each
//! scrape (so they cost nothing between scrapes), and an info metric naming
//! the build, as Linkerd's proxy exports it:
//!
//! | family | type |
//! |---|---|
//! | `process_start_time_seconds` | gauge, Unix seconds |
//! | `process_cpu_seconds_total` | counter |
//! | `process_resident_memory_bytes` | gauge |
//! | `process_virtual_memory_bytes` | gauge |
//! | `process_open_fds` | gauge |
//! | `process_max_fds` | gauge |
//! | `proxy_build_info{date, git_sha, profile, vendor, version}` | info |
//!
//! On systems without `/proc`, or when a file cannot be read, the families
//! it feeds are left out of the scrape rather than failing it.

use std::{fmt, fs};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder},
    metrics::{counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::Registry,
};

use crate::labels::label;

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, which Linux
/// fixes at 100 for user space on every architecture it exports it.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `proxy_build_info` says about the build: linkerd2-proxy's five
/// labels (its `app/core/src/build_info.rs`), so that a dashboard that
/// shows which build of the proxy runs where reads this one's too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BuildInfo {
    /// When the program was built, in ISO 8601 UTC
    /// (`2026-11-30T19:51:19Z`), or empty when unknown.
    pub date: &'static str,
    /// The commit it was built from (`git rev-parse --short HEAD`), or
    /// empty when unknown.
    pub git_sha: &'static str,
    /// `release` or `debug`.
    pub profile: &'static str,
    /// Who built it, or empty when unknown.
    pub vendor: &'static str,
    /// The version of the program, such as `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
}

impl BuildInfo {
    /// The build of the program calling this: `version` as given, the
    /// profile from `debug_assertions`, and the date, commit and vendor
    /// from `MESH_BUILD_DATE`, `MESH_GIT_SHA` and `MESH_VENDOR` in the
    /// environment of the build (of this crate, which a workspace builds
    /// in the program's own `cargo build`), each empty when not set.
    ///
    /// Empty is what Linkerd's proxy writes for what its build could not
    /// tell (a build outside a git checkout has no commit). Read from the
    /// build's environment rather than found by a build script, nothing
    /// runs `git` or a clock at build time, a build is the same wherever
    /// it runs, and Cargo rebuilds when a value changes. A release build
    /// sets them: `MESH_GIT_SHA=$(git rev-parse --short HEAD)
    /// MESH_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) cargo build --release`.
    pub fn new(version: &'static str) -> Self {
        Self {
            date: option_env!("MESH_BUILD_DATE").unwrap_or(""),
            git_sha: option_env!("MESH_GIT_SHA").unwrap_or(""),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            vendor: option_env!("MESH_VENDOR").unwrap_or(""),
            version,
        }
    }
}

/// Registers the process families and `proxy_build_info` in `registry`.
/// Register once per registry.
pub fn register_process_metrics(registry: &mut Registry, build: &BuildInfo) {
    registry.register(
        "proxy_build",
        "Proxy build info",
        Info::new(BuildLabels(build.clone())),
    );
    registry.register_collector(Box::new(ProcessCollector {
        start_time: start_time_seconds(),
    }));
}

/// The labels of `proxy_build_info`. The build's text is the caller's,
/// and prometheus-client writes label values as they are: escaped here,
/// so that a `"` or a newline in a version cannot end its value early or
/// forge a line of the exposition.
///
/// Written in linkerd2-proxy's order: `date`, `git_sha`, `profile`,
/// `vendor`, `version`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BuildLabels(BuildInfo);

impl EncodeLabelSet for BuildLabels {
    fn encode(&self, enc: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let BuildInfo {
            date,
            git_sha,
            profile,
            vendor,
            version,
        } = &self.0;
        label(enc, "date", date)?;
        label(enc, "git_sha", git_sha)?;
        label(enc, "profile", profile)?;
        label(enc, "vendor", vendor)?;
        label(enc, "version", version)
    }
}

/// Reads `/proc/self` on each scrape. The start time does not change, so it
/// is read once.
struct ProcessCollector {
    start_time: Option<f64>,
}

impl fmt::Debug for ProcessCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessCollector").finish_non_exhaustive()
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        if let Some(start) = self.start_time {
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                start,
            )?;
        }
        if let Some(cpu) = cpu_seconds() {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        // Bytes, as `stat`: its first line is the program's name.
        let status = fs::read("/proc/self/status").ok();
        let status = status.as_deref().map(String::from_utf8_lossy);
        let kib = |field: &str| status.as_deref().and_then(|s| status_kib(s, field));
        if let Some(rss) = kib("VmRSS:") {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                (rss * 1024) as f64,
            )?;
        }
        if let Some(vsz) = kib("VmSize:") {
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                (vsz * 1024) as f64,
            )?;
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                fds.count() as f64,
            )?;
        }
        if let Some(max) = max_fds() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            )?;
        }
        Ok(())
    }
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: f64) -> fmt::Result {
    let gauge = ConstGauge::new(value);
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// The fields of `/proc/self/stat` after the command name: field 3
/// (`state`) is index 0.
fn stat_fields() -> Option<Vec<String>> {
    after_comm(&fs::read("/proc/self/stat").ok()?)
}

/// The fields of a `stat` line after its command name. The name is the
/// program's, as the kernel keeps it: it may hold spaces and parentheses,
/// so it ends at the last `)`, and it is bytes, not text: cut to 15 bytes,
/// a UTF-8 name can end inside a character. The fields after it are ASCII.
fn after_comm(stat: &[u8]) -> Option<Vec<String>> {
    let end = stat.iter().rposition(|&b| b == b')')?;
    let after = std::str::from_utf8(stat.get(end + 1..)?).ok()?;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn cpu_seconds() -> Option<f64> {
    let fields = stat_fields()?;
    // utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

fn start_time_seconds() -> Option<f64> {
    // starttime (field 22) counts ticks since boot; btime is the boot time.
    let ticks: u64 = stat_fields()?.get(19)?.parse().ok()?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot as f64 + ticks as f64 / TICKS_PER_SECOND)
}

/// A `Field:   1234 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn max_fds() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // Columns: name, soft limit, hard limit, units.
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    /// The CPU time of this process in ticks, utime plus stime, the 14th
    /// and 15th fields of `/proc/self/stat` as proc(5) numbers them.
    fn cpu_ticks() -> u64 {
        let stat = fs::read_to_string("/proc/self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<u64> = after
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields.iter().sum()
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        // Some CPU time to read: a process that has used none reads 0,
        // whatever fields a wrong reading takes for utime and stime.
        let mut spun = 0u64;
        while cpu_ticks() < 5 {
            for i in 0..1_000_000u64 {
                spun = std::hint::black_box(spun.wrapping_mul(31).wrapping_add(i));
            }
        }
        let before = cpu_ticks();
        let mut registry = Registry::default();
        register_process_metrics(
            &mut registry,
            &BuildInfo {
                date: "2026-11-30T19:51:19Z",
                git_sha: "68ac90c",
                profile: "debug",
                vendor: "",
                version: "1.2.3",
            },
        );
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "proxy_build_info{date=\"2026-11-30T19:51:19Z\",git_sha=\"68ac90c\",\
                 profile=\"debug\",vendor=\"\",version=\"1.2.3\"} 1\n"
            ),
            "{text}"
        );
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        // The test process started in the last hour, not in the future.
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let cpu = value("process_cpu_seconds_total");
        let after = cpu_ticks();
        assert!(
            before as f64 / 100.0 <= cpu && cpu <= after as f64 / 100.0,
            "{cpu} s, not between {before} and {after} ticks of 10 ms"
        );
    }

    #[test]
    fn stat_fields_follow_the_last_parenthesis_of_a_name_of_any_bytes() {
        let stat = b"42 (a) b (\xe6\x97) S 1 42 42 0 -1 4194560 10 0 0 0 7 3 0 0 20 0 1 0 \
                     5000 1000 200 18446744073709551615\n";
        let fields = after_comm(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!((fields[11].as_str(), fields[12].as_str()), ("7", "3"));
        assert_eq!(fields[19], "5000");
        assert_eq!(after_comm(b"42 no name"), None);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tx\nVmSize:\t    3892 kB\nVmRSS:\t    1940 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1940));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }
}
