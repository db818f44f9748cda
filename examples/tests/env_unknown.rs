//! A variable named like the sidecar's own (`MESH_...`) that it does not
//! read is named at start, with the one it probably means, and by
//! `sidecar check`: a misspelt one leaves the file's value in force, and
//! nothing else would say so. These run the `sidecar` binary (`cargo build
//! -p mesh-examples --example sidecar` first).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use mesh_examples::sidecar::config::{
    ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, INGRESS_MODE_ENV, OUTBOUND_LISTEN_ENV,
};
use support::sidecar_binary;

const YAML: &str = "outbound:\n  listen: 127.0.0.1:0\n\
                    admin:\n  listen: 127.0.0.1:0\n\
                    server:\n  threads: 1\n  shutdown_grace: 0s\n";

/// The `sidecar` binary with `args`, no variable of the sidecar's set
/// but `vars`.
fn sidecar(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(sidecar_binary());
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove(INGRESS_MODE_ENV)
        .env_remove(INBOUND_LISTEN_ENV)
        .env_remove(OUTBOUND_LISTEN_ENV)
        .env_remove(ADMIN_LISTEN_ENV);
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

#[test]
fn the_sidecar_names_a_misspelt_variable_at_start_and_serves() {
    let (_dir, config) = support::config::file(YAML);
    let config = config.to_str().unwrap();
    let mut child = sidecar(
        &["run", "--config", config],
        &[
            ("MESH_INBOUND_LISTEN_ADR", "0.0.0.0:5143"),
            ("MESH_COLOUR", "blue"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the sidecar example is built: cargo build -p mesh-examples --example sidecar");
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // Its lines up to the one that says it serves: the warnings come
    // before it.
    let mut lines = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let started = line.contains("sidecar started");
        lines.push(line);
        if started {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = lines.join("\n");
    assert!(log.contains("sidecar started"), "it did not start:\n{log}");
    let warning = lines
        .iter()
        .find(|line| line.contains("MESH_INBOUND_LISTEN_ADR"))
        .unwrap_or_else(|| panic!("the misspelt variable is not named:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!("did you mean {INBOUND_LISTEN_ENV}?")),
        "{warning}"
    );
    let alone = lines
        .iter()
        .find(|line| line.contains("MESH_COLOUR"))
        .unwrap_or_else(|| panic!("the unknown variable is not named:\n{log}"));
    assert!(alone.contains("WARN"), "{alone}");
    assert!(!alone.contains("did you mean"), "{alone}");
}

#[test]
fn check_warns_of_a_misspelt_variable_and_still_passes() {
    let (_dir, config) = support::config::file(YAML);
    let config = config.to_str().unwrap();
    let output = sidecar(
        &["check", "--pre", "--config", config],
        &[("MESH_ADMIN_LISTEN_ADR", "0.0.0.0:5191")],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "a warning alone passes:\n{stdout}");
    assert!(
        stdout.contains(
            "‼ environment variable MESH_ADMIN_LISTEN_ADR is one the sidecar reads\n    \
             the sidecar reads no MESH_ADMIN_LISTEN_ADR, and ignores it\n    \
             did you mean MESH_ADMIN_LISTEN_ADDR?"
        ),
        "{stdout}"
    );
    // Under the config check, where the address in force is shown.
    let config_group = stdout.split("\n\n").next().unwrap();
    assert!(config_group.contains("MESH_ADMIN_LISTEN_ADR"), "{stdout}");

    let json = sidecar(
        &["check", "--pre", "--config", config, "-o", "json"],
        &[("MESH_ADMIN_LISTEN_ADR", "0.0.0.0:5191")],
    )
    .output()
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let warned: Vec<&serde_json::Value> = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|category| category["checks"].as_array().unwrap())
        .filter(|check| check["result"] == "warning")
        .collect();
    assert_eq!(warned.len(), 1, "{report:#}");
    assert_eq!(warned[0]["hint"], "did you mean MESH_ADMIN_LISTEN_ADDR?");
}

#[test]
fn check_says_nothing_of_the_variables_it_reads() {
    let (_dir, config) = support::config::file(YAML);
    let config = config.to_str().unwrap();
    let output = sidecar(
        &["check", "--pre", "--config", config],
        &[(INGRESS_MODE_ENV, "false")],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains("‼"), "{stdout}");
}
