//! How the `demo` program ends, run as people run it: a closed terminal
//! must not leave the CA's keys behind, and flag values the demo cannot
//! honour are refused before anything starts. Needs the program built:
//! `cargo build -p mesh-examples --example demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Output, Stdio},
};

fn demo() -> Command {
    let mut command = Command::new(support::example_binary("demo"));
    command.env("RUST_LOG", "off");
    command
}

/// Starts the demo, waits until it prints where its files are and its
/// dashboard (it is running by then), sends `signal`, and returns the
/// directory and how the program ended.
fn stop_with(signal: &str) -> (PathBuf, Output) {
    let mut child = demo()
        .args(["--admin-port", "0", "--rps", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("files: ") {
            dir = Some(PathBuf::from(rest.split(' ').next().unwrap()));
        }
        if line.starts_with("dashboard: ") {
            break;
        }
    }
    let dir = dir.expect("the demo printed its files");
    assert!(dir.join("ca").exists(), "{}", dir.display());
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Read the rest of standard output so the demo never blocks on it.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut output = child.wait_with_output().unwrap();
    output.stdout = rest.join("\n").into_bytes();
    (dir, output)
}

#[test]
fn a_closed_terminal_stops_the_demo_and_removes_its_ca_keys() {
    // Closing the terminal sends SIGHUP. Its default action ended the
    // process at once and left the CA's private keys in the temporary
    // directory.
    let (dir, output) = stop_with("-HUP");
    let left = dir.exists();
    if left {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(!left, "{} was left behind: {output:?}", dir.display());
    assert!(output.status.code().is_some(), "{output:?}");
}

#[test]
fn ctrl_c_before_the_first_table_is_no_failure() {
    // Without `--duration`, Ctrl-C is how the demo is meant to end. Within
    // the first second, before `web` had made a call, it printed "demo
    // FAILED (web made no calls ...)" and exited 1: the promises are
    // checked only when a run is given its length, as CI gives it.
    let (dir, output) = stop_with("-INT");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{out}\n{err}");
    let summary = out.lines().last().unwrap_or_default();
    assert!(summary.starts_with("demo stopped: "), "{out}");
    assert!(summary.contains("requests to web"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

fn refused(args: &[&str]) -> String {
    let output = demo().args(args).output().unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert!(output.stdout.is_empty(), "{args:?} started the demo");
    err
}

#[test]
fn a_request_rate_the_load_generator_cannot_keep_is_refused() {
    // Above a billion a second the request interval rounded to zero, and
    // the load generator panicked: the demo then failed with "web made no
    // calls" after the whole run.
    let err = refused(&["--rps", "2000000000", "--duration", "1s"]);
    assert!(err.contains("--rps"), "{err}");
    assert!(err.contains("1..=10000"), "{err}");
}

#[test]
fn admin_ports_that_would_run_past_65535_are_refused() {
    // web's admin port and the next three: from 65533 on, the last ones
    // were all clamped to 65535, the demo collided with itself and blamed
    // "ports 65533-65535 are taken".
    let err = refused(&["--admin-port", "65533", "--duration", "1s"]);
    assert!(err.contains("--admin-port"), "{err}");
    assert!(err.contains("65532"), "{err}");
}

#[test]
fn a_zero_duration_is_refused() {
    // `--duration 0s` ran no traffic to speak of and still printed "demo
    // passed".
    let err = refused(&["--duration", "0s"]);
    assert!(err.contains("--duration"), "{err}");
}

#[test]
fn a_reader_gone_before_the_summary_is_an_error_not_a_panic() {
    // `demo | head`: once the reader has gone, writing the summary with
    // `println!` panicked, with a backtrace and exit code 101, after a
    // run that may well have passed.
    let mut child = demo()
        .args(["--admin-port", "0", "--rps", "5", "--duration", "1s"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("files: ") {
            dir = Some(PathBuf::from(rest.split(' ').next().unwrap()));
        }
        if line.starts_with("dashboard: ") {
            break;
        }
    }
    // The reader goes away; at 1 s, before its first table, the demo
    // writes its summary.
    drop(lines);
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write the output"), "{err}");
    // The verdict is not lost with standard output.
    assert!(
        err.contains("demo passed") || err.contains("demo FAILED"),
        "{err}"
    );
    let dir = dir.expect("the demo printed its files");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// `request_total` summed over every series of the admin server at `port`,
/// or `None` when it does not answer within 5 s.
fn requests_seen(port: u16) -> Option<u64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(
        text.lines()
            .filter(|line| line.starts_with("request_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

#[tokio::test]
async fn a_reader_who_stops_reading_does_not_stop_the_mesh() {
    // A terminal paused with Ctrl-S, or a `| less` that has filled its
    // pipe: the demo's applications and load generator share a thread
    // with its tables, and the first table written to the full pipe
    // froze them all, so no request was made from then on.
    use std::io::Write;
    let (reader, writer) = std::io::pipe().unwrap();
    let mut filler = writer.try_clone().unwrap();
    // Fills the pipe, then waits on it until the reader is dropped.
    let fill = std::thread::spawn(move || {
        let _ = filler.write_all(&vec![b'.'; 1 << 20]);
    });
    let mut found = None;
    for _ in 0..20 {
        // Four consecutive free ports for the four admin servers.
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base > 65_532 {
            continue;
        }
        let free = (1..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            found = Some(base);
            break;
        }
    }
    let base = found.expect("four consecutive free ports");
    let mut child = demo()
        .args([
            "--admin-port",
            &base.to_string(),
            "--rps",
            "20",
            "--duration",
            "60s",
        ])
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    // web's sidecar counts the load generator's requests.
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(40);
    let mut seen = 0;
    while std::time::SystemTime::now() < deadline {
        seen = requests_seen(base).unwrap_or(0);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut later = seen;
    // Past two more tables (one every 2 s), requests go on.
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    while std::time::SystemTime::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        later = requests_seen(base).unwrap_or(later);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    drop(reader);
    let status = child.wait().unwrap();
    fill.join().unwrap();
    assert!(
        seen > 0,
        "no request was made while standard output was full"
    );
    assert!(
        later > seen,
        "requests stopped while standard output was full: {seen} then {later}"
    );
    assert!(status.code().is_some(), "{status:?}");
}

/// The demo directories in `tmp`.
fn demo_dirs(tmp: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("mesh-demo-"))
        })
        .collect()
}

#[test]
fn a_demo_short_of_descriptors_leaves_no_key_behind() {
    // With a few descriptors too few, the demo wrote its files, could not
    // bind a listener, and could not remove the files either: removing a
    // directory took a descriptor for each level, `certs/<workload>` is
    // two down, and the error was dropped. What had gone by then was the
    // `pid` file, so no later demo took the rest, and every workload's
    // private key stayed in the temporary directory for good.
    let tmp = tempfile::tempdir().unwrap();
    // From the fewest descriptors the demo starts with up, it fails
    // writing its files, binding a listener, then starting each sidecar,
    // vote-bot's last: past that, every way it stops has been seen.
    for fds in 8..=64 {
        let output = Command::new("sh")
            .arg("-c")
            .arg("ulimit -n \"$0\" && exec \"$@\"")
            .arg(fds.to_string())
            .arg(demo().get_program())
            .args(["--admin-port", "0", "--rps", "5", "--duration", "1s"])
            .env("RUST_LOG", "off")
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        // What could not be removed still names its demo, so the next
        // demo, once this one has gone, removes it.
        for dir in demo_dirs(tmp.path()) {
            assert!(
                dir.join("pid").exists(),
                "with {fds} descriptors, {} was left with nothing to say whose it is: {err}",
                dir.display()
            );
        }
        if output.status.success() || err.contains("cannot start vote-bot's sidecar") {
            break;
        }
    }
    // A demo with descriptors enough takes whatever the others left.
    let output = demo()
        .args(["--admin-port", "0", "--rps", "5", "--duration", "1s"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let left = demo_dirs(tmp.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}
