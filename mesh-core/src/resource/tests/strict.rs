//! What a reader refuses that a lenient one would let through (a key
//! written twice, a method no client sends), and the inputs whose cost is
//! bounded.

use super::*;

#[test]
fn a_label_or_annotation_written_twice_is_an_error_naming_it() {
    let text = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  annotations:
    retry.linkerd.io/http: 5xx
    retry.linkerd.io/limit: "2"
    retry.linkerd.io/http: gateway-error
spec: {}
"#;
    let err = route_error(text);
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateField, "{err}");
    assert_eq!(
        err.field_path(),
        "metadata.annotations.retry.linkerd.io/http"
    );
    // As for a repeated field, the line is the mapping's that holds both.
    assert_eq!(err.line(), Some(6), "{err}");

    let err = route_error(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, labels: {app: a, app: b}}\nspec: {}\n",
    );
    assert_eq!(err.kind(), ResourceErrorKind::DuplicateField, "{err}");
    assert_eq!(err.field_path(), "metadata.labels.app");

    // Distinct keys read as before.
    let loaded = load::<HttpRoute>(
        "routes.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, labels: {app: a, tier: b}}\nspec: {}\n",
    )
    .unwrap();
    assert_eq!(loaded.resources[0].metadata.labels.len(), 2);
}

#[test]
fn a_grpc_expression_with_a_trailing_comment_keeps_to_its_own_part() {
    // In `(?x)` mode a `#` comments out the rest of the line: the service's
    // comment must not swallow the method's part of the path expression.
    let text = r#"apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  rules:
    - matches:
        - method:
            type: RegularExpression
            service: "(?x) emojivoto \\.v1 \\. Emoji.* # any emoji service"
            method: "List(?:All)?"
"#;
    let route = grpc_route(text).unwrap();
    let rules = route.rule_matches().unwrap();
    let post = |path: &str| http::Request::post(path).body(()).unwrap();
    assert!(rules[0][0].matches_request(&post("/emojivoto.v1.EmojiService/ListAll")));
    assert!(!rules[0][0].matches_request(&post("/emojivoto.v1.EmojiService/Vote")));
    assert!(!rules[0][0].matches_request(&post("/other.v1.EmojiService/List")));
}

#[test]
fn aliases_that_expand_a_billion_times_are_refused() {
    // Ten levels of nine aliases each: 9^10 strings if expanded.
    let mut text = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "  a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    // Refused before any field is read, unread ones too, as Kubernetes'
    // reader (which reads every field into a tree first) refuses them.
    let err = route_error(&text);
    assert_eq!(err.kind(), ResourceErrorKind::LimitExceeded, "{err}");
    assert_eq!(err.document(), Some(1), "{err}");
    assert!(err.message().contains("aliases"), "{err}");
    // A field read as a whole value would follow them: refused the same.
    text.push_str("  rules: [{filters: [{type: RequestMirror, requestMirror: *a9}]}]\n");
    let err = route_error(&text);
    assert_eq!(err.kind(), ResourceErrorKind::LimitExceeded, "{err}");
}

#[test]
fn a_method_outside_the_gateway_apis_list_is_refused_where_it_is_written() {
    // Methods are case-sensitive: `get` is no GET, and a route naming it
    // would match no request at all.
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - matches:\n        - method: get\n";
    let doc = Documents::new("routes.yaml", text).next().unwrap().unwrap();
    let parsed = doc.read::<HttpRoute>().unwrap();
    let err = parsed.value.rule_matches().unwrap_err();
    assert_eq!(err.field_path(), "spec.rules[0].matches[0].method");
    assert!(matches!(err.reason(), InvalidMatchReason::UnknownMethod));
    let err = parsed.context.match_error(err);
    assert_eq!(err.line(), Some(7), "{err}");
    for method in ["GET", "PATCH", "CONNECT"] {
        let m = HttpRouteMatch {
            method: Some(method.into()),
            ..Default::default()
        };
        assert!(m.to_route_match().is_ok(), "{method}");
    }
}

