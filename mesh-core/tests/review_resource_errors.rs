//! Every value the reader refuses is named with its document, its kind
//! and name, its field path and its line, however the text is written
//! (flow style, a value spread over lines, a document after a `---` with
//! a comment, CRLF line endings, a byte order mark); and the reader
//! refuses what the Gateway API's validation refuses, as the API server
//! would, rather than accept a route that means something else there.

use mesh_core::resource::{Documents, GatewayDuration, GrpcRoute, HttpRoute, ResourceError};

/// Reads every `HTTPRoute` and `GRPCRoute` of `text` as the mesh's readers
/// do: the document, then its matches, then its filters.
fn check(text: &str) -> Result<usize, ResourceError> {
    let mut routes = 0;
    for doc in Documents::new("routes.yaml", text) {
        let doc = doc?;
        let (route, context) = if doc.is::<GrpcRoute>() {
            let parsed = doc.read::<GrpcRoute>()?;
            let route = parsed
                .value
                .to_http_route()
                .map_err(|e| parsed.context.match_error(e))?;
            (route, parsed.context)
        } else if doc.is::<HttpRoute>() {
            let parsed = doc.read::<HttpRoute>()?;
            (parsed.value, parsed.context)
        } else {
            continue;
        };
        let matches = route.rule_matches().map_err(|e| context.match_error(e))?;
        for (i, (rule, matches)) in route.spec.rules.iter().zip(&matches).enumerate() {
            rule.route_filters(matches)
                .map_err(|e| context.filter_error(e.within(&format!("spec.rules[{i}]"))))?;
        }
        routes += 1;
    }
    Ok(routes)
}

/// The error `text` is refused with, checked to name the document, the
/// route and `field` on `line`.
fn refused(text: &str, document: usize, field: &str, line: usize) -> ResourceError {
    let err = check(text).expect_err(text);
    assert_eq!(err.document(), Some(document), "{err}");
    assert_eq!(err.resource_kind(), Some("HTTPRoute"), "{err}");
    assert_eq!(err.name(), Some("r"), "{err}");
    assert_eq!(err.field_path(), field, "{err}");
    assert_eq!(err.line(), Some(line), "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "routes.yaml: document {document} (HTTPRoute r): {field}: "
        )),
        "{shown}"
    );
    assert!(shown.ends_with(&format!(
        "at line {line} column {}",
        err.location().unwrap().column
    )));
    err
}

const HEAD: &str =
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n";

#[test]
fn a_value_in_flow_style_is_named_where_it_is_written() {
    let text = format!(
        "{HEAD}spec: {{rules: [{{matches: [{{path: {{type: PathPrefix, value: \"/a//b\"}}}}]}}]}}\n"
    );
    let err = refused(&text, 1, "spec.rules[0].matches[0].path.value", 4);
    assert_eq!(err.location().unwrap().column, 60, "{err}");

    // A flow mapping spread over lines: the line of the value, not of the
    // mapping's start.
    let text = format!(
        "{HEAD}spec: {{rules: [{{matches: [\n  {{path: {{type: Exact, value: /ok}}}},\n  {{path: {{type: PathPrefix,\n     value: \"/a/./b\"}}}}]}}]}}\n"
    );
    refused(&text, 1, "spec.rules[0].matches[1].path.value", 7);
}

#[test]
fn a_value_written_over_several_lines_is_named_at_its_start() {
    let text = format!(
        "{HEAD}spec:\n  rules:\n    - matches:\n        - path:\n            type: Exact\n            value: >-\n              /a//b\n"
    );
    refused(&text, 1, "spec.rules[0].matches[0].path.value", 9);
    let text = format!(
        "{HEAD}spec:\n  rules:\n    - matches:\n        - headers:\n            - type: RegularExpression\n              name: x-a\n              value: \"abc\n                (unclosed\"\n"
    );
    let err = refused(&text, 1, "spec.rules[0].matches[0].headers[0].value", 10);
    assert!(err.message().contains("`abc (unclosed`"), "{err}");
}

