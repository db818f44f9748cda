use super::{Check, Group, Report, Status};

fn report(checks: Vec<Check>) -> Report {
    Report {
        groups: vec![Group {
            name: "sidecar-app",
            checks,
        }],
    }
}

#[test]
fn renders_headings_marks_and_indented_details() {
    let report = Report {
        groups: vec![
            Group {
                name: "sidecar-config",
                checks: vec![Check::pass("config file sidecar.yaml is valid")],
            },
            Group {
                name: "sidecar-identity",
                checks: vec![
                    Check::warn(
                        "workload certificate does not expire soon",
                        "expires at 2026-12-01T10:00:00Z, in 2d 23h",
                    ),
                    Check::fail("app at 127.0.0.1:9 accepts connections", "refused\nagain"),
                ],
            },
        ],
    };
    assert_eq!(
        report.to_string(),
        "sidecar-config\n\
         --------------\n\
         ✔ config file sidecar.yaml is valid\n\
         \n\
         sidecar-identity\n\
         ----------------\n\
         ‼ workload certificate does not expire soon\n\
         \x20   expires at 2026-12-01T10:00:00Z, in 2d 23h\n\
         ✖ app at 127.0.0.1:9 accepts connections\n\
         \x20   refused\n\
         \x20   again\n\
         \n\
         ✖ 1 of 3 checks failed, 1 warning\n"
    );
}

#[test]
fn summary_counts_passes_warnings_and_failures() {
    let pass = || Check::pass("a");
    let warn = || Check::warn("b", "soon");
    let fail = || Check::fail("c", "no");
    assert_eq!(report(vec![pass()]).summary(), "✔ 1 check passed");
    assert_eq!(report(vec![pass(), pass()]).summary(), "✔ 2 checks passed");
    assert_eq!(
        report(vec![pass(), warn()]).summary(),
        "‼ 2 checks passed, 1 with a warning"
    );
    assert_eq!(
        report(vec![warn(), warn()]).summary(),
        "‼ 2 checks passed, 2 with warnings"
    );
    assert_eq!(
        report(vec![pass(), fail()]).summary(),
        "✖ 1 of 2 checks failed"
    );
    assert_eq!(
        report(vec![fail(), warn(), warn()]).summary(),
        "✖ 1 of 3 checks failed, 2 warnings"
    );
}

#[test]
fn warnings_alone_are_a_success() {
    assert!(report(vec![Check::warn("b", "soon")]).is_success());
    assert_eq!(
        report(vec![Check::warn("b", "soon")]).status(),
        Status::Warn
    );
    assert!(!report(vec![Check::warn("b", "soon"), Check::fail("c", "no")]).is_success());
    assert!(Report::default().is_success());
}

mod ingress {
    use super::super::{Status, ingress};
    use crate::sidecar::config::SidecarConfig;

    fn checks(yaml: &str) -> Vec<(Status, String, Option<String>)> {
        let config = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap();
        ingress::check(&config.outbound)
            .into_iter()
            .map(|check| (check.status, check.title, check.detail))
            .collect()
    }

    #[test]
    fn ingress_mode_without_services_warns() {
        let checks = checks("outbound:\n  ingress_mode: true\n");
        assert_eq!(checks.len(), 1);
        let (status, title, detail) = &checks[0];
        assert_eq!(*status, Status::Warn);
        assert_eq!(title, "ingress mode has outbound services to route to");
        let detail = detail.as_deref().unwrap();
        assert!(detail.contains("outbound.services is empty"), "{detail}");
        assert!(detail.contains("404"), "{detail}");
    }

    #[test]
    fn ingress_mode_with_services_passes_and_says_how_many() {
        let checks = checks(
            "outbound:\n  ingress_mode: true\n  services:\n\
             \x20   - name: emoji\n      endpoints: [127.0.0.1:8080]\n\
             \x20   - name: voting\n      endpoints: [127.0.0.1:8081]\n",
        );
        assert_eq!(
            checks,
            [(
                Status::Pass,
                "ingress mode has outbound services to route to".to_owned(),
                Some("2 services".to_owned())
            )]
        );
    }

    #[test]
    fn outside_ingress_mode_there_is_nothing_to_check() {
        assert!(checks("").is_empty());
        assert!(checks("outbound:\n  ingress_mode: false\n").is_empty());
    }
}

#[tokio::test]
async fn pre_checks_that_the_outbound_tcp_ports_can_be_bound() {
    // Below Linux's ephemeral range, where no test binds: once it is let
    // go below, no other test's bind to port 0 takes it meanwhile.
    let taken = {
        use std::hash::{BuildHasher, RandomState};
        let random = RandomState::new();
        (0_u64..)
            .map(|attempt| 10_000 + (random.hash_one(attempt) % 5_000) as u16)
            .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .unwrap()
    };
    let port = taken.local_addr().unwrap();
    let yaml = format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n    - name: db\n      endpoints: [127.0.0.1:5432]\n  \
         ports:\n    - listen: {port}\n      service: db\nadmin:\n  listen: 127.0.0.1:0\n"
    );
    let config = crate::sidecar::config::SidecarConfig::from_yaml(&yaml, "sidecar.yaml").unwrap();
    let checks = super::app::bindable(&config).await;
    let title = format!("outbound tcp listener {port} can be bound");
    let check = checks.iter().find(|c| c.title == title).unwrap();
    assert_eq!(check.status, Status::Fail, "{checks:?}");
    drop(taken);
    let checks = super::app::bindable(&config).await;
    let check = checks.iter().find(|c| c.title == title).unwrap();
    assert_eq!(check.status, Status::Pass, "{checks:?}");
}