#[test]
fn hostnames_the_gateway_api_refuses_are_refused_where_they_are_written() {
    // A port, a scheme, a bare `*` or a misplaced wildcard make a hostname
    // that no request's host equals: the route would match nothing.
    let route = |hostname: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n  hostnames:\n    - books.shop\n    - {hostname:?}\n"
        )
    };
    for bad in [
        "books.shop:8080",
        "http://books.shop",
        "*",
        "*.",
        "a*.shop",
        "books.*.shop",
        "**.shop",
        "books..shop",
        "-books.shop",
        "books-.shop",
        "books.shop.",
        "books_shop",
        "Books.Shop",
        "10.0.0.1",
        "",
        &format!("{}.shop", "a".repeat(64)),
        &["a"; 128].join("."),
    ] {
        let err = route_error(&route(bad));
        assert_eq!(
            err.kind(),
            ResourceErrorKind::InvalidValue,
            "{bad:?}: {err}"
        );
        assert_eq!(err.field_path(), "spec.hostnames[1]", "{bad:?}: {err}");
        assert_eq!(err.line(), Some(7), "{bad:?}: {err}");
        assert!(err.message().contains("hostname"), "{err}");
    }
    for good in [
        "books.shop.svc.cluster.local",
        "*.example.com",
        "a-1.b2",
        "localhost",
        "1a.example",
        &["a"; 127].join("."),
    ] {
        let loaded = load::<HttpRoute>("routes.yaml", &route(good)).unwrap();
        assert_eq!(loaded.resources[0].spec.hostnames[1], good);
    }
    let grpc = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  hostnames: [\"grpc.shop:443\"]\n";
    let doc = Documents::new("g.yaml", grpc).next().unwrap().unwrap();
    let err = doc.read::<GrpcRoute>().unwrap_err();
    assert_eq!(err.field_path(), "spec.hostnames[0]", "{err}");
}

#[test]
fn a_bad_duration_is_located_at_its_own_line_not_its_mappings() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - timeouts:\n        backendRequest: 1s\n        request: 10 seconds\n";
    let err = route_error(text);
    assert_eq!(err.field_path(), "spec.rules[0].timeouts.request");
    assert_eq!(err.line(), Some(8), "{err}");
    assert_eq!(err.location().map(|at| at.column), Some(18), "{err}");
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - retry:\n        attempts: 2\n        backoff: 1.5s\n";
    assert_eq!(route_error(text).line(), Some(8));
}

#[test]
fn names_and_namespaces_kubernetes_refuses_are_refused_where_they_are_written() {
    // `Books` is not `books`: a route named so, or in namespace `Shop`,
    // would never be the one a reference or a workload's namespace names.
    let route = |metadata: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  labels: {{app: a}}\n{metadata}spec: {{}}\n"
        )
    };
    let long_name = ["a"; 127].join(".");
    for (metadata, field) in [
        ("  name: Books\n", "metadata.name"),
        ("  name: books_v1\n", "metadata.name"),
        ("  name: -books\n", "metadata.name"),
        ("  name: books.\n", "metadata.name"),
        ("  name: books..v1\n", "metadata.name"),
        ("  name: \"\"\n", "metadata.name"),
        ("  name: books/v1\n", "metadata.name"),
        (&format!("  name: {long_name}.a\n"), "metadata.name"),
        ("  name: books\n  namespace: Shop\n", "metadata.namespace"),
        (
            "  name: books\n  namespace: shop.prod\n",
            "metadata.namespace",
        ),
        ("  name: books\n  namespace: shop-\n", "metadata.namespace"),
        (
            &format!("  name: books\n  namespace: {}\n", "a".repeat(64)),
            "metadata.namespace",
        ),
    ] {
        let err = route_error(&route(metadata));
        assert_eq!(
            err.kind(),
            ResourceErrorKind::InvalidValue,
            "{metadata}: {err}"
        );
        assert_eq!(err.field_path(), field, "{err}");
        let line = if field == "metadata.name" { 5 } else { 6 };
        assert_eq!(err.line(), Some(line), "{err}");
    }
    for metadata in [
        "  name: books\n".to_owned(),
        "  name: books.shop.svc.cluster.local\n  namespace: shop-1\n".to_owned(),
        "  name: 1books\n  namespace: ''\n".to_owned(),
        format!("  name: {long_name}\n  namespace: {}\n", "a".repeat(63)),
    ] {
        assert!(
            load::<HttpRoute>("r.yaml", &route(&metadata)).is_ok(),
            "{metadata}"
        );
    }
}

#[test]
fn a_filter_config_its_type_does_not_name_is_refused_not_dropped() {
    // The Gateway API requires each filter to hold only the field its type
    // names; read leniently, the response edits here would be lost.
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - filters:\n        - type: RequestHeaderModifier\n          requestHeaderModifier: {set: [{name: x-a, value: '1'}]}\n          responseHeaderModifier: {remove: [server]}\n";
    let err = route_error(text);
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
    assert_eq!(err.field_path(), "spec.rules[0].filters[0]", "{err}");
    assert!(err.message().contains("responseHeaderModifier"), "{err}");
    assert!(err.message().contains("RequestHeaderModifier"), "{err}");
    let mirror = text.replace(
        "responseHeaderModifier: {remove: [server]}",
        "requestMirror: {backendRef: {name: shadow}}",
    );
    assert!(route_error(&mirror).message().contains("requestMirror"));
    let unsupported = text
        .replace("type: RequestHeaderModifier", "type: URLRewrite")
        .replace("requestHeaderModifier:", "urlRewrite:");
    assert!(
        route_error(&unsupported)
            .message()
            .contains("responseHeaderModifier")
    );
    // Each with its own field reads.
    let fine = text.replace(
        "          responseHeaderModifier: {remove: [server]}\n",
        "        - type: ResponseHeaderModifier\n          responseHeaderModifier: {remove: [server]}\n",
    );
    let loaded = load::<HttpRoute>("r.yaml", &fine).unwrap();
    assert_eq!(loaded.resources[0].spec.rules[0].filters.len(), 2);
}

