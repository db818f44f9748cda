//! A resource text whose aliases stand for far more than it holds is
//! refused before it is read. One anchored list of ten thousand items,
//! referred to ten thousand times, is 50 to 170 KB of text and a hundred
//! million values once read: gigabytes. The YAML parser bounds how often aliases
//! are followed, not how much each one stands for.
//!
//! Each bomb is read in a child process (this test binary again, one test
//! in it) whose memory is bounded to 2 GiB and CPU time to 60 s, so a
//! reader that follows every alias fails there rather than take the test
//! runner, or the machine, down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use mesh_core::resource::{
    self, ALIAS_ALLOWANCE, Documents, HttpRoute, ResourceErrorKind, check_yaml_aliases,
};

/// Set in the child process: the test reads its bomb itself.
const CHILD: &str = "MESH_ALIASES_TEST_CHILD";

/// Runs test `name` of this binary in a child process with bounded memory
/// and CPU time; true when it passed.
fn passes_bounded(name: &str) -> bool {
    let output = Command::new("sh")
        .arg("-c")
        .arg(
            "ulimit -v 2097152 && ulimit -t 60 && \
             exec \"$0\" --exact \"$1\" --test-threads=1 --nocapture",
        )
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "child {name}: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.status.success() && stdout.contains("1 passed")
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// An HTTPRoute whose `rules` refer `aliases` times to a list of `items`
/// empty matches. (The typed reader stops at the Gateway API's 64 matches
/// of a rule, but the count comes first.)
fn route_bomb(items: usize, aliases: usize) -> String {
    let matches = vec!["{}"; items].join(",");
    let rules = vec!["{matches: *m}"; aliases].join(",");
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: r, namespace: shop}}\nspec:\n  \
         parentRefs: [{{group: core, kind: Service, name: books, port: 80}}]\n  \
         x: &m [{matches}]\n  rules: [{rules}]\n"
    )
}

/// A Server whose unread field `y` refers to the list `x` of `items`
/// numbers `aliases` times, with a merge key, so the document is read
/// into a tree, unread fields and all.
fn merge_bomb(items: usize, aliases: usize) -> String {
    let list = vec!["1"; items].join(",");
    let refs = vec!["*a"; aliases].join(",");
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: r, namespace: shop}}\n\
         spec:\n  <<: {{}}\n  x: &a [{list}]\n  y: [{refs}]\n"
    )
}

#[test]
fn a_document_read_into_a_tree_for_its_merge_keys_is_refused_too() {
    if !in_child() {
        assert!(passes_bounded(
            "a_document_read_into_a_tree_for_its_merge_keys_is_refused_too"
        ));
        return;
    }
    let text = merge_bomb(10_000, 10_000);
    let error = resource::load::<HttpRoute>("routes.yaml", &text).unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::LimitExceeded, "{error}");
    assert_eq!(error.document(), Some(1), "{error}");
}

#[test]
fn the_refusal_names_the_document_the_line_and_the_bound() {
    // A good first document, then the bomb: refused at its document,
    // before any document is handed out.
    let good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n";
    let text = format!("{good}{}", route_bomb(2_000, 1_000));
    let error = check_yaml_aliases("routes.yaml", &text).unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::LimitExceeded);
    assert_eq!(error.document(), Some(2));
    // The count passes the bound inside the anchored list, on line 10.
    assert_eq!(error.line(), Some(10), "{error}");
    let bound = (text.len() + ALIAS_ALLOWANCE).to_string();
    assert!(error.message().contains(&bound), "{error}");

    let mut documents = Documents::new("routes.yaml", &text);
    let first = documents.next().unwrap();
    assert!(first.is_err(), "a document was handed out");
    let first = first.err().unwrap();
    assert_eq!(first.kind(), ResourceErrorKind::LimitExceeded);
    assert_eq!(first.document(), Some(2));
    assert!(documents.next().is_none());
}

#[test]
fn anchors_reused_as_manifests_reuse_them_are_read() {
    // A list of a few matches reused by a few rules: what anchors are for.
    let text = route_bomb(3, 4);
    check_yaml_aliases("routes.yaml", &text).unwrap();
    let loaded = resource::load::<HttpRoute>("routes.yaml", &text).unwrap();
    assert_eq!(loaded.resources[0].spec.rules.len(), 4);

    // Up to the allowance beyond the text's own size is read.
    let text = merge_bomb(100, 900);
    assert!(text.len() < 5_000);
    check_yaml_aliases("routes.yaml", &text).unwrap();
}

#[test]
fn a_text_that_is_not_yaml_is_left_for_the_reader_to_report() {
    check_yaml_aliases("routes.yaml", "kind: [").unwrap();
    let error = resource::load::<HttpRoute>("routes.yaml", "kind: [").unwrap_err();
    assert_eq!(error.kind(), ResourceErrorKind::Syntax);
}