#[test]
fn a_document_after_a_separator_with_a_comment_keeps_its_number_and_lines() {
    // Read after the document is parsed (a path), and while it is (a
    // duration).
    let text = format!(
        "{SERVICE}--- # the route\n# its rules\n{HEAD}spec:\n  rules:\n    - matches:\n        - path: {{type: Exact, value: no-slash}}\n"
    );
    refused(&text, 2, "spec.rules[0].matches[0].path.value", 12);
    let text = format!(
        "{SERVICE}--- # the route\n{HEAD}spec:\n  rules:\n    - timeouts: {{request: 1.5s}}\n"
    );
    refused(&text, 2, "spec.rules[0].timeouts.request", 10);
}

#[test]
fn crlf_line_endings_count_lines_as_lf_does() {
    let crlf = |text: String| text.replace('\n', "\r\n");
    let text = format!(
        "{SERVICE}---\n{HEAD}spec:\n  rules:\n    - matches:\n        - path: {{type: Exact, value: no-slash}}\n"
    );
    refused(&crlf(text), 2, "spec.rules[0].matches[0].path.value", 11);
    let text = format!("{HEAD}spec:\n  hostnames:\n    - ok.example\n    - Bad.example\n");
    refused(&crlf(text), 1, "spec.hostnames[1]", 7);
    let text = format!(
        "{HEAD}spec:\n  rules:\n    - filters:\n        - type: RequestRedirect\n          requestRedirect:\n            statusCode: 418\n"
    );
    refused(
        &crlf(text),
        1,
        "spec.rules[0].filters[0].requestRedirect.statusCode",
        9,
    );
}

#[test]
fn a_byte_order_mark_moves_no_line() {
    let text = format!(
        "\u{feff}{SERVICE}---\n{HEAD}spec:\n  rules:\n    - matches:\n        - headers: [{{name: \"bad name\", value: x}}]\n"
    );
    let err = refused(&text, 2, "spec.rules[0].matches[0].headers[0].name", 11);
    assert!(err.message().starts_with("invalid header name"), "{err}");
}

/// A route whose one match is `entries` (YAML flow mappings) in list
/// `list` (`headers` or `queryParams`), the first on line 8.
fn match_list(list: &str, entries: &[&str]) -> String {
    let entries: String = entries
        .iter()
        .map(|e| format!("            - {e}\n"))
        .collect();
    format!("{HEAD}spec:\n  rules:\n    - matches:\n        - {list}:\n{entries}")
}

#[test]
fn a_header_or_query_name_written_twice_in_a_match_is_refused() {
    // The API server keeps these lists as maps keyed by `name`: it
    // refuses a second entry of one name, where the reader ignored it.
    let text = match_list(
        "headers",
        &[
            "{name: x-a, value: \"1\"}",
            "{name: x-env, value: a}",
            "{name: x-env, value: b}",
        ],
    );
    let err = refused(&text, 1, "spec.rules[0].matches[0].headers[2].name", 10);
    assert!(
        err.message().starts_with("headers[1] has this name too"),
        "{err}"
    );
    let text = match_list(
        "queryParams",
        &["{name: v, value: \"1\"}", "{name: v, value: \"2\"}"],
    );
    let err = refused(&text, 1, "spec.rules[0].matches[0].queryParams[1].name", 9);
    assert!(
        err.message()
            .starts_with("queryParams[0] has this name too"),
        "{err}"
    );

    // Names that differ in case are two names to the API server; of two
    // headers the first counts, two query parameters are both matched.
    let text = match_list(
        "headers",
        &["{name: x-env, value: a}", "{name: X-Env, value: b}"],
    );
    assert_eq!(check(&text).unwrap(), 1);
    let text = match_list(
        "queryParams",
        &["{name: v, value: a}", "{name: V, value: b}"],
    );
    assert_eq!(check(&text).unwrap(), 1);

    let grpc = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g}\nspec:\n  rules:\n    - matches:\n        - method: {service: a.B}\n          headers:\n            - {name: x-a, value: \"1\"}\n            - {name: x-a, value: \"2\"}\n";
    let err = check(grpc).unwrap_err();
    assert_eq!(
        err.field_path(),
        "spec.rules[0].matches[0].headers[1].name",
        "{err}"
    );
    assert_eq!(err.line(), Some(10), "{err}");
}