#[test]
fn listen_lines_word_each_source() {
    use crate::sidecar::config::{INBOUND_LISTEN_ENV, ListenAddress, ListenSource};
    let at = |field: &str, addr: &str, source| ListenAddress {
        field: field.to_owned(),
        addr: addr.parse().unwrap(),
        source,
    };
    let env = |over: Option<&str>| ListenSource::Env {
        variable: INBOUND_LISTEN_ENV,
        over: over.map(|addr| addr.parse().unwrap()),
    };
    let addresses = [
        at("inbound.listen", "0.0.0.0:1", env(Some("0.0.0.0:2"))),
        at("inbound.listen", "0.0.0.0:1", env(Some("0.0.0.0:1"))),
        at("inbound.listen", "0.0.0.0:1", env(None)),
        at("inbound.ports[0].listen", "0.0.0.0:3", ListenSource::File),
        at("outbound.listen", "127.0.0.1:4140", ListenSource::Default),
        at("admin.listen", "0.0.0.0:4", ListenSource::Configured),
    ];
    assert_eq!(
        super::listen::lines(&addresses, "s.yaml"),
        [
            "inbound.listen 0.0.0.0:1 (from MESH_INBOUND_LISTEN_ADDR, over 0.0.0.0:2 in s.yaml)",
            "inbound.listen 0.0.0.0:1 (from MESH_INBOUND_LISTEN_ADDR)",
            "inbound.listen 0.0.0.0:1 (from MESH_INBOUND_LISTEN_ADDR)",
            "inbound.ports[0].listen 0.0.0.0:3 (from s.yaml)",
            "outbound.listen 127.0.0.1:4140 (default)",
            "admin.listen 0.0.0.0:4 (configured)",
        ]
    );
}

#[test]
fn a_hint_ends_the_detail_and_is_kept_apart_from_the_error() {
    let check = Check::fail("app at 127.0.0.1:9 accepts connections", "refused")
        .with_hint("start the application");
    assert_eq!(
        check.detail.as_deref(),
        Some("refused\nstart the application")
    );
    assert_eq!(check.hint.as_deref(), Some("start the application"));
    assert_eq!(check.error(), Some("refused"));

    let within = Check::fail("chain", "issued by X\nno anchor issued it")
        .with_hint_after(": ", "put X's anchor in ca.crt");
    assert_eq!(
        within.detail.as_deref(),
        Some("issued by X\nno anchor issued it: put X's anchor in ca.crt")
    );
    assert_eq!(within.error(), Some("issued by X\nno anchor issued it"));

    // A detail changed after the hint was given is the error whole.
    let mut changed = check.clone();
    changed.detail = Some("something else".to_owned());
    assert_eq!(changed.error(), Some("something else"));
    assert_eq!(Check::pass("a").error(), None);
}

#[test]
fn json_is_linkerd_checks_document() {
    let report = Report {
        groups: vec![
            Group {
                name: "sidecar-config",
                checks: vec![Check::pass("config file s.yaml is valid").with_detail("a note")],
            },
            Group {
                name: "sidecar-app",
                checks: vec![
                    Check::warn("b", "soon").with_hint("renew it"),
                    Check::fail("c", "no"),
                    Check {
                        status: Status::Warn,
                        title: "d".to_owned(),
                        detail: None,
                        hint: None,
                    },
                ],
            },
        ],
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::json!({
            "success": false,
            "categories": [
                {
                    "categoryName": "sidecar-config",
                    "checks": [{"description": "config file s.yaml is valid", "result": "success"}],
                },
                {
                    "categoryName": "sidecar-app",
                    "checks": [
                        {"description": "b", "error": "soon", "hint": "renew it", "result": "warning"},
                        {"description": "c", "error": "no", "result": "error"},
                        {"description": "d", "result": "warning"},
                    ],
                },
            ],
        })
    );
    let warned = report.groups[1].checks[..1].to_vec();
    let warned = Report {
        groups: vec![Group {
            name: "sidecar-app",
            checks: warned,
        }],
    };
    assert_eq!(serde_json::to_value(&warned).unwrap()["success"], true);
}

#[test]
fn short_leaves_out_what_passed() {
    let report = Report {
        groups: vec![
            Group {
                name: "sidecar-config",
                checks: vec![Check::pass("config file s.yaml is valid").with_detail("a note")],
            },
            Group {
                name: "sidecar-app",
                checks: vec![
                    Check::pass("a"),
                    Check::warn("b", "soon").with_hint("renew it"),
                ],
            },
        ],
    };
    assert_eq!(
        report.short().to_string(),
        "sidecar-app\n\
         -----------\n\
         ‼ b\n\
         \x20   soon\n\
         \x20   renew it\n\
         \n\
         ‼ 3 checks passed, 1 with a warning\n"
    );
    let passed = Report {
        groups: vec![report.groups[0].clone()],
    };
    assert_eq!(passed.short().to_string(), "✔ 1 check passed\n");
}

#[test]
fn output_formats_are_linkerd_checks() {
    use super::Output;
    assert_eq!("table".parse(), Ok(Output::Table));
    assert_eq!("short".parse(), Ok(Output::Short));
    assert_eq!("json".parse(), Ok(Output::Json));
    let error = "wide".parse::<Output>().unwrap_err();
    assert_eq!(error.to_string(), "expected table, short or json");
}
