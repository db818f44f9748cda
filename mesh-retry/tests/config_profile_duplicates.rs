//! Two ServiceProfiles of one service for one client namespace: in one
//! text an error naming the first, across two texts a warning naming both
//! and the later served, for a profile in the service's namespace and for
//! one in a client's namespace alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_core::resource::ResourceErrorKind;
use mesh_retry::config;

/// A ServiceProfile of `emoji` in `emojivoto`, applied in `namespace`,
/// with one route named `route`.
fn profile(namespace: &str, route: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {{name: emoji.emojivoto.svc.cluster.local, namespace: {namespace}}}
spec:
  routes:
  - name: {route}
    condition: {{method: GET, pathRegex: /{route}}}
"
    )
}

/// The names of the routes of `emoji` a client in `namespace` is served.
fn routes(loaded: &config::RetryResources, namespace: &str) -> Vec<String> {
    let served = loaded.for_namespace(namespace);
    let emoji = served.service("emoji", Some("emojivoto")).unwrap();
    emoji.routes.iter().map(|r| r.name.to_string()).collect()
}

#[test]
fn two_profiles_for_one_client_namespace_in_two_texts_are_warned_of() {
    let mut loaded = config::load("web-v1.yaml", &profile("web", "old")).unwrap();
    loaded.merge(config::load("web-v2.yaml", &profile("web", "new")).unwrap());
    // The later is served to web's clients, in place of the earlier.
    assert_eq!(routes(&loaded, "web"), ["new"]);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "web-v2.yaml: document 1 (ServiceProfile web/emoji.emojivoto.svc.cluster.local): \
             metadata.name: a second ServiceProfile for service emoji in namespace web, after \
             web-v1.yaml: document 1 (ServiceProfile web/emoji.emojivoto.svc.cluster.local): \
             the cluster keeps one, the one applied last, and this one, read last, is served \
             to the clients of that namespace in place of the other"
        ]
    );
    // Profiles for two client namespaces, or the service's own beside a
    // client's, are not duplicates.
    let mut loaded = config::load("web.yaml", &profile("web", "web")).unwrap();
    loaded.merge(config::load("books.yaml", &profile("books", "books")).unwrap());
    loaded.merge(config::load("own.yaml", &profile("emojivoto", "own")).unwrap());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(routes(&loaded, "web"), ["web"]);
    assert_eq!(routes(&loaded, "books"), ["books"]);
    assert_eq!(routes(&loaded, "emojivoto"), ["own"]);
}

#[test]
fn two_profiles_for_one_client_namespace_in_one_text_are_refused_naming_the_first() {
    for (namespace, whose) in [
        ("web", " for the clients of namespace web"),
        ("emojivoto", ""),
    ] {
        let text = format!(
            "{}---\n{}",
            profile(namespace, "old"),
            profile(namespace, "new")
        );
        let err = config::load("profiles.yaml", &text).unwrap_err();
        assert_eq!(err.kind(), ResourceErrorKind::DuplicateName, "{err}");
        assert_eq!(err.field_path(), "metadata.name", "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains(&format!(
                "a second ServiceProfile for service emoji{whose} in this text, after \
                 profiles.yaml: document 1 (ServiceProfile {namespace}/\
                 emoji.emojivoto.svc.cluster.local)"
            )) && shown.contains("document 2"),
            "{shown}"
        );
    }
}
