//! `proxy_build_info` writes the build it is given as label values, and
//! every value of an OpenMetrics label must escape `\`, `"` and newlines:
//! unescaped, a quote ends the value early and a newline forges a line of
//! its own, and a scraper throws the whole exposition away.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use mesh_metrics::{BuildInfo, register_process_metrics};
use prometheus_client::{encoding::text::encode, registry::Registry};

#[test]
fn build_info_values_are_escaped_as_openmetrics_requires() {
    let mut registry = Registry::default();
    register_process_metrics(
        &mut registry,
        &BuildInfo {
            date: "",
            git_sha: "",
            profile: "release",
            vendor: "",
            version: "1.2.3 \"rc\" C:\\build\nproxy_evil 1",
        },
    );
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            "proxy_build_info{date=\"\",git_sha=\"\",profile=\"release\",vendor=\"\",\
             version=\"1.2.3 \\\"rc\\\" C:\\\\build\\nproxy_evil 1\"} 1\n"
        ),
        "{text}"
    );
    // No line the build's text made up.
    assert!(!text.lines().any(|l| l.starts_with("proxy_evil")), "{text}");
}