#[test]
fn a_prefix_with_a_double_slash_is_refused_as_the_api_server_refuses_it() {
    // HTTPPathMatch: "must not contain '//'", at the end of a prefix too.
    for value in ["/foo//", "//", "/a//b"] {
        let text = format!(
            "{HEAD}spec:\n  rules:\n    - matches:\n        - path: {{type: PathPrefix, value: \"{value}\"}}\n"
        );
        let err = refused(&text, 1, "spec.rules[0].matches[0].path.value", 7);
        assert!(err.message().contains(&format!("`{value}`")), "{err}");
    }
    for value in ["/", "/foo/", "/foo"] {
        let text = format!(
            "{HEAD}spec:\n  rules:\n    - matches:\n        - path: {{type: PathPrefix, value: \"{value}\"}}\n"
        );
        assert_eq!(check(&text).unwrap(), 1, "{value}");
    }
}

#[test]
fn names_and_values_are_held_to_the_gateway_apis_lengths_and_characters() {
    // Query parameter names are `HTTPHeaderName`s: tokens of 1 to 256
    // characters. Values are 1 to 4096 (headers) or 1024 (query)
    // characters; a path at most 1024.
    let long_name = "a".repeat(257);
    for (list, entry, field, message) in [
        (
            "headers",
            format!("{{name: {long_name}, value: x}}"),
            "name",
            "257 characters",
        ),
        (
            "queryParams",
            format!("{{name: {long_name}, value: x}}"),
            "name",
            "257 characters",
        ),
        (
            "queryParams",
            "{name: \"\", value: x}".to_owned(),
            "name",
            "it is empty",
        ),
        (
            "queryParams",
            "{name: \"a=b\", value: x}".to_owned(),
            "name",
            "invalid header name",
        ),
        (
            "queryParams",
            "{name: \"a b\", value: x}".to_owned(),
            "name",
            "invalid header name",
        ),
        (
            "headers",
            "{name: x-a, value: \"\"}".to_owned(),
            "value",
            "it is empty",
        ),
        (
            "queryParams",
            "{name: a, value: \"\"}".to_owned(),
            "value",
            "it is empty",
        ),
        (
            "headers",
            format!("{{name: x-a, value: {}}}", "v".repeat(4097)),
            "value",
            "4097",
        ),
        (
            "queryParams",
            format!("{{name: a, value: {}}}", "v".repeat(1025)),
            "value",
            "1025",
        ),
    ] {
        let text = match_list(list, &[&entry]);
        let err = refused(
            &text,
            1,
            &format!("spec.rules[0].matches[0].{list}[0].{field}"),
            8,
        );
        assert!(err.message().contains(message), "{entry}: {err}");
    }
    for entry in [
        format!("{{name: {}, value: {}}}", "a".repeat(256), "v".repeat(1024)),
        "{name: \"x-a!#$%&'*+-.^_`|~\", value: \" \"}".to_owned(),
    ] {
        assert_eq!(
            check(&match_list("queryParams", &[&entry])).unwrap(),
            1,
            "{entry}"
        );
    }
    assert_eq!(
        check(&match_list(
            "headers",
            &[&format!("{{name: x-a, value: {}}}", "v".repeat(4096))]
        ))
        .unwrap(),
        1
    );

    for (kind, value) in [
        ("Exact", format!("/{}", "a".repeat(1024))),
        ("RegularExpression", format!("/{}", "a".repeat(1024))),
    ] {
        let text = format!(
            "{HEAD}spec:\n  rules:\n    - matches:\n        - path: {{type: {kind}, value: {value}}}\n"
        );
        let err = refused(&text, 1, "spec.rules[0].matches[0].path.value", 7);
        assert!(err.message().contains("1025 characters"), "{err}");
        let text = text.replace(&value, &value[..1024]);
        assert_eq!(check(&text).unwrap(), 1, "{kind}");
    }
    // A GRPCRoute's path is built from its service and method, which may
    // be 1024 characters each: the limit is on what is written.
    let grpc = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g}}\nspec:\n  rules:\n    - matches:\n        - method: {{type: RegularExpression, service: \"{}\", method: \"{}\"}}\n",
        "s".repeat(1000),
        "m".repeat(1000)
    );
    assert_eq!(check(&grpc).unwrap(), 1);
}

