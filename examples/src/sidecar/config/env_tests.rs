//! The listen addresses the environment sets: applied before the checks
//! across fields, refused with the variable and the value named, and
//! nothing changed when unset. The environment is a function here, so no
//! test touches the process's own.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{
    ADMIN_LISTEN_ENV, ConfigErrorKind, INBOUND_LISTEN_ENV, OUTBOUND_LISTEN_ENV, SidecarConfig,
};

/// An environment holding exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name| {
        vars.iter()
            .find(|(set, _)| set == name)
            .map(|(_, value)| OsString::from(value))
    }
}

/// `yaml` in a file of its own, and the directory that holds it.
fn file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<SidecarConfig, super::ConfigError> {
    let (_dir, path) = file(yaml);
    SidecarConfig::load_with_env(&path, env(vars))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const APP: &str = "inbound:\n  app: 127.0.0.1:8080\n";

#[test]
fn each_variable_sets_its_listen_address() {
    let config = load(
        APP,
        &[
            (INBOUND_LISTEN_ENV, "0.0.0.0:5143"),
            (OUTBOUND_LISTEN_ENV, "127.0.0.1:5140"),
            (ADMIN_LISTEN_ENV, "0.0.0.0:5191"),
        ],
    )
    .unwrap();
    assert_eq!(config.inbound.ports[0].listen, addr("0.0.0.0:5143"));
    assert_eq!(config.inbound.ports[0].app, addr("127.0.0.1:8080"));
    assert_eq!(config.outbound.listen, addr("127.0.0.1:5140"));
    assert_eq!(config.admin.listen, addr("0.0.0.0:5191"));
}

#[test]
fn a_variable_wins_over_what_the_file_writes() {
    let yaml = "inbound:\n  listen: 0.0.0.0:6143\n  app: 127.0.0.1:8080\n\
                outbound:\n  listen: 127.0.0.1:6140\nadmin:\n  listen: 127.0.0.1:6191\n";
    let config = load(yaml, &[(ADMIN_LISTEN_ENV, "0.0.0.0:5191")]).unwrap();
    assert_eq!(config.admin.listen, addr("0.0.0.0:5191"));
    // The others are left as written.
    assert_eq!(config.inbound.ports[0].listen, addr("0.0.0.0:6143"));
    assert_eq!(config.outbound.listen, addr("127.0.0.1:6140"));
}

#[test]
fn unset_or_empty_variables_change_nothing() {
    let yaml = "inbound:\n  listen: 0.0.0.0:6143\n  app: 127.0.0.1:8080\nadmin:\n  listen: 127.0.0.1:6191\n";
    let written = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap();
    assert_eq!(load(yaml, &[]).unwrap(), written);
    let empty = [
        (INBOUND_LISTEN_ENV, ""),
        (OUTBOUND_LISTEN_ENV, ""),
        (ADMIN_LISTEN_ENV, ""),
    ];
    assert_eq!(load(yaml, &empty).unwrap(), written);
    // Nor does an empty file become anything but the defaults.
    assert_eq!(load("", &[]).unwrap(), SidecarConfig::default());
}

#[test]
fn a_value_that_is_not_an_address_is_refused_naming_the_variable_and_the_value() {
    for variable in [INBOUND_LISTEN_ENV, OUTBOUND_LISTEN_ENV, ADMIN_LISTEN_ENV] {
        for value in [
            "5191",
            "localhost:5191",
            "0.0.0.0:99999",
            " 0.0.0.0:5191",
            "0.0.0.0",
        ] {
            let error = load(APP, &[(variable, value)]).unwrap_err();
            assert_eq!(
                error.kind(),
                ConfigErrorKind::InvalidValue,
                "{variable}={value}"
            );
            assert_eq!(error.origin(), "environment", "{variable}={value}");
            assert_eq!(error.field_path(), variable, "{variable}={value}");
            let message = error.to_string();
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains("ip:port"), "{message}");
        }
    }
}

#[test]
fn an_inbound_address_without_an_application_is_refused() {
    for yaml in [
        "",
        "inbound:\n  ports:\n    - {listen: 0.0.0.0:7000, app: 127.0.0.1:7001}\n",
    ] {
        let error = load(yaml, &[(INBOUND_LISTEN_ENV, "0.0.0.0:5143")]).unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::MissingField, "{yaml}");
        assert_eq!(error.origin(), "environment");
        assert_eq!(error.field_path(), INBOUND_LISTEN_ENV);
        let message = error.to_string();
        assert!(message.contains("inbound.app"), "{message}");
        assert!(message.contains("0.0.0.0:5143"), "{message}");
    }
}

#[test]
fn the_checks_across_fields_see_the_addresses_the_environment_sets() {
    // The admin server on the outbound listener's port.
    let error = load(APP, &[(ADMIN_LISTEN_ENV, "127.0.0.1:4140")]).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::DuplicateListener);
    assert_eq!(error.origin(), "environment");
    assert_eq!(error.field_path(), ADMIN_LISTEN_ENV);
    let message = error.to_string();
    assert!(
        message.contains("MESH_ADMIN_LISTEN_ADDR=127.0.0.1:4140") && message.contains("4140"),
        "{message}"
    );

    // The application on the inbound listener the environment moves.
    let error = load(APP, &[(INBOUND_LISTEN_ENV, "127.0.0.1:8080")]).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::Conflict);
    assert_eq!(error.field_path(), INBOUND_LISTEN_ENV);

    // A dashboard peer that is this sidecar's own admin server, once moved.
    let yaml =
        "admin:\n  dashboard:\n    name: web\n    peers: [{name: api, admin: 127.0.0.1:5191}]\n";
    assert!(load(yaml, &[]).is_ok());
    let error = load(yaml, &[(ADMIN_LISTEN_ENV, "127.0.0.1:5191")]).unwrap_err();
    assert_eq!(error.field_path(), ADMIN_LISTEN_ENV);
}

#[test]
fn the_environment_may_move_a_listener_out_of_a_conflict() {
    // The file alone puts the admin server on the outbound port.
    let yaml = "admin:\n  listen: 0.0.0.0:4140\n";
    assert!(SidecarConfig::from_yaml(yaml, "sidecar.yaml").is_err());
    let config = load(yaml, &[(OUTBOUND_LISTEN_ENV, "127.0.0.1:5140")]).unwrap();
    assert_eq!(config.outbound.listen, addr("127.0.0.1:5140"));
}

#[test]
fn a_mistake_of_the_file_alone_is_still_the_files() {
    let yaml = "outbound:\n  services:\n    - {name: web, endpoints: [127.0.0.1:1]}\n    - {name: web, endpoints: [127.0.0.1:2]}\n";
    let error = load(yaml, &[(ADMIN_LISTEN_ENV, "0.0.0.0:5191")]).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::DuplicateService);
    assert!(error.origin().ends_with("sidecar.yaml"), "{error}");
    assert_eq!(error.line(), Some(4));

    // Before the environment is read: a bad file and a bad variable is
    // the file's error.
    let error = load("inbound: [", &[(ADMIN_LISTEN_ENV, "nowhere")]).unwrap_err();
    assert_eq!(error.kind(), ConfigErrorKind::Syntax);
}
