//! An application address that accepts no connection fails its check
//! with the reason and what to do: which inbound listeners forward there,
//! and that either the application is not running or the configuration
//! has its address wrong. "Connection refused" alone says neither which
//! listener is affected nor where the address was written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use mesh_examples::sidecar::check::{self, CheckOptions, Status};

/// An address on which nothing listens.
fn closed_port() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], support::refused_port()))
}

/// A free address to listen on, for `--pre`.
fn free_port() -> std::net::SocketAddr {
    closed_port()
}

#[tokio::test]
async fn an_app_that_is_not_listening_names_its_listeners_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let app = closed_port();
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (first, second, third) = (free_port(), free_port(), free_port());
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &path,
        format!(
            "inbound:\n  listen: {first}\n  app: {app}\n  ports:\n\
             \x20   - {{listen: '{second}', app: '{app}'}}\n\
             \x20   - {{listen: '{third}', app: '{}'}}\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n",
            up.local_addr().unwrap()
        ),
    )
    .unwrap();
    let report = check::run(&path, &CheckOptions::default().with_pre(true)).await;

    let title = format!("app at {app} accepts connections");
    let check = report
        .find(&title)
        .unwrap_or_else(|| panic!("no {title:?} in\n{report}"));
    assert_eq!(check.status, Status::Fail, "{report}");
    let lines: Vec<&str> = check.detail.as_deref().unwrap().lines().collect();
    assert!(lines[0].to_lowercase().contains("refused"), "{report}");
    assert_eq!(
        lines[1],
        format!("the inbound listeners {first}, {second} forward the requests it accepts here"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("start the application, or set the app address (inbound.app, "),
        "{report}"
    );
    // The application that listens passes, with nothing to add.
    let up = format!("app at {} accepts connections", up.local_addr().unwrap());
    assert_eq!(report.find(&up).unwrap().status, Status::Pass, "{report}");
    assert_eq!(report.find(&up).unwrap().detail, None);
}
