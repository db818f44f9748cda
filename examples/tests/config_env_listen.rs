//! `MESH_ADMIN_LISTEN_ADDR`, `MESH_INBOUND_LISTEN_ADDR` and
//! `MESH_OUTBOUND_LISTEN_ADDR` move the running sidecar's listeners,
//! whatever its file says: `sidecar inject` sets them for Linkerd's port
//! annotations, and the pod's probes go to the port the annotation names.
//! These start the `sidecar` binary (`cargo build -p mesh-examples
//! --example sidecar` first) with the variables set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Output, Stdio},
};

use mesh_examples::sidecar::config::{ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, OUTBOUND_LISTEN_ENV};
use support::sidecar_binary;

/// An address on 127.0.0.1 whose port was free a moment ago: bound on
/// port 0, and released for the sidecar to take.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The sidecar, run on `yaml` with `vars` in its environment and `info`
/// logs on its standard error.
fn run(yaml: &str, vars: &[(&str, String)]) -> (tempfile::TempDir, Child) {
    let (dir, config) = support::config::file(yaml);
    let mut command = Command::new(sidecar_binary());
    command
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove(INBOUND_LISTEN_ENV)
        .env_remove(OUTBOUND_LISTEN_ENV)
        .env_remove(ADMIN_LISTEN_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command
        .spawn()
        .expect("the sidecar example is built: cargo build -p mesh-examples --example sidecar");
    (dir, child)
}

/// `sidecar await` on `admin`: it returns once `/ready` answers 200 there,
/// or fails after `--timeout`.
fn await_ready(admin: SocketAddr) -> Output {
    Command::new(sidecar_binary())
        .args(["await", "--admin", &admin.to_string(), "--timeout", "30s"])
        .output()
        .unwrap()
}

/// The status line of `GET path` on `addr`, over a real connection.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

/// Stops the sidecar and returns its standard error.
fn stop(mut child: Child) -> String {
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_admin_server_answers_ready_on_the_port_the_environment_names() {
    let admin = free_addr();
    // The file would put it on another port: the environment decides.
    let yaml = "admin: {listen: 127.0.0.1:0}\noutbound: {listen: 127.0.0.1:0}\n";
    let (_dir, child) = run(yaml, &[(ADMIN_LISTEN_ENV, admin.to_string())]);
    let awaited = await_ready(admin);
    let ready = awaited.status.success().then(|| get(admin, "/ready"));
    let stderr = stop(child);
    assert!(
        awaited.status.success(),
        "await: {}\nsidecar: {stderr}",
        String::from_utf8_lossy(&awaited.stderr)
    );
    assert_eq!(ready.as_deref(), Some("HTTP/1.1 200 OK"), "{stderr}");
    // Where the address came from, and that the file said otherwise.
    let warning = stderr
        .lines()
        .find(|line| line.contains("WARN") && line.contains(ADMIN_LISTEN_ENV))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(
        warning.contains("admin.listen") && warning.contains(&admin.to_string()),
        "{warning}"
    );
    let started = stderr
        .lines()
        .find(|line| line.contains("sidecar started"))
        .unwrap_or_else(|| panic!("no start line in {stderr}"));
    assert!(started.contains(&format!("admin={admin}")), "{started}");
}

#[test]
fn the_inbound_and_outbound_listeners_move_too() {
    let (admin, inbound, outbound) = (free_addr(), free_addr(), free_addr());
    let app = free_addr();
    let yaml = format!("inbound: {{app: {app}}}\n");
    let (_dir, child) = run(
        &yaml,
        &[
            (ADMIN_LISTEN_ENV, admin.to_string()),
            (INBOUND_LISTEN_ENV, inbound.to_string()),
            (OUTBOUND_LISTEN_ENV, outbound.to_string()),
        ],
    );
    let awaited = await_ready(admin);
    let connects = [inbound, outbound].map(|addr| TcpStream::connect(addr).is_ok());
    let stderr = stop(child);
    assert!(awaited.status.success(), "{stderr}");
    assert_eq!(connects, [true, true], "{stderr}");
    // The file leaves all three to their defaults: each is an info line
    // naming its variable.
    for (variable, field, addr) in [
        (ADMIN_LISTEN_ENV, "admin.listen", admin),
        (INBOUND_LISTEN_ENV, "inbound.listen", inbound),
        (OUTBOUND_LISTEN_ENV, "outbound.listen", outbound),
    ] {
        assert!(
            stderr.lines().any(|line| line.contains("INFO")
                && line.contains(&format!("{field} is {addr}, from {variable}"))),
            "{stderr}"
        );
    }
}

#[test]
fn a_bad_address_is_refused_naming_the_variable() {
    // `check` loads the file as `run` does, and ends whatever it finds.
    let (_dir, config) = support::config::file("");
    let output = Command::new(sidecar_binary())
        .args(["check", "--pre", "--config"])
        .arg(&config)
        .env(ADMIN_LISTEN_ENV, "localhost:4191")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "environment: {ADMIN_LISTEN_ENV}: invalid socket address \"localhost:4191\""
        )),
        "{stdout}"
    );
}
