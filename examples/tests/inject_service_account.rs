//! `sidecar inject` names the identity Secret after the pod's service
//! account as Kubernetes resolves it: an empty `serviceAccountName` is
//! unset, so the deprecated `serviceAccount` or `default` is the account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mesh_examples::sidecar::inject::{self, Image, InjectConfig};
use serde_yaml_ng::Value;

fn secret_name(spec_fields: &str) -> String {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{spec_fields}  containers: [{{name: a, image: a}}]\n"
    );
    let config =
        InjectConfig::new().with_image(Image::parse("ghcr.io/mesh/sidecar:0.1.0").unwrap());
    let injected = inject::inject("pod.yaml", &text, &config).unwrap();
    let pod: Value = serde_yaml_ng::from_str(&injected.yaml).unwrap();
    let volumes = pod["spec"]["volumes"].as_sequence().unwrap();
    volumes
        .iter()
        .find_map(|v| v["secret"]["secretName"].as_str())
        .unwrap()
        .to_owned()
}

#[test]
fn an_empty_service_account_name_is_the_default_account() {
    assert_eq!(
        secret_name("  serviceAccountName: ''\n"),
        "default-mesh-identity"
    );
    assert_eq!(
        secret_name("  serviceAccountName: ''\n  serviceAccount: web\n"),
        "web-mesh-identity"
    );
    assert_eq!(
        secret_name("  serviceAccount: ''\n"),
        "default-mesh-identity"
    );
}

#[test]
fn a_named_service_account_names_the_secret() {
    assert_eq!(
        secret_name("  serviceAccountName: web\n  serviceAccount: old\n"),
        "web-mesh-identity"
    );
    assert_eq!(secret_name(""), "default-mesh-identity");
}
