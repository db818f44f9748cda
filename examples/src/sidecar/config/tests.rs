use std::time::Duration;

use super::parse_duration;

#[test]
fn durations_add_their_parts() {
    let cases = [
        ("0s", Duration::ZERO),
        ("10s", Duration::from_secs(10)),
        ("500ms", Duration::from_millis(500)),
        ("1m30s", Duration::from_secs(90)),
        ("1h", Duration::from_secs(3600)),
        ("01h", Duration::from_secs(3600)),
        ("00060m", Duration::from_secs(3600)),
        ("1h30m30s500ms", Duration::from_millis(5_430_500)),
        ("1h1h", Duration::from_secs(7200)),
        ("99999h", Duration::from_secs(99_999 * 3600)),
        ("1ms1s", Duration::from_millis(1001)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn durations_outside_the_format_are_rejected() {
    for text in [
        "",
        "10",
        "s",
        "1.5s",
        "-1s",
        "+1s",
        "10 s",
        " 10s",
        "10s ",
        "1d",
        "1us",
        "1ns",
        "100000s",
        "1h1m1s1ms1h",
        "1S",
        "1sm",
        "10sec",
        "1m s",
        "١s",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?}");
    }
}

#[test]
fn invalid_duration_says_what_was_expected() {
    let message = parse_duration("10x").unwrap_err().to_string();
    assert!(message.starts_with("expected"), "{message}");
    assert!(message.contains("1m30s"), "{message}");
}

mod ingress_mode {
    use std::ffi::OsString;

    use super::super::{
        ADMIN_LISTEN_ENV, ConfigErrorKind, INBOUND_LISTEN_ENV, INGRESS_MODE_ENV,
        OUTBOUND_LISTEN_ENV, SidecarConfig,
    };

    fn parse(yaml: &str) -> SidecarConfig {
        SidecarConfig::from_yaml(yaml, "test.yaml").unwrap()
    }

    /// An environment with `MESH_INGRESS_MODE` set to `value`, and
    /// nothing else: only the sidecar's own variables may be read.
    fn env(value: Option<&str>) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            let read = [
                INGRESS_MODE_ENV,
                INBOUND_LISTEN_ENV,
                OUTBOUND_LISTEN_ENV,
                ADMIN_LISTEN_ENV,
            ];
            assert!(read.contains(&name), "{name} is read");
            value
                .filter(|_| name == INGRESS_MODE_ENV)
                .map(OsString::from)
        }
    }

    #[test]
    fn is_off_unless_the_file_turns_it_on() {
        assert!(!parse("").outbound.ingress_mode);
        assert!(
            !parse("outbound:\n  listen: 127.0.0.1:4140\n")
                .outbound
                .ingress_mode
        );
        assert!(
            !parse("outbound:\n  ingress_mode: false\n")
                .outbound
                .ingress_mode
        );
        let on = parse(
            "outbound:\n  ingress_mode: true\n  services:\n    - name: emoji\n      endpoints: [127.0.0.1:8080]\n",
        );
        assert!(on.outbound.ingress_mode);
        assert_eq!(on.outbound.services.len(), 1);
    }

    #[test]
    fn a_value_that_is_not_a_boolean_is_refused_where_it_is() {
        for value in ["yes", "1", "\"true\"", "[true]"] {
            let yaml = format!("outbound:\n  listen: 127.0.0.1:4140\n  ingress_mode: {value}\n");
            let error = SidecarConfig::from_yaml(&yaml, "test.yaml").unwrap_err();
            assert_eq!(error.kind(), ConfigErrorKind::InvalidType, "{value}");
            assert_eq!(error.field_path(), "outbound.ingress_mode", "{value}");
            assert_eq!(error.line(), Some(3), "{value}");
        }
    }

    #[test]
    fn a_misspelling_is_refused_and_the_right_name_suggested() {
        let error =
            SidecarConfig::from_yaml("outbound:\n  ingress: true\n", "test.yaml").unwrap_err();
        assert_eq!(error.kind(), ConfigErrorKind::UnknownField);
        assert_eq!(error.field_path(), "outbound.ingress");
        assert!(error.to_string().contains("ingress_mode"), "{error}");
    }

    #[test]
    fn the_environment_decides_when_it_is_set() {
        let off = parse("");
        let on = parse("outbound:\n  ingress_mode: true\n");
        let mode = |config: &SidecarConfig, value| {
            config
                .clone()
                .with_env(env(value))
                .unwrap()
                .outbound
                .ingress_mode
        };
        assert!(mode(&off, Some("true")));
        assert!(!mode(&on, Some("false")));
        assert!(mode(&on, None), "unset leaves the file's choice");
        assert!(mode(&on, Some("")), "empty is unset");
        assert!(!mode(&off, Some("")));
    }

    #[test]
    fn an_environment_value_that_is_not_a_boolean_is_an_error_naming_it() {
        for value in ["yes", "TRUE", "1", " true"] {
            let error = parse("").with_env(env(Some(value))).unwrap_err();
            assert_eq!(error.kind(), ConfigErrorKind::InvalidValue, "{value}");
            assert_eq!(error.origin(), "environment");
            assert_eq!(error.field_path(), INGRESS_MODE_ENV);
            assert!(error.to_string().contains(&format!("{value:?}")), "{error}");
        }
    }

    #[test]
    fn loading_a_file_applies_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sidecar.yaml");
        std::fs::write(&path, "outbound:\n  listen: 127.0.0.1:4140\n").unwrap();
        let loaded = SidecarConfig::load_with_env(&path, env(Some("true"))).unwrap();
        assert!(loaded.outbound.ingress_mode);
        let loaded = SidecarConfig::load_with_env(&path, env(None)).unwrap();
        assert!(!loaded.outbound.ingress_mode);
        let error = SidecarConfig::load_with_env(&path, env(Some("on"))).unwrap_err();
        assert_eq!(error.origin(), "environment");
    }
}
