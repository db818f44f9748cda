//! `sidecar check -o json` writes the document `linkerd check -o json`
//! writes (linkerd2's `CheckOutput`), so that a script that reads Linkerd's
//! reads this one; `-o short` leaves out the checks that passed. Either
//! exits as the table does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use mesh_examples::sidecar::{
    certs,
    check::{self, CheckOptions},
};
use serde_json::{Value, json};

/// A configuration with an inbound listener forwarding to `app` and an
/// outbound listener on `outbound`, every listener on port 0.
fn config(dir: &Path, app: SocketAddr, outbound: &str) -> std::path::PathBuf {
    let path = dir.join("sidecar.yaml");
    std::fs::write(
        &path,
        format!(
            "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n\
             outbound:\n  listen: {outbound}\nadmin:\n  listen: 127.0.0.1:0\n"
        ),
    )
    .unwrap();
    path
}

/// `sidecar check --pre -o <output> --config <path>`.
fn check_cli(path: &Path, output: &str) -> Output {
    let path = path.to_str().unwrap();
    support::sidecar_cli(&["check", "--pre", "-o", output, "--config", path])
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn parsed(output: &Output) -> Value {
    let text = stdout(output);
    // As linkerd's `json.MarshalIndent` and a final newline.
    assert!(text.starts_with("{\n  \"success\": "), "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A passing check: `success` true, and each check its description and
/// `result` alone (a passing check has no `error`, as in Linkerd, even
/// when the table has notes under it, as the config check does).
#[test]
fn a_passing_check_is_linkerds_document() {
    let dir = tempfile::tempdir().unwrap();
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = app.local_addr().unwrap();
    let path = config(dir.path(), app, "127.0.0.1:0");

    let output = check_cli(&path, "json");

    let pass = |description: String| json!({"description": description, "result": "success"});
    let expected = json!({
        "success": true,
        "categories": [
            {
                "categoryName": "sidecar-config",
                "checks": [pass(format!("config file {} is valid", path.display()))],
            },
            {
                "categoryName": "sidecar-policy",
                "checks": [pass("policy resources are valid".to_owned())],
            },
            {
                "categoryName": "sidecar-app",
                "checks": [pass(format!("app at {app} accepts connections"))],
            },
            {
                "categoryName": "sidecar-listeners",
                "checks": [
                    pass("inbound listener 127.0.0.1:0 can be bound".to_owned()),
                    pass("outbound listener 127.0.0.1:0 can be bound".to_owned()),
                    pass("admin listener 127.0.0.1:0 can be bound".to_owned()),
                ],
            },
        ],
    });
    assert_eq!(parsed(&output), expected);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stderr, b"");
}

/// A failing check: `success` false, the exit status the table's, and
/// each check that warned or failed with why as `error` and what to do as
/// `hint`, apart.
#[tokio::test]
async fn a_failing_check_gives_each_error_and_hint_apart() {
    let dir = tempfile::tempdir().unwrap();
    let app = support::refused_addr().await;
    let path = config(dir.path(), app, "0.0.0.0:0");

    let run = tokio::task::spawn_blocking({
        let path = path.clone();
        move || (check_cli(&path, "table"), check_cli(&path, "json"))
    });
    let (table, output) = run.await.unwrap();

    let pass = |description: &str| json!({"description": description, "result": "success"});
    let expected = json!({
        "success": false,
        "categories": [
            {
                "categoryName": "sidecar-config",
                "checks": [pass(&format!("config file {} is valid", path.display()))],
            },
            {
                "categoryName": "sidecar-policy",
                "checks": [pass("policy resources are valid")],
            },
            {
                "categoryName": "sidecar-app",
                "checks": [{
                    "description": format!("app at {app} accepts connections"),
                    "error": "Connection refused (os error 111)\nthe inbound listener \
                              127.0.0.1:0 forwards the requests it accepts here",
                    "hint": "start the application, or set the app address (inbound.app, or \
                             the listener's entry in inbound.ports) to where it listens",
                    "result": "error",
                }],
            },
            {
                "categoryName": "sidecar-outbound",
                "checks": [{
                    "description": "outbound listeners take connections from this host only",
                    "error": "outbound.listen 0.0.0.0:0 can be reached from other hosts, which \
                              would reach the outbound services as this workload, with its \
                              identity",
                    "hint": "listen on 127.0.0.1 (or [::1]), as the application is beside the \
                             sidecar",
                    "result": "warning",
                }],
            },
            {
                "categoryName": "sidecar-listeners",
                "checks": [
                    pass("inbound listener 127.0.0.1:0 can be bound"),
                    pass("outbound listener 0.0.0.0:0 can be bound"),
                    pass("admin listener 127.0.0.1:0 can be bound"),
                ],
            },
        ],
    });
    assert_eq!(parsed(&output), expected);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(output.status.code(), table.status.code(), "{table:?}");
    // The table says the same, the hint as the last line under the check.
    let table = stdout(&table);
    assert!(
        table.contains(
            "\n    the inbound listener 127.0.0.1:0 forwards the requests it accepts here\n    \
             start the application, or set the app address "
        ),
        "{table}"
    );
}

/// `-o short`, as `linkerd check -o short`: only what warned or failed,
/// under its heading, and the summary line, which counts every check.
#[tokio::test]
async fn short_output_leaves_out_the_checks_that_passed() {
    let dir = tempfile::tempdir().unwrap();
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listening.local_addr().unwrap();
    let down = support::refused_addr().await;

    let path = config(dir.path(), up, "127.0.0.1:0");
    let passed = tokio::task::spawn_blocking(move || check_cli(&path, "short"));
    let passed = passed.await.unwrap();
    assert_eq!(stdout(&passed), "✔ 6 checks passed\n");
    assert!(passed.status.success(), "{passed:?}");

    let path = config(dir.path(), down, "0.0.0.0:0");
    let failed = tokio::task::spawn_blocking(move || check_cli(&path, "short"));
    let failed = failed.await.unwrap();
    assert_eq!(
        stdout(&failed),
        format!(
            "sidecar-app\n\
             -----------\n\
             ✖ app at {down} accepts connections\n\
             \x20   Connection refused (os error 111)\n\
             \x20   the inbound listener 127.0.0.1:0 forwards the requests it accepts here\n\
             \x20   start the application, or set the app address (inbound.app, or the \
             listener's entry in inbound.ports) to where it listens\n\
             \n\
             sidecar-outbound\n\
             ----------------\n\
             ‼ outbound listeners take connections from this host only\n\
             \x20   outbound.listen 0.0.0.0:0 can be reached from other hosts, which would \
             reach the outbound services as this workload, with its identity\n\
             \x20   listen on 127.0.0.1 (or [::1]), as the application is beside the sidecar\n\
             \n\
             ✖ 1 of 7 checks failed, 1 warning\n"
        )
    );
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
}

/// A format `check` does not write is refused before anything is
/// checked, naming it and the formats there are, as the views' `-o` does.
#[test]
fn an_unknown_output_format_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "127.0.0.1:1".parse().unwrap(), "127.0.0.1:0");
    let output = check_cli(&path, "yaml");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "invalid value 'yaml' for '--output <OUTPUT>': expected table, short or json"
        ),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(output.stdout, b"");
}

