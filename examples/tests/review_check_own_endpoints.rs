//! `sidecar check` on a service whose endpoints include the sidecar's own
//! outbound listener. The sidecar leaves such an endpoint out, where a
//! request would go round the sidecar again and again; a service left
//! with no endpoint answers every request with 503. The check says so
//! before the first request does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::support;

use mesh_examples::sidecar::check::{self, CheckOptions, Report, Status};

/// Runs the check with a lookup timeout well past what a busy machine
/// needs to read `localhost` from its hosts file, so that a slow lookup
/// is not taken for a name that does not resolve.
async fn check_yaml(yaml: &str) -> Report {
    let (_dir, path) = support::config::file(yaml);
    let options = CheckOptions::default()
        .with_pre(true)
        .with_timeout(Duration::from_secs(10));
    check::run(&path, &options).await
}

/// A port nothing listens on now, for the outbound listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_service_whose_only_endpoint_is_the_outbound_listener_fails() {
    let port = free_port();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:{port}\n  services:\n\
         \x20   - name: web\n      endpoints: ['0.0.0.0:{port}']\n\
         admin:\n  listen: 127.0.0.1:0\n"
    );
    let report = check_yaml(&yaml).await;
    let check = report
        .find("service web")
        .unwrap_or_else(|| panic!("no check of service web in\n{report}"));
    assert_eq!(check.status, Status::Fail, "{report}");
    let detail = check.detail.as_deref().unwrap();
    assert!(detail.contains(&format!("0.0.0.0:{port}")), "{detail}");
    assert!(detail.contains("outbound.listen"), "{detail}");
    assert!(detail.contains("503"), "{detail}");
    assert!(!report.is_success(), "{report}");
}

#[tokio::test]
async fn an_outbound_listener_among_other_endpoints_warns() {
    let port = free_port();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:{port}\n  services:\n\
         \x20   - name: db\n      endpoints: [127.0.0.1:5432]\n\
         \x20   - name: web\n      endpoints: [127.0.0.1:{port}, 127.0.0.1:8080]\n\
         \x20 ports:\n    - listen: 127.0.0.1:15432\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n"
    );
    let report = check_yaml(&yaml).await;
    let check = report.find("service web").unwrap();
    assert_eq!(check.status, Status::Warn, "{report}");
    assert!(report.find("service db").is_none(), "{report}");

    // A TCP port of the sidecar is one of its outbound listeners too.
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:{port}\n  services:\n\
         \x20   - name: db\n      endpoints: [127.0.0.1:15432, 127.0.0.1:5432]\n\
         \x20 ports:\n    - listen: 127.0.0.1:15432\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n"
    );
    let report = check_yaml(&yaml).await;
    let check = report.find("service db").unwrap();
    assert_eq!(check.status, Status::Warn, "{report}");
    let detail = check.detail.as_deref().unwrap();
    assert!(detail.contains("outbound.ports[0].listen"), "{detail}");
}

#[tokio::test]
async fn services_with_other_endpoints_say_nothing() {
    let port = free_port();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:{port}\n  services:\n\
         \x20   - name: web\n      endpoints: [127.0.0.1:8080, '127.0.0.2:{port}']\n\
         admin:\n  listen: 127.0.0.1:0\n"
    );
    let report = check_yaml(&yaml).await;
    assert!(report.find("service web").is_none(), "{report}");
}

/// A name that resolves to the outbound listener, such as
/// `localhost:4140`, is left out as an address is: the sidecar drops what
/// it resolves to, and the check says so rather than pass the name for
/// resolving. The listener is on `[::]`, which takes both the addresses
/// `localhost` may name, 127.0.0.1 and ::1.
#[tokio::test]
async fn a_name_that_resolves_to_the_outbound_listener_is_named() {
    let port = free_port();
    let yaml = format!(
        "outbound:\n  listen: '[::]:{port}'\n  services:\n\
         \x20   - name: web\n      endpoints: [localhost:{port}]\n\
         admin:\n  listen: 127.0.0.1:0\n"
    );
    let report = check_yaml(&yaml).await;
    let title = format!("endpoint localhost:{port} of service web resolves");
    let check = report
        .find(&title)
        .unwrap_or_else(|| panic!("no {title:?} in\n{report}"));
    assert_eq!(check.status, Status::Fail, "{report}");
    let detail = check.detail.as_deref().unwrap();
    assert!(
        detail.contains(&format!("is outbound.listen ([::]:{port})")),
        "{detail}"
    );
    assert!(detail.contains("every request to web gets 503"), "{detail}");

    // Beside another endpoint, a warning.
    let yaml = yaml.replace(
        &format!("[localhost:{port}]"),
        &format!("[localhost:{port}, 127.0.0.1:8080]"),
    );
    let report = check_yaml(&yaml).await;
    let check = report.find(&title).unwrap();
    assert_eq!(check.status, Status::Warn, "{report}");
    assert!(
        !check.detail.as_deref().unwrap().contains("503"),
        "{report}"
    );
}
