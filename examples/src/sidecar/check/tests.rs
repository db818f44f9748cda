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
