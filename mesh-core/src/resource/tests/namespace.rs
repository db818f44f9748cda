//! Errors and warnings name a resource's namespace, as kubectl does
//! (`HTTPRoute shop/r`), so that resources of one name in two namespaces
//! of one file are told apart; a document that names no namespace, or one
//! that is not a namespace, is named as before.

use super::*;

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n";

/// A route `r` in `namespace` whose parent reference, on its line 5,
/// names no parent.
fn bad_route(namespace: &str) -> String {
    format!(
        "{ROUTE}metadata: {{name: r, namespace: {namespace}}}\nspec:\n  parentRefs: [{{port: 80}}]\n"
    )
}

/// The error of each document of `text`, read as an `HTTPRoute`.
fn read_errors(text: &str) -> Vec<String> {
    Documents::new("routes.yaml", text)
        .map(|document| match document.unwrap().read::<HttpRoute>() {
            Ok(parsed) => panic!("document {} read", parsed.context.index()),
            Err(e) => e.to_string(),
        })
        .collect()
}

#[test]
fn same_named_resources_in_two_namespaces_have_errors_that_differ_by_namespace() {
    let text = format!("{}---\n{}", bad_route("shop"), bad_route("other"));
    let errors = read_errors(&text);
    assert_eq!(
        errors,
        [
            "routes.yaml: document 1 (HTTPRoute shop/r): spec.parentRefs[0].name: \
             missing field `name` at line 5 column 16",
            "routes.yaml: document 2 (HTTPRoute other/r): spec.parentRefs[0].name: \
             missing field `name` at line 11 column 16",
        ]
    );

    // `load` stops at the first, which names its namespace too.
    let err = load::<HttpRoute>("routes.yaml", &text).unwrap_err();
    assert_eq!(err.namespace(), Some("shop"), "{err}");
    assert_eq!(err.to_string(), errors[0]);

    // An error found after reading, from the document's context.
    let text = format!("{ROUTE}metadata: {{name: r, namespace: shop}}\nspec: {{}}\n");
    let parsed = documents(&text).remove(0).read::<HttpRoute>().unwrap();
    assert_eq!(parsed.context.namespace(), Some("shop"));
    let err = parsed
        .context
        .error(ResourceErrorKind::DanglingReference, "spec", "no parent");
    assert_eq!(
        err.to_string(),
        "test.yaml: document 1 (HTTPRoute shop/r): spec: no parent at line 4 column 7"
    );
}

#[test]
fn warnings_name_the_namespace_too() {
    let text = format!(
        "{ROUTE}metadata: {{name: r, namespace: shop}}\nspec: {{color: red}}\n---\n\
         {ROUTE}metadata: {{name: r, namespace: other}}\nspec: {{color: red}}\n---\n\
         apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\n\
         metadata: {{name: r.shop.svc.cluster.local, namespace: shop}}\n"
    );
    let loaded = load::<HttpRoute>("routes.yaml", &text).unwrap();
    let ignored: Vec<String> = loaded.ignored.iter().map(ToString::to_string).collect();
    assert_eq!(
        ignored,
        [
            "routes.yaml: document 1 (HTTPRoute shop/r): spec.color",
            "routes.yaml: document 2 (HTTPRoute other/r): spec.color",
        ]
    );
    assert_eq!(
        loaded.other[0].to_string(),
        "routes.yaml: document 3 (ServiceProfile shop/r.shop.svc.cluster.local, linkerd.io/v1alpha2)"
    );
}

#[test]
fn a_document_without_a_namespace_is_named_as_before() {
    for metadata in [
        "{name: r}",
        "{name: r, namespace: ''}",
        "{name: r, namespace: null}",
    ] {
        let text = format!("{ROUTE}metadata: {metadata}\nspec: {{parentRefs: [{{}}]}}\n");
        let err = route_error(&text);
        assert_eq!(err.namespace(), None, "{metadata}: {err}");
        assert_eq!(
            err.to_string(),
            "routes.yaml: document 1 (HTTPRoute r): spec.parentRefs[0].name: missing field `name` at line 4 column 21",
            "{metadata}"
        );
    }
}

#[test]
fn a_document_whose_namespace_is_not_a_string_still_names_its_kind_and_name() {
    for (namespace, problem) in [
        ("[shop]", "invalid type: sequence, expected a string"),
        ("{name: shop}", "invalid type: map, expected a string"),
    ] {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\n\
             {ROUTE}metadata:\n  name: r\n  namespace: {namespace}\nspec: {{}}\n"
        );
        let err = route_error(&text);
        assert_eq!(
            (err.resource_kind(), err.namespace(), err.name()),
            (Some("HTTPRoute"), None, Some("r")),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "routes.yaml: document 2 (HTTPRoute r): metadata.namespace: {problem} at line 9 column 14"
            )
        );
    }
}

#[test]
fn a_namespace_that_is_not_one_is_quoted_in_the_error_not_named_in_the_prefix() {
    // `Shop` is not a DNS-1123 label; `a/b` would read as a namespace `a`.
    for namespace in ["Shop", "a/b", "\"x\\e[2J\""] {
        let text = format!("{ROUTE}metadata:\n  name: r\n  namespace: {namespace}\nspec: {{}}\n");
        let err = route_error(&text);
        assert_eq!(err.namespace(), None, "{err}");
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "routes.yaml: document 1 (HTTPRoute r): metadata.namespace: invalid namespace "
            ),
            "{shown:?}"
        );
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
    }
}

#[test]
fn an_envelope_that_does_not_read_still_names_the_namespace() {
    // No apiVersion: kind, namespace and name are all written.
    let text = "kind: HTTPRoute\nmetadata: {name: r, namespace: shop}\nspec: {}\n";
    let err = route_error(text);
    assert_eq!(
        (err.resource_kind(), err.namespace(), err.name()),
        (Some("HTTPRoute"), Some("shop"), Some("r")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("routes.yaml: document 1 (HTTPRoute shop/r): apiVersion: missing field"),
        "{err}"
    );

    // A name that is not a string: the namespace still shows whose it is.
    let text = format!("{ROUTE}metadata:\n  namespace: shop\n  name: [r]\n");
    let err = route_error(&text);
    assert_eq!((err.namespace(), err.name()), (Some("shop"), None), "{err}");
    assert!(
        err.to_string()
            .starts_with("routes.yaml: document 1 (HTTPRoute shop/): metadata.name: "),
        "{err}"
    );
}

#[test]
fn renaming_the_document_drops_the_namespace_named_before() {
    // As `sidecar inject` renames an error for an item of a `kind: List`:
    // the List's namespace is not the item's.
    let err = ResourceError::new(ResourceErrorKind::InvalidValue, "all.yaml", "bad")
        .in_document(1, Some("List"), None)
        .in_namespace(Some("shop"));
    assert_eq!(err.to_string(), "all.yaml: document 1 (List shop/): bad");
    let err = err.in_document(1, Some("Deployment"), Some("web"));
    assert_eq!(err.namespace(), None);
    assert_eq!(
        err.to_string(),
        "all.yaml: document 1 (Deployment web): bad"
    );
}
