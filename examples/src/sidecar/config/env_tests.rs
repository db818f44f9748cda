//! The listen addresses the environment sets: applied before the checks
//! across fields, refused with the variable and the value named, and
//! nothing changed when unset. The environment is a function here, so no
//! test touches the process's own.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{
    ADMIN_LISTEN_ENV, ConfigErrorKind, DEFAULT_ADMIN_LISTEN, DEFAULT_OUTBOUND_LISTEN,
    INBOUND_LISTEN_ENV, InboundPort, ListenAddress, ListenSource, OUTBOUND_LISTEN_ENV,
    OutboundPort, SidecarConfig,
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

/// Each listen address of the file `yaml` loaded with `vars`, as
/// `(field, address, source)`.
fn sources(yaml: &str, vars: &[(&str, &str)]) -> Vec<(String, SocketAddr, ListenSource)> {
    let (_dir, path) = file(yaml);
    let (config, sources) = SidecarConfig::load_with_sources(&path, env(vars)).unwrap();
    assert_eq!(
        config,
        SidecarConfig::load_with_env(&path, env(vars)).unwrap()
    );
    sources
        .into_iter()
        .map(
            |ListenAddress {
                 field,
                 addr,
                 source,
             }| (field, addr, source),
        )
        .collect()
}

fn entry(field: &str, addr_text: &str, source: ListenSource) -> (String, SocketAddr, ListenSource) {
    (field.to_owned(), addr(addr_text), source)
}

#[test]
fn each_listen_address_says_whether_the_file_the_environment_or_the_default_set_it() {
    let yaml = "inbound:\n  listen: 127.0.0.1:6143\n  app: 127.0.0.1:8080\n  ports:\n\
                \x20   - {listen: '127.0.0.1:7000', app: '127.0.0.1:7001'}\n\
                outbound:\n  listen: 127.0.0.1:6140\n  services: [{name: db, endpoints: [127.0.0.1:5432]}]\n\
                \x20 ports: [{listen: '127.0.0.1:7432', service: db}]\n";
    assert_eq!(
        sources(yaml, &[]),
        [
            entry("inbound.listen", "127.0.0.1:6143", ListenSource::File),
            entry(
                "inbound.ports[0].listen",
                "127.0.0.1:7000",
                ListenSource::File
            ),
            entry("outbound.listen", "127.0.0.1:6140", ListenSource::File),
            entry(
                "outbound.ports[0].listen",
                "127.0.0.1:7432",
                ListenSource::File
            ),
            entry("admin.listen", "0.0.0.0:4191", ListenSource::Default),
        ]
    );
    // A variable over a field the file writes names what it wrote; over
    // one it leaves out, nothing.
    let vars = [
        (INBOUND_LISTEN_ENV, "127.0.0.1:5143"),
        (OUTBOUND_LISTEN_ENV, "127.0.0.1:6140"),
        (ADMIN_LISTEN_ENV, "127.0.0.1:5191"),
    ];
    assert_eq!(
        sources(yaml, &vars),
        [
            entry(
                "inbound.listen",
                "127.0.0.1:5143",
                ListenSource::Env {
                    variable: INBOUND_LISTEN_ENV,
                    over: Some(addr("127.0.0.1:6143")),
                }
            ),
            entry(
                "inbound.ports[0].listen",
                "127.0.0.1:7000",
                ListenSource::File
            ),
            entry(
                "outbound.listen",
                "127.0.0.1:6140",
                ListenSource::Env {
                    variable: OUTBOUND_LISTEN_ENV,
                    over: Some(addr("127.0.0.1:6140")),
                }
            ),
            entry(
                "outbound.ports[0].listen",
                "127.0.0.1:7432",
                ListenSource::File
            ),
            entry(
                "admin.listen",
                "127.0.0.1:5191",
                ListenSource::Env {
                    variable: ADMIN_LISTEN_ENV,
                    over: None,
                }
            ),
        ]
    );
}