/// A hint that ends a line of the table, after what is wrong: a chain from
/// another CA than the bundle's. The `error` is the detail up to it, and
/// the table is as it was.
#[tokio::test]
async fn a_hint_within_a_line_is_apart_from_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let emoji = support::issuer(dir.path())("emoji");
    let other = dir.path().join("other-ca");
    certs::create_ca("example.org", &other).unwrap();
    std::fs::copy(other.join("ca.crt"), emoji.join("ca.crt")).unwrap();
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &path,
        format!(
            "identity:\n  dir: {}\ninbound:\n  listen: 127.0.0.1:0\n  app: {}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            emoji.display(),
            app.local_addr().unwrap()
        ),
    )
    .unwrap();

    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;

    let json = serde_json::to_value(&report).unwrap();
    let identity = json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|category| category["categoryName"] == "sidecar-identity")
        .unwrap();
    let chain = identity["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["description"] == "certificate chain verifies against the trust bundle")
        .unwrap();
    assert_eq!(chain["result"], "error", "{report}");
    let (cert, bundle) = (emoji.join("tls.crt"), emoji.join("ca.crt"));
    let hint = format!(
        "put the anchor of the CA that issued {} in {}, or issue the certificate from the CA the \
         bundle is of",
        cert.display(),
        bundle.display()
    );
    assert_eq!(chain["hint"], hint.as_str(), "{report}");
    let error = chain["error"].as_str().unwrap();
    assert!(
        error.ends_with("\nno trust anchor of the bundle issued the chain"),
        "{error}"
    );
    assert!(
        error.contains(&format!("\nthe chain in {} ", cert.display())),
        "{error}"
    );
    // The table prints the two on one line, as before.
    let detail = report
        .find("certificate chain verifies")
        .unwrap()
        .detail
        .as_deref()
        .unwrap();
    assert_eq!(detail, format!("{error}: {hint}"));
}

/// `sidecar check | head -0`: the reader is gone before the report is
/// written. Nothing panics, and the exit status still says how the checks
/// came out.
#[tokio::test]
async fn a_reader_gone_before_the_report_leaves_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let app = support::refused_addr().await;
    let path = config(dir.path(), app, "127.0.0.1:0");

    for format in ["table", "json"] {
        let path = path.clone();
        let output = tokio::task::spawn_blocking(move || {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            std::process::Command::new(support::sidecar_binary())
                .args(["check", "--pre", "-o", format, "--config"])
                .arg(&path)
                .env("RUST_BACKTRACE", "0")
                .stdout(writer)
                .output()
                .unwrap()
        });
        let output = output.await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{format}: {stderr}");
        assert_eq!(output.status.code(), Some(1), "{format}: {stderr}");
    }
}
