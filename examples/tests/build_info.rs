//! `proxy_build_info` carries linkerd2-proxy's five labels, in its order:
//! `date`, `git_sha`, `profile`, `vendor` and `version`. What the build
//! did not say (`MESH_BUILD_DATE`, `MESH_GIT_SHA`, `MESH_VENDOR` unset)
//! is empty, as Linkerd writes what its build could not tell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::*;

#[tokio::test]
async fn build_info_names_the_build_as_linkerd_does() {
    let app = refused_addr().await;
    let sidecar = plain_inbound(app);
    let metrics = scrape(sidecar.admin).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("proxy_build_info{"))
        .unwrap_or_else(|| panic!("no proxy_build_info in {metrics}"));
    let labels = line
        .strip_prefix("proxy_build_info{")
        .and_then(|l| l.split_once('}'))
        .map(|(labels, _)| labels)
        .unwrap();
    let names: Vec<&str> = labels
        .split("\",")
        .map(|pair| pair.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        names,
        ["date", "git_sha", "profile", "vendor", "version"],
        "{line}"
    );
    let value = |name: &str| {
        labels
            .split("\",")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
            .map(|v| v.trim_end_matches('"'))
            .unwrap()
    };
    assert_eq!(value("version"), env!("CARGO_PKG_VERSION"), "{line}");
    assert_eq!(
        value("profile"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        "{line}"
    );
    assert_eq!(
        value("git_sha"),
        option_env!("MESH_GIT_SHA").unwrap_or(""),
        "{line}"
    );
    assert_eq!(
        value("date"),
        option_env!("MESH_BUILD_DATE").unwrap_or(""),
        "{line}"
    );
    assert_eq!(
        value("vendor"),
        option_env!("MESH_VENDOR").unwrap_or(""),
        "{line}"
    );
    assert!(line.ends_with("} 1"), "{line}");
    stop(sidecar).await;
}
