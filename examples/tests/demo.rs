//! What the README's walkthrough runs. The demo mesh, run for a few seconds
//! under the real clock: it holds its promises with retries, breaks the
//! success promise without them, and removes its files either way. The
//! first line of `--help` of `demo` and `sidecar`, which needs them built:
//! `cargo build -p mesh-examples --example demo --example sidecar`. And the
//! sidecar files the README writes by hand, which must stay valid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use mesh_examples::{
    demo::{
        self, DemoConfig,
        report::{Breach, Summary},
    },
    sidecar::config::SidecarConfig,
};

/// Runs the demo for 3 seconds at 40 requests a second: its summary and
/// what it printed.
async fn run(retries: bool) -> (Summary, String) {
    let config = DemoConfig {
        rps: NonZeroU32::new(40).unwrap(),
        duration: Some(Duration::from_secs(3)),
        interval: Duration::from_secs(1),
        denied_every: Duration::from_millis(250),
        retries,
        admin_port: 0,
    };
    let mut out = Vec::new();
    let summary = demo::run(&config, &mut out, std::future::pending())
        .await
        .unwrap();
    (summary, String::from_utf8(out).unwrap())
}

fn files_dir(out: &str) -> PathBuf {
    let line = out.lines().find_map(|l| l.strip_prefix("files: ")).unwrap();
    PathBuf::from(line.split(' ').next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_holds_its_promises_and_breaks_one_without_retries() {
    let (summary, out) = run(true).await;
    assert!(summary.passed(), "{summary}\n{out}");
    // voting failed votes, web's sidecar retried them (only them), and
    // web saw almost none.
    let (failures, retries) = (summary.voting_failures.unwrap(), summary.retries.unwrap());
    assert!(failures > 0, "{summary}");
    assert!(retries > 0, "{summary}");
    assert!(retries <= failures, "{summary}");
    assert!(summary.effective_success.unwrap() >= 0.99, "{summary}");
    // A third of the 120 calls and 12 denials due in 3 s: a loaded
    // machine sends fewer on time, and the figures need only be there.
    assert!(summary.requests >= 40, "{summary}");
    assert!(summary.denied_forbidden >= 4, "{summary}");
    assert_eq!(summary.tls.len(), 4);
    assert!(
        summary.tls.iter().all(|(_, rate)| *rate == Some(1.0)),
        "{summary}"
    );

    // The dashboard line CI greps for, and the stat tables.
    let dashboard = out
        .lines()
        .find_map(|l| l.strip_prefix("dashboard: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no dashboard line:\n{out}"));
    assert!(dashboard.ends_with("/dashboard"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("NAME ")), "{out}");
    for workload in ["web ", "emoji ", "voting "] {
        assert!(out.lines().any(|l| l.starts_with(workload)), "{out}");
    }
    assert!(!files_dir(&out).exists(), "the files were left behind");

    let (summary, out) = run(false).await;
    assert!(!summary.passed(), "{summary}\n{out}");
    assert!(
        matches!(
            summary.breaches.as_slice(),
            [Breach::Success(web), Breach::RequestSuccess(bot)] if *web < 0.99 && *bot < 0.99
        ),
        "{summary}"
    );
    assert_eq!(summary.retries, Some(0), "{summary}");
    assert!(summary.to_string().starts_with("demo FAILED (web saw "));
    assert!(!files_dir(&out).exists(), "the files were left behind");
}

/// The first line `program --help` prints, `program` being one of this
/// package's examples, built beside this test.
fn help_title(program: &str) -> String {
    let path = support::example_binary(program);
    let output = std::process::Command::new(&path)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it with `cargo build -p mesh-examples --example {program}`",
                path.display()
            )
        });
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn each_program_opens_its_help_with_what_it_is() {
    // Each says what it is itself, not what the whole package holds.
    assert_eq!(
        help_title("sidecar"),
        "The reference sidecar proxy of the mesh"
    );
    assert_eq!(
        help_title("demo"),
        "Runs the demo mesh on this machine and shows it working"
    );
}