#[test]
fn lists_over_the_gateway_apis_limits_are_refused_naming_the_list() {
    let route = |spec: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n{spec}"
        )
    };
    let list = |entry: &str, n: usize| format!("[{}]", vec![entry; n].join(", "));
    let rules = |matches: &[usize]| {
        let rules: Vec<_> = matches
            .iter()
            .map(|&n| format!("{{matches: {}}}", list("{path: {value: /a}}", n)))
            .collect();
        format!("  rules: [{}]\n", rules.join(", "))
    };
    let header = "{name: x-a, value: b}";
    let hostnames = |n: usize| {
        let names: Vec<_> = (0..n).map(|i| format!("h{i}.example")).collect();
        format!("  hostnames: [{}]\n", names.join(", "))
    };
    for (spec, field) in [
        (rules(&[0; 17]), "spec.rules"),
        (rules(&[65]), "spec.rules[0].matches"),
        (rules(&[64, 64, 1]), "spec.rules"),
        (hostnames(17), "spec.hostnames"),
        (
            format!("  parentRefs: {}\n", list("{name: p}", 33)),
            "spec.parentRefs",
        ),
        (
            format!(
                "  rules: [{{filters: {}}}]\n",
                list("{type: RequestMirror}", 17)
            ),
            "spec.rules[0].filters",
        ),
        (
            format!("  rules: [{{backendRefs: {}}}]\n", list("{name: b}", 17)),
            "spec.rules[0].backendRefs",
        ),
        (
            format!(
                "  rules: [{{matches: [{{headers: {}}}]}}]\n",
                list(header, 17)
            ),
            "spec.rules[0].matches[0].headers",
        ),
        (
            format!(
                "  rules: [{{matches: [{{queryParams: {}}}]}}]\n",
                list(header, 17)
            ),
            "spec.rules[0].matches[0].queryParams",
        ),
        (
            format!(
                "  rules: [{{filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {{add: {}}}}}]}}]\n",
                list(header, 17)
            ),
            "spec.rules[0].filters[0].requestHeaderModifier.add",
        ),
    ] {
        let err = route_error(&route(&spec));
        assert_eq!(
            err.kind(),
            ResourceErrorKind::InvalidValue,
            "{field}: {err}"
        );
        assert_eq!(err.field_path(), field, "{err}");
        assert!(
            err.message().contains("Gateway API allows at most"),
            "{err}"
        );
        assert!(err.line().is_some(), "{err}");
    }
    // At the limits, a route reads.
    for spec in [
        rules(&[0; 16]),
        rules(&[64, 64]),
        hostnames(16),
        format!("  parentRefs: {}\n", list("{name: p}", 32)),
    ] {
        assert!(load::<HttpRoute>("r.yaml", &route(&spec)).is_ok(), "{spec}");
    }
    let grpc = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g}}\nspec:\n  rules: [{}]\n",
        vec!["{matches: [{method: {method: M}}]}"; 17].join(", ")
    );
    let doc = Documents::new("g.yaml", &grpc).next().unwrap().unwrap();
    let err = doc.read::<GrpcRoute>().unwrap_err();
    assert_eq!(err.field_path(), "spec.rules", "{err}");
}

#[test]
fn ports_of_zero_and_weights_over_a_million_are_refused() {
    // The Gateway API's PortNumber is 1 to 65535 and a backend's weight 0
    // to 1,000,000: a parent on port 0 is no port a request arrives on.
    let route = |spec: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n{spec}"
        )
    };
    for (spec, field) in [
        (
            "  parentRefs: [{kind: Service, group: core, name: p, port: 0}]\n",
            "spec.parentRefs[0].port",
        ),
        (
            "  rules: [{backendRefs: [{name: b, port: 0}]}]\n",
            "spec.rules[0].backendRefs[0].port",
        ),
        (
            "  rules: [{backendRefs: [{name: b, port: 80, weight: 1000001}]}]\n",
            "spec.rules[0].backendRefs[0].weight",
        ),
    ] {
        let err = route_error(&route(spec));
        assert_eq!(err.kind(), ResourceErrorKind::InvalidValue, "{err}");
        assert_eq!(err.field_path(), field, "{err}");
    }
    let fine = "  parentRefs: [{kind: Service, group: core, name: p, port: 65535}]\n  rules: [{backendRefs: [{name: b, port: 1, weight: 1000000}, {name: c, port: 2, weight: 0}]}]\n";
    assert!(load::<HttpRoute>("r.yaml", &route(fine)).is_ok());
}