#[test]
fn listen_sources_are_what_the_reader_read() {
    // A listen address given by a merge key, one written `~`, and a
    // variable set empty: the reader takes these as written, left out and
    // unset.
    let yaml = "inbound:\n  <<: {listen: '127.0.0.1:7001'}\n  app: 127.0.0.1:8080\n\
                outbound:\n  listen: ~\n\
                admin: {listen: '127.0.0.1:7002'}\n";
    assert_eq!(
        sources(yaml, &[(OUTBOUND_LISTEN_ENV, "")]),
        [
            entry("inbound.listen", "127.0.0.1:7001", ListenSource::File),
            entry("outbound.listen", "127.0.0.1:4140", ListenSource::Default),
            entry("admin.listen", "127.0.0.1:7002", ListenSource::File),
        ]
    );
    // A byte-order mark is not part of the text.
    assert_eq!(
        sources("\u{feff}admin:\n  listen: 127.0.0.1:7002\n", &[])[1],
        entry("admin.listen", "127.0.0.1:7002", ListenSource::File),
    );
    // Without inbound.app there is no inbound listener of the section's own.
    assert_eq!(
        sources(
            "inbound:\n  ports: [{listen: '127.0.0.1:7000', app: '127.0.0.1:7001'}]\n",
            &[]
        )[0],
        entry(
            "inbound.ports[0].listen",
            "127.0.0.1:7000",
            ListenSource::File
        ),
    );
}

#[test]
fn a_configuration_built_in_code_says_only_what_it_can_know() {
    // Nothing set it to anything else: the default.
    let mut config = SidecarConfig::default();
    assert_eq!(
        config.listen_sources(),
        [
            ListenAddress {
                field: "outbound.listen".to_owned(),
                addr: DEFAULT_OUTBOUND_LISTEN,
                source: ListenSource::Default,
            },
            ListenAddress {
                field: "admin.listen".to_owned(),
                addr: DEFAULT_ADMIN_LISTEN,
                source: ListenSource::Default,
            },
        ]
    );
    // Anything else was configured, by whatever built it: no file wrote
    // it, and its fields are named as the configuration's own.
    config.outbound.listen = addr("127.0.0.1:5140");
    config.inbound.ports.push(InboundPort::new(
        addr("0.0.0.0:4143"),
        addr("127.0.0.1:8080"),
    ));
    config.outbound.ports.push(OutboundPort {
        listen: addr("127.0.0.1:7432"),
        service: "db".parse().unwrap(),
        port: None,
    });
    let sources: Vec<(String, SocketAddr, ListenSource)> = config
        .listen_sources()
        .into_iter()
        .map(
            |ListenAddress {
                 field,
                 addr,
                 source,
             }| (field, addr, source),
        )
        .collect();
    assert_eq!(
        sources,
        [
            entry(
                "inbound.ports[0].listen",
                "0.0.0.0:4143",
                ListenSource::Configured
            ),
            entry(
                "outbound.listen",
                "127.0.0.1:5140",
                ListenSource::Configured
            ),
            entry(
                "outbound.ports[0].listen",
                "127.0.0.1:7432",
                ListenSource::Configured
            ),
            entry("admin.listen", "0.0.0.0:4191", ListenSource::Default),
        ]
    );
}

/// `names` as the environment lists them.
fn unknown(names: &[&str]) -> Vec<(String, Option<&'static str>)> {
    SidecarConfig::unknown_env_variables(names.iter().map(OsString::from))
}

#[test]
fn a_misspelt_variable_is_named_with_the_one_it_probably_means() {
    assert_eq!(
        unknown(&["PATH", "MESH_INBOUND_LISTEN_ADR", ADMIN_LISTEN_ENV]),
        [(
            "MESH_INBOUND_LISTEN_ADR".to_owned(),
            Some(INBOUND_LISTEN_ENV)
        )]
    );
    // A swap, a case slip and a doubled letter are each a slip of one.
    assert_eq!(
        unknown(&[
            "MESH_ADMNI_LISTEN_ADDR",
            "MESH_Ingress_Mode",
            "MESH_OUTBOUND_LISTENN_ADDR"
        ]),
        [
            ("MESH_ADMNI_LISTEN_ADDR".to_owned(), Some(ADMIN_LISTEN_ENV)),
            ("MESH_Ingress_Mode".to_owned(), Some("MESH_INGRESS_MODE")),
            (
                "MESH_OUTBOUND_LISTENN_ADDR".to_owned(),
                Some(OUTBOUND_LISTEN_ENV)
            ),
        ]
    );
}

