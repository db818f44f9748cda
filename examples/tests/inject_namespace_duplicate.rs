//! Two Namespace documents of one name in one input. `kubectl apply`
//! applies both, in order, and leaves the later; which of the two should
//! decide for the workloads in it (whether they are injected, their
//! sidecar's resources) would be a guess. Inject refuses the input,
//! naming both places, unless the two are the same object written twice,
//! as in two files each carrying their namespace, concatenated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::sidecar_cli_with_input;

fn namespace(annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: emojivoto\n  annotations: {{{annotations}}}\n"
    )
}

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: emojivoto}
spec:
  template:
    spec:
      containers: [{name: web, image: web:v1}]
";

fn inject_cli(input: &str) -> (Option<i32>, String, String) {
    let output = sidecar_cli_with_input(
        &["inject", "-", "--image", "ghcr.io/mesh/sidecar:0.1.0"],
        input,
    );
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn two_different_namespaces_of_one_name_are_refused_naming_both() {
    let input = [
        namespace("mesh.io/inject: disabled"),
        WEB.to_owned(),
        namespace("mesh.io/inject: enabled"),
    ]
    .join("---\n");
    let (code, stdout, stderr) = inject_cli(&input);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "", "{stderr}");
    // The later one is the error's document, at its name's line (the
    // third document starts at line 15); the earlier one is named too.
    assert!(
        stderr.contains("error: stdin: document 3 (Namespace emojivoto)"),
        "{stderr}"
    );
    assert!(stderr.contains("line 18"), "{stderr}");
    assert!(stderr.contains("document 1 (line 4)"), "{stderr}");
}

#[test]
fn a_namespace_in_a_list_and_in_a_document_of_its_own_are_named_by_item() {
    let list =
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: emojivoto}\n"
            .to_owned();
    let input = [list, namespace("config.linkerd.io/proxy-cpu-request: '1'")].join("---\n");
    let (code, stdout, stderr) = inject_cli(&input);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("document 1, items[0] (line 6)"), "{stderr}");
}

#[test]
fn the_same_namespace_written_twice_is_read_once() {
    let ns = namespace("mesh.io/inject: disabled");
    let input = [ns.clone(), WEB.to_owned(), ns].join("---\n");
    let (code, stdout, stderr) = inject_cli(&input);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("document 2 (Deployment emojivoto/web): not injected: mesh.io/inject is disabled on namespace emojivoto"),
        "{stderr}"
    );
    assert_eq!(stdout, input);
}