#[test]
fn durations_follow_gep_2257() {
    use std::time::Duration;
    // One to four components of one to five digits and h, m, s or ms;
    // the GEP allows any order and repeated units (the total is the sum).
    for (text, expected) in [
        ("0s", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("1h2m3s4ms", Duration::from_millis(3_723_004)),
        ("00060m", Duration::from_secs(3600)),
        ("99999h", Duration::from_secs(99_999 * 3600)),
        ("1ms1s", Duration::from_millis(1001)),
        ("1h1h", Duration::from_secs(7200)),
        ("1s500ms", Duration::from_millis(1500)),
    ] {
        assert_eq!(
            GatewayDuration::parse(text).map(GatewayDuration::get),
            Ok(expected),
            "{text}"
        );
    }
    for bad in [
        "",
        "1.5s",
        "1",
        "s",
        "1d",
        "1us",
        "1ns",
        "1H",
        "1S",
        "-1s",
        "+1s",
        "1 s",
        " 1s",
        "1s ",
        "123456s",
        "1h2m3s4ms5ms",
        "1m1m1m1m1m",
        "1e3s",
        "１s",
    ] {
        let err = GatewayDuration::parse(bad).unwrap_err();
        assert_eq!(err.input(), bad);
        let text =
            format!("{HEAD}spec:\n  rules:\n    - timeouts: {{backendRequest: \"{bad}\"}}\n");
        let err = refused(&text, 1, "spec.rules[0].timeouts.backendRequest", 6);
        assert!(err.message().starts_with("invalid duration"), "{err}");
    }
}

#[test]
fn header_modifier_names_and_values_are_held_to_the_gateway_apis_lengths() {
    // HTTPHeader: a name of at most 256 characters, a value of 1 to 4096.
    let modifier = |entry: &str| {
        format!(
            "{HEAD}spec:\n  rules:\n    - filters:\n        - type: ResponseHeaderModifier\n          responseHeaderModifier:\n            add:\n              - {entry}\n"
        )
    };
    let long_name = "a".repeat(257);
    for (entry, field, message) in [
        (
            "{name: x-a, value: \"\"}".to_owned(),
            "value",
            "the value is empty",
        ),
        (
            format!("{{name: x-a, value: {}}}", "v".repeat(4097)),
            "value",
            "4097 characters",
        ),
        (
            format!("{{name: {long_name}, value: x}}"),
            "name",
            "257 characters",
        ),
    ] {
        let err = refused(
            &modifier(&entry),
            1,
            &format!("spec.rules[0].filters[0].responseHeaderModifier.add[0].{field}"),
            10,
        );
        assert!(err.message().contains(message), "{err}");
    }
    let entry = format!("{{name: {}, value: {}}}", "a".repeat(256), "v".repeat(4096));
    assert_eq!(check(&modifier(&entry)).unwrap(), 1);
    let remove = format!(
        "{HEAD}spec:\n  rules:\n    - filters:\n        - type: RequestHeaderModifier\n          requestHeaderModifier:\n            remove: [x-a, {long_name}]\n"
    );
    let err = refused(
        &remove,
        1,
        "spec.rules[0].filters[0].requestHeaderModifier.remove[1]",
        9,
    );
    assert!(err.message().contains("257 characters"), "{err}");
}

#[test]
fn a_document_whose_envelope_does_not_read_is_still_named_by_its_kind_and_name() {
    // No apiVersion: the kind and name are written, and named.
    let text = format!("{SERVICE}---\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec: {{}}\n");
    let err = check(&text).unwrap_err();
    assert_eq!(err.document(), Some(2), "{err}");
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPRoute"), Some("r")),
        "{err}"
    );
    assert_eq!(err.field_path(), "apiVersion", "{err}");
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(
        err.to_string()
            .starts_with("routes.yaml: document 2 (HTTPRoute r): apiVersion: missing field"),
        "{err}"
    );
    // A name that is not a string: the kind still names the document.
    let text = format!(
        "{SERVICE}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: [r]\n"
    );
    let err = check(&text).unwrap_err();
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPRoute"), None),
        "{err}"
    );
    assert_eq!(err.field_path(), "metadata.name", "{err}");
    assert_eq!(err.line(), Some(8), "{err}");
    assert!(
        err.to_string()
            .starts_with("routes.yaml: document 2 (HTTPRoute): metadata.name: "),
        "{err}"
    );
    // Without a kind, a name could be any kind's: neither is named.
    let text = format!("{SERVICE}---\napiVersion: v1\nmetadata: {{name: x}}\n");
    let err = check(&text).unwrap_err();
    assert_eq!((err.resource_kind(), err.name()), (None, None), "{err}");
    assert!(
        err.to_string()
            .starts_with("routes.yaml: document 2: kind: missing field"),
        "{err}"
    );
}