#[test]
fn a_variable_far_from_every_known_one_is_named_alone() {
    assert_eq!(
        unknown(&["MESH_TRACE_COLLECTOR", "MESH_ADMIN_ADDR", "HOME"]),
        [
            ("MESH_ADMIN_ADDR".to_owned(), None),
            ("MESH_TRACE_COLLECTOR".to_owned(), None),
        ]
    );
}

#[test]
fn known_variables_and_other_prefixes_are_not_named() {
    let known = [
        "MESH_INGRESS_MODE",
        INBOUND_LISTEN_ENV,
        OUTBOUND_LISTEN_ENV,
        ADMIN_LISTEN_ENV,
        "RUST_LOG",
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
        "MESHY_THING",
    ];
    assert_eq!(unknown(&known), []);
}

#[test]
fn edits_count_insertions_deletions_substitutions_and_swaps() {
    use super::env::edits;
    assert_eq!(edits("", ""), 0);
    assert_eq!(edits("abc", ""), 3);
    assert_eq!(edits("", "abc"), 3);
    assert_eq!(edits("ADDR", "ADR"), 1);
    assert_eq!(edits("ADMIN", "ADMNI"), 1);
    assert_eq!(edits("kitten", "sitting"), 3);
    assert_eq!(edits("ÄDDR", "ADDR"), 1, "characters, not bytes");
}

#[test]
fn a_variable_that_is_set_is_never_the_one_suggested() {
    // The one meant is set, and in force: the misspelt one is a leftover,
    // and "did you mean" would send the reader to a variable already set.
    assert_eq!(
        unknown(&["MESH_ADMIN_LISTEN_ADR", ADMIN_LISTEN_ENV]),
        [("MESH_ADMIN_LISTEN_ADR".to_owned(), None)]
    );
    // Another one close enough, not set, is still suggested.
    assert_eq!(
        unknown(&["MESH_INBOUND_LISTEN_ADR", ADMIN_LISTEN_ENV]),
        [(
            "MESH_INBOUND_LISTEN_ADR".to_owned(),
            Some(INBOUND_LISTEN_ENV)
        )]
    );
}

#[test]
fn a_name_as_close_to_two_known_variables_suggests_neither() {
    use super::env::edits;
    // Two edits from each of the inbound and the outbound listener's.
    let name = "MESH_OBOUND_LISTEN_ADDR";
    assert_eq!(edits(name, INBOUND_LISTEN_ENV), 2);
    assert_eq!(edits(name, OUTBOUND_LISTEN_ENV), 2);
    assert_eq!(unknown(&[name]), [(name.to_owned(), None)]);
}

#[test]
fn a_lowercase_prefix_is_named_when_the_name_is_close_to_a_known_one() {
    // Environment names are case-sensitive: `mesh_admin_listen_addr` is
    // not the variable the sidecar reads, and the address it was meant to
    // set is not in force. A lowercase name far from every known one is
    // another program's, and not named.
    assert_eq!(
        unknown(&["mesh_admin_listen_addr", "mesh_colour", "Mesh_Ingress_Mod"]),
        [
            ("Mesh_Ingress_Mod".to_owned(), Some("MESH_INGRESS_MODE")),
            ("mesh_admin_listen_addr".to_owned(), Some(ADMIN_LISTEN_ENV)),
        ]
    );
}

#[test]
fn names_that_are_not_unicode_are_named_without_a_panic() {
    use std::os::unix::ffi::OsStringExt as _;
    let names = [
        OsString::from_vec(b"MESH_\xffADMIN".to_vec()),
        OsString::from_vec(b"\xffMESH_ADMIN_LISTEN_ADDR".to_vec()),
        OsString::from("MESH_"),
    ];
    assert_eq!(
        SidecarConfig::unknown_env_variables(names),
        [
            ("MESH_".to_owned(), None),
            ("MESH_\u{fffd}ADMIN".to_owned(), None),
        ]
    );
}