/// The files the README writes with `cat > NAME <<'YAML'`, in order, as
/// (NAME, text).
fn readme_files() -> Vec<(String, String)> {
    let readme = include_str!("../../README.md");
    let mut files = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("cat > ")
            .and_then(|rest| rest.strip_suffix(" <<'YAML'"))
        else {
            continue;
        };
        let text: Vec<&str> = lines.by_ref().take_while(|l| *l != "YAML").collect();
        files.push((name.to_owned(), text.join("\n") + "\n"));
    }
    files
}

#[test]
fn the_sidecar_files_the_readme_writes_are_valid() {
    let files = readme_files();
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sidecar.yaml",
            "ingress.yaml",
            "web-policy.yaml",
            "web.yaml",
            "vote.yaml"
        ]
    );
    for (name, text) in files.iter().filter(|(name, _)| name != "web-policy.yaml") {
        if let Err(error) = SidecarConfig::from_yaml(text, name) {
            panic!("{name} in README.md: {error}");
        }
    }
}

/// The `EgressNetwork` the README appends to the demo's `policy.yaml`:
/// with the demo's own policy it compiles, and for a demo workload it
/// captures an address outside the cluster networks, allowing it.
#[test]
fn the_readmes_egress_network_opens_egress_for_the_demos_workloads() {
    let readme = include_str!("../../README.md");
    let (_, after) = readme
        .split_once("Appending this to the demo's `policy.yaml`")
        .expect("README.md appends an EgressNetwork to the demo's policy");
    let (_, block) = after.split_once("```yaml\n").unwrap();
    let (snippet, _) = block.split_once("```").unwrap();
    let text = demo::files::policy() + snippet;
    let workload = mesh_policy::Workload::new(demo::files::NAMESPACE).with_label("app", "web");
    let compiled = mesh_policy::Policy::compile(
        &[mesh_policy::PolicySource::new("policy.yaml", &text)],
        &workload,
        &mesh_policy::PolicyConfig::default(),
        &mesh_policy::PolicyMetrics::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let network = compiled
        .egress_networks()
        .find("93.184.215.14".parse().unwrap())
        .expect("the README's network captures an outside address");
    assert_eq!(
        network.traffic_policy(),
        mesh_policy::egress::TrafficPolicy::Allow
    );
    assert!(
        compiled
            .egress_networks()
            .find("10.1.2.3".parse().unwrap())
            .is_none(),
        "a cluster address is not egress"
    );
}

#[test]
fn the_readmes_bad_file_gets_the_error_the_readme_shows() {
    let (_, sidecar_yaml) = readme_files().into_iter().next().unwrap();
    let bad = sidecar_yaml.replace("127.0.0.1:4140 ", "127.0.0.1:99999");
    assert_ne!(
        bad, sidecar_yaml,
        "the outbound listener moved in README.md"
    );
    let error = SidecarConfig::from_yaml(&bad, "sidecar.yaml").unwrap_err();
    let shown = format!("error: {error}");
    assert!(
        include_str!("../../README.md").contains(&format!("\n{shown}\n")),
        "README.md should show: {shown}"
    );
}

#[test]
fn the_demo_logs_to_standard_error_without_colour_codes_when_not_a_terminal() {
    // The tables and the summary are standard output, for people and for
    // CI's grep; logs must not land among them, and a log file or a pipe
    // gets plain text.
    let demo = support::example_binary("demo");
    let output = std::process::Command::new(&demo)
        .args(["--duration", "2s", "--admin-port", "0", "--rps", "5"])
        .env("RUST_LOG", "info")
        .output()
        .expect("the demo example is built: `cargo build -p mesh-examples --example demo`");
    let (out, err) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{out}\n{err}");
    assert!(err.contains("sidecar started"), "{err}");
    assert!(!out.contains("sidecar started"), "{out}");
    assert!(!err.contains('\u{1b}') && !out.contains('\u{1b}'), "{err}");
    assert!(out.starts_with("the demo mesh: "), "{out}");
}
