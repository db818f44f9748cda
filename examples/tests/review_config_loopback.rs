//! An unspecified address as a destination: a connection to `0.0.0.0`
//! (or `[::]`) goes to the host's own loopback address, so an application
//! or a dashboard peer written that way reaches a listener the sidecar
//! binds on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::config::ConfigErrorKind;

use crate::support;

use support::config::{assert_error, parse, reject};

/// What the configuration check is about: the system takes a connection
/// to `0.0.0.0:<port>` to a listener bound on `127.0.0.1:<port>`.
#[tokio::test]
async fn the_system_connects_0_0_0_0_to_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = tokio::net::TcpStream::connect(("0.0.0.0", port));
    let (connected, accepted) = tokio::join!(connect, listener.accept());
    let connected = connected.unwrap();
    assert_eq!(accepted.unwrap().1, connected.local_addr().unwrap());
}

#[test]
fn an_app_on_the_unspecified_address_is_the_loopback_outbound_listener() {
    // outbound.listen is 127.0.0.1:4140 by default.
    let error = reject("inbound:\n  app: 0.0.0.0:4140\n");
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.app", 2);
    assert!(error.to_string().contains("outbound.listen"), "{error}");

    let yaml = "\
outbound:
  listen: \"[::1]:4140\"
inbound:
  ports:
    - listen: 0.0.0.0:4150
      app: \"[::]:4140\"
";
    let error = reject(yaml);
    assert_error(&error, ConfigErrorKind::Conflict, "inbound.ports[0].app", 6);

    // Another port, or another family, is another socket.
    parse("inbound:\n  app: 0.0.0.0:8080\n").unwrap();
    parse("outbound:\n  listen: \"[::1]:4140\"\ninbound:\n  app: 0.0.0.0:4140\n").unwrap();
}

#[test]
fn a_dashboard_peer_on_the_unspecified_address_is_the_own_admin_server() {
    let yaml = "\
admin:
  listen: 127.0.0.1:4191
  dashboard:
    name: web
    peers:
      - {name: emoji, admin: 0.0.0.0:4191}
";
    let error = reject(yaml);
    assert_error(
        &error,
        ConfigErrorKind::Conflict,
        "admin.dashboard.peers[0].admin",
        6,
    );
}
