use std::time::Duration;

use serde::Deserialize;

use super::*;

const GUIDE_POLICY: &str = include_str!("testdata/guide-policy.yaml");
const GUIDE_RETRIES: &str = include_str!("testdata/guide-retries.yaml");

mod mutated;
mod namespace;
mod strict;

fn documents(text: &str) -> Vec<Document<'_>> {
    Documents::new("test.yaml", text)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn route_error(text: &str) -> ResourceError {
    load::<HttpRoute>("routes.yaml", text).unwrap_err()
}

#[test]
fn the_guides_policy_manifests_split_into_named_documents() {
    let docs = documents(GUIDE_POLICY);
    let seen: Vec<_> = docs
        .iter()
        .map(|d| (d.index(), d.kind(), d.name(), d.api_version().as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                1,
                "Server",
                Some("web-server-80"),
                "policy.linkerd.io/v1beta2"
            ),
            (
                2,
                "ServerAuthorization",
                Some("web-server-80-auth"),
                "policy.linkerd.io/v1beta2"
            ),
        ]
    );
    assert_eq!(docs[0].api_version().group(), "policy.linkerd.io");
    assert_eq!(docs[0].api_version().version(), "v1beta2");
    assert_eq!(docs[0].envelope().metadata.namespace, None);
}

#[test]
fn the_guides_http_route_parses_and_reports_what_it_does_not_model() {
    let loaded = load::<HttpRoute>("web-retry-policy.yaml", GUIDE_RETRIES).unwrap();

    // The ServiceProfile is another kind: named, not dropped.
    assert_eq!(loaded.other.len(), 1);
    let profile = &loaded.other[0];
    assert_eq!(profile.kind, "ServiceProfile");
    assert_eq!(
        profile.name.as_deref(),
        Some("emoji.emojivoto.svc.cluster.local")
    );
    assert_eq!(profile.document, 1);
    assert_eq!(
        profile.to_string(),
        "web-retry-policy.yaml: document 1 (ServiceProfile emojivoto/emoji.emojivoto.svc.cluster.local, policy.linkerd.io/v1beta1)"
    );

    let [route] = &loaded.resources[..] else {
        panic!("one route: {:?}", loaded.resources)
    };
    assert_eq!(route.metadata.name, "web-to-emoji-retries");
    assert_eq!(route.metadata.namespace.as_deref(), Some("emojivoto"));
    let parent = &route.spec.parent_refs[0];
    assert!(parent.is_service() && !parent.is_server());
    assert_eq!((parent.name.as_str(), parent.port), ("emoji", None));

    let rule = &route.spec.rules[0];
    assert_eq!(
        rule.filters,
        [HttpRouteFilter::Unsupported {
            type_name: "RequestMirror".into()
        }]
    );
    assert_eq!(
        rule.unsupported_filters().collect::<Vec<_>>(),
        ["RequestMirror"]
    );
    assert_eq!(rule.backend_refs[0].name, "emoji");
    assert_eq!(rule.backend_refs[0].port, Some(8080));
    let timeouts = rule.timeouts.unwrap();
    assert_eq!(
        timeouts.request.map(GatewayDuration::get),
        Some(Duration::from_secs(10))
    );
    assert_eq!(timeouts.backend_request, None);
    // `retries` is not a Gateway API field (GEP-1731 spells it `retry`).
    assert_eq!(rule.retry, None);
    let ignored: Vec<_> = loaded.ignored.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(ignored, ["spec.rules[0].retries"]);
    assert_eq!(
        loaded.ignored[0].to_string(),
        "web-retry-policy.yaml: document 2 (HTTPRoute emojivoto/web-to-emoji-retries): spec.rules[0].retries"
    );

    let matches = route.rule_matches().unwrap();
    let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
    assert!(matches[0][0].matches_request(&get("/api/emoji/1")));
    assert!(!matches[0][0].matches_request(&get("/api/emojis")));
    let post = http::Request::post("/api/emoji").body(()).unwrap();
    assert!(!matches[0][0].matches_request(&post));
}

#[test]
fn gateway_routes_read_every_match_kind_timeout_retry_and_annotation() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books
  namespace: shop
  annotations:
    retry.linkerd.io/http: 5xx
    timeout.linkerd.io/request: 2s
spec:
  parentRefs:
    - { group: policy.linkerd.io, kind: Server, name: books-http }
  hostnames: [books.shop.svc.cluster.local]
  rules:
    - name: reads
      matches:
        - path: { type: RegularExpression, value: "/books/[0-9]+" }
          method: GET
          headers: [{ name: X-Tenant, value: blue }]
          queryParams: [{ type: RegularExpression, name: v, value: "[12]" }]
        - path: { type: Exact, value: /books }
      timeouts: { request: 1m30s, backendRequest: 500ms }
      retry: { codes: [502, 503], attempts: 2, backoff: 100ms }
    - {}
"#;
    let route = load::<HttpRoute>("r.yaml", text)
        .unwrap()
        .resources
        .remove(0);
    assert!(route.spec.parent_refs[0].is_server());
    assert_eq!(route.spec.hostnames, ["books.shop.svc.cluster.local"]);
    assert_eq!(
        route.metadata.annotation("retry.linkerd.io/http"),
        Some("5xx")
    );
    assert_eq!(
        route.metadata.annotation("timeout.linkerd.io/request"),
        Some("2s")
    );
    let rule = &route.spec.rules[0];
    assert_eq!(rule.name.as_deref(), Some("reads"));
    let timeouts = rule.timeouts.unwrap();
    assert_eq!(timeouts.request.unwrap().get(), Duration::from_secs(90));
    assert_eq!(
        timeouts.backend_request.unwrap().get(),
        Duration::from_millis(500)
    );
    let retry = rule.retry.as_ref().unwrap();
    assert_eq!(
        (retry.codes.as_slice(), retry.attempts),
        (&[502, 503][..], Some(2))
    );
    assert_eq!(retry.backoff.unwrap().get(), Duration::from_millis(100));

    let matches = route.rule_matches().unwrap();
    let req = |method: &str, uri: &str, tenant: Option<&str>| {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(t) = tenant {
            b = b.header("x-tenant", t);
        }
        b.body(()).unwrap()
    };
    let first = &matches[0][0];
    assert!(first.matches_request(&req("GET", "/books/42?v=2", Some("blue"))));
    assert!(!first.matches_request(&req("GET", "/books/42?v=3", Some("blue"))));
    assert!(!first.matches_request(&req("GET", "/books/42?v=2", None)));
    assert!(!first.matches_request(&req("PUT", "/books/42?v=2", Some("blue"))));
    assert!(!first.matches_request(&req("GET", "/books/42/x?v=2", Some("blue"))));
    assert!(matches[0][1].matches_request(&req("DELETE", "/books", None)));
    assert!(!matches[0][1].matches_request(&req("DELETE", "/books/1", None)));
    // A rule without matches matches everything.
    assert_eq!(matches[1].len(), 1);
    assert!(matches[1][0].is_empty());
}

#[test]
fn known_filters_are_typed() {
    let text = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: f }
spec:
  rules:
    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-a, value: "1" }], remove: [x-b] }
        - type: RequestRedirect
          requestRedirect: { scheme: https, statusCode: 301, path: { type: ReplaceFullPath, replaceFullPath: /new } }
    # The Gateway API refuses a rewrite beside a redirect: it has a rule of its own.
    - filters:
        - type: URLRewrite
          urlRewrite: { hostname: elsewhere }
"#;
    let route = load::<HttpRoute>("f.yaml", text).unwrap();
    assert!(route.ignored.is_empty(), "{:?}", route.ignored);
    let filters = &route.resources[0].spec.rules[0].filters;
    let HttpRouteFilter::RequestHeaderModifier(m) = &filters[0] else {
        panic!("{filters:?}")
    };
    assert_eq!(
        (m.set[0].name.as_str(), m.remove.as_slice()),
        ("x-a", &["x-b".to_owned()][..])
    );
    let HttpRouteFilter::RequestRedirect(r) = &filters[1] else {
        panic!("{filters:?}")
    };
    assert_eq!(
        (r.scheme.as_deref(), r.status_code),
        (Some("https"), Some(301))
    );
    assert_eq!(
        r.path.as_ref().unwrap().kind,
        PathModifierType::ReplaceFullPath
    );
    let rewrite = &route.resources[0].spec.rules[1].filters;
    assert_eq!(rewrite[0].type_name(), "URLRewrite");

    let err = route_error(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: f}\nspec:\n  rules:\n  - filters:\n    - type: RequestRedirect\n",
    );
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue);
    assert!(err.message().contains("requestRedirect"), "{err}");
    assert_eq!(err.field_path(), "spec.rules[0].filters[0]");
}

#[test]
fn syntax_errors_name_the_document_and_the_absolute_line() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n";
    let err = Documents::new("bad.yaml", text)
        .find_map(Result::err)
        .unwrap();
    assert_eq!(err.kind(), ResourceErrorKind::Syntax);
    assert_eq!(err.document(), Some(2));
    assert_eq!(err.origin(), "bad.yaml");
    assert!(err.line().unwrap() >= 6, "{err}");
    assert!(
        err.to_string().starts_with("bad.yaml: document 2: "),
        "{err}"
    );
}

#[test]
fn a_syntax_error_after_a_readable_envelope_is_a_syntax_error() {
    for (text, line) in [
        (
            "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: [unclosed\n",
            5,
        ),
        ("apiVersion: v1\nkind: A\nspec:\n  a: 1\n b: 2\n", 5),
        (
            "apiVersion: v1\nkind: A\n---\nkind: B\napiVersion: v1\nx: \"\n",
            7,
        ),
    ] {
        let err = Documents::new("s.yaml", text)
            .find_map(Result::err)
            .unwrap();
        assert_eq!(err.kind(), ResourceErrorKind::Syntax, "{err}");
        assert_eq!(err.line(), Some(line), "{err}");
    }
}

#[test]
fn iteration_stops_at_the_first_error() {
    let text = "kind: A\n---\napiVersion: v1\nkind: B\n";
    let items: Vec<_> = Documents::new("x", text).collect();
    assert_eq!(items.len(), 1);
    let err = items.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ResourceErrorKind::MissingField);
    assert_eq!(err.field_path(), "apiVersion");
    assert_eq!(err.document(), Some(1));
    assert_eq!(err.line(), Some(1));
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let text =
        "---\n# nothing here\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n";
    let docs = documents(text);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].index(), 2);
    assert!(documents("").is_empty());
    assert!(documents("# only a comment\n").is_empty());
}

#[test]
fn missing_fields_name_the_field_kind_name_and_line() {
    let text = r#"apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
    - kind: Service
"#;
    let err = route_error(text);
    assert_eq!(err.kind(), ResourceErrorKind::MissingField);
    assert_eq!(err.document(), Some(2));
    assert_eq!(
        (err.resource_kind(), err.name()),
        (Some("HTTPRoute"), Some("r"))
    );
    assert_eq!(err.field_path(), "spec.parentRefs[0].name");
    assert_eq!(err.line(), Some(11));
    assert_eq!(
        err.to_string(),
        "routes.yaml: document 2 (HTTPRoute r): spec.parentRefs[0].name: missing field `name` at line 11 column 7"
    );

    let err = route_error(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {}\nspec: {}\n",
    );
    assert_eq!(
        (err.kind(), err.field_path()),
        (ResourceErrorKind::MissingField, "metadata.name")
    );
}

#[test]
fn values_of_the_wrong_type_or_form_are_located() {
    let err = route_error(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - timeouts: {request: 10 seconds}\n",
    );
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(err.field_path(), "spec.rules[0].timeouts.request");
    assert_eq!(err.line(), Some(6));
    assert!(
        err.message().starts_with("invalid duration \"10 seconds\""),
        "{err}"
    );

    let err = route_error(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  rules:\n    - matches: [{path: {type: Prefix, value: /}}]\n",
    );
    assert_eq!(err.field_path(), "spec.rules[0].matches[0].path.type");
    assert!(err.message().contains("unknown variant `Prefix`"), "{err}");

    let err = route_error(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  hostnames: {a: b}\n",
    );
    assert_eq!(
        (err.kind(), err.field_path()),
        (ResourceErrorKind::InvalidType, "spec.hostnames")
    );
}

#[test]
fn a_bad_regex_names_the_field_and_line_after_reading() {
    let text = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
    - matches:
        - path: {type: PathPrefix, value: /ok}
    - matches:
        - path: {type: PathPrefix, value: /ok}
        - headers:
            - type: RegularExpression
              name: x-a
              value: "(unclosed"
"#;
    let doc = Documents::new("r.yaml", text).next().unwrap().unwrap();
    let parsed = doc.read::<HttpRoute>().unwrap();
    let bad = parsed.value.rule_matches().unwrap_err();
    assert_eq!(
        bad.field_path(),
        "spec.rules[1].matches[1].headers[0].value"
    );
    assert!(matches!(
        bad.reason(),
        InvalidMatchReason::Route(e) if e.kind() == crate::route::InvalidRouteMatchKind::Regex
    ));
    let err = parsed.context.match_error(bad);
    assert_eq!(err.kind(), ResourceErrorKind::InvalidValue);
    assert_eq!(err.line(), Some(13));
    assert_eq!(
        err.to_string(),
        "r.yaml: document 1 (HTTPRoute r): spec.rules[1].matches[1].headers[0].value: invalid regular expression `(unclosed` at line 13 column 22"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn bad_paths_methods_and_header_names_are_typed_errors() {
    let m = HttpRouteMatch {
        path: Some(HttpPathMatch {
            kind: PathMatchType::Exact,
            value: "no-slash".into(),
        }),
        ..Default::default()
    };
    assert_eq!(m.to_route_match().unwrap_err().field_path(), "path.value");
    let m = HttpRouteMatch {
        method: Some("GE T".into()),
        ..Default::default()
    };
    let err = m.to_route_match().unwrap_err();
    assert!(matches!(err.reason(), InvalidMatchReason::Method(_)));
    let m = HttpRouteMatch {
        headers: vec![HttpHeaderMatch {
            kind: ValueMatchType::Exact,
            name: "bad name".into(),
            value: "v".into(),
        }],
        ..Default::default()
    };
    let err = m.to_route_match().unwrap_err();
    assert_eq!(err.field_path(), "headers[0].name");
    assert!(matches!(err.reason(), InvalidMatchReason::HeaderName(_)));
}

#[test]
fn unread_versions_of_a_known_kind_are_errors() {
    let err = route_error(
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: HTTPRoute\nmetadata: {name: old}\nspec: {}\n",
    );
    assert_eq!(err.kind(), ResourceErrorKind::UnsupportedVersion);
    assert_eq!(err.field_path(), "apiVersion");
    assert_eq!(err.name(), Some("old"));
    assert_eq!(err.line(), Some(1));
}

#[test]
fn fields_the_api_server_writes_are_not_reported_but_others_are() {
    let text = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  uid: 0b3c
  resourceVersion: "12"
  managedFields: [{manager: kubectl}]
  colour: blue
spec:
  sessionPersistence: {}
status:
  parents: []
"#;
    let loaded = load::<HttpRoute>("r.yaml", text).unwrap();
    let ignored: Vec<_> = loaded.ignored.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(ignored, ["metadata.colour", "spec.sessionPersistence"]);
}

#[test]
fn any_type_can_read_a_document() {
    #[derive(Deserialize)]
    struct Server {
        metadata: ObjectMeta,
        spec: ServerSpec,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ServerSpec {
        port: u16,
        proxy_protocol: String,
    }
    let mut docs = Documents::new("guide.yaml", GUIDE_POLICY);
    let server = docs.next().unwrap().unwrap().parse::<Server>().unwrap();
    assert_eq!(server.value.metadata.name, "web-server-80");
    assert_eq!(server.value.spec.port, 80);
    assert_eq!(server.value.spec.proxy_protocol, "HTTP/1");
    // Fields the type does not read are listed, not lost.
    let ignored: Vec<_> = server.ignored.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(ignored, ["apiVersion", "kind", "spec.podSelector"]);
    let authz = docs.next().unwrap().unwrap();
    assert_eq!(authz.index(), 2);
    assert_eq!(
        authz.into_other().name.as_deref(),
        Some("web-server-80-auth")
    );
    assert!(docs.next().is_none());
}

#[test]
fn gateway_durations_follow_gep_2257() {
    for (text, millis) in [
        ("0s", 0),
        ("10s", 10_000),
        ("500ms", 500),
        ("1h30m", 5_400_000),
        ("1h1m1s1ms", 3_661_001),
        ("99999ms", 99_999),
    ] {
        let d = GatewayDuration::parse(text).unwrap();
        assert_eq!(d.get(), Duration::from_millis(millis), "{text}");
        assert_eq!(GatewayDuration::parse(&d.to_string()).unwrap(), d);
    }
    assert_eq!(GatewayDuration::parse("90s").unwrap().to_string(), "1m30s");
    for bad in [
        "",
        "10",
        "s",
        "1.5s",
        "-1s",
        "100000s",
        "1h1m1s1ms1h",
        "10us",
        " 1s",
        "1S",
    ] {
        let err = GatewayDuration::parse(bad).unwrap_err();
        assert_eq!(err.input(), bad);
    }
}

#[test]
fn parent_references_apply_the_gateway_defaults() {
    let parent = |group: Option<&str>, kind: Option<&str>| ParentReference {
        group: group.map(Into::into),
        kind: kind.map(Into::into),
        namespace: None,
        name: "p".into(),
        section_name: None,
        port: None,
    };
    let gateway = parent(None, None);
    assert_eq!(
        (gateway.group(), gateway.kind()),
        (GATEWAY_GROUP, "Gateway")
    );
    assert!(!gateway.is_server() && !gateway.is_service());
    assert!(parent(Some(""), Some("Service")).is_service());
    assert!(parent(Some("core"), Some("Service")).is_service());
    assert!(!parent(None, Some("Service")).is_service());
    assert!(parent(Some(POLICY_GROUP), Some("Server")).is_server());
}

#[test]
fn parent_kinds_and_groups_are_compared_without_regard_to_case() {
    // Linkerd's policy controller compares both ignoring ASCII case
    // (`targets_kind`), so `kind: service` attaches a route as `Service`.
    let parent = |group: &str, kind: &str| ParentReference {
        group: Some(group.into()),
        kind: Some(kind.into()),
        namespace: None,
        name: "p".into(),
        section_name: None,
        port: None,
    };
    assert!(parent("Core", "service").is_service());
    assert!(parent("", "SERVICE").is_service());
    assert!(parent("Policy.Linkerd.io", "server").is_server());
    assert!(!parent("policy.linkerd.io", "Service").is_service());
}

const GRPC_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: emoji-grpc, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji-svc, port: 8080}]
  rules:
  - name: list
    matches:
    - method: {service: emojivoto.v1.EmojiService, method: ListAll}
    - method: {service: emojivoto.v1.VotingService}
      headers: [{name: x-tenant, value: blue}]
    - method: {method: FindByShortcode}
    - method: {type: RegularExpression, service: 'emojivoto\.v1\..*', method: 'Vote.*'}
    backendRefs: [{name: emoji-svc, port: 8080}]
  - {}
"#;

fn grpc_route(text: &str) -> Result<HttpRoute, InvalidMatch> {
    let doc = Documents::new("g.yaml", text).next().unwrap().unwrap();
    doc.read::<GrpcRoute>().unwrap().value.to_http_route()
}

#[test]
fn a_grpc_route_is_read_as_the_http_route_its_paths_make() {
    let route = grpc_route(GRPC_ROUTE).unwrap();
    assert_eq!(route.kind, "GRPCRoute");
    assert_eq!(route.metadata.name, "emoji-grpc");
    assert!(route.spec.parent_refs[0].is_service());
    let rules = route.rule_matches().unwrap();
    assert_eq!(route.spec.rules[0].name.as_deref(), Some("list"));
    assert_eq!(route.spec.rules[0].backend_refs[0].name, "emoji-svc");
    let post = |path: &str, tenant: Option<&str>| {
        let mut req = http::Request::post(path);
        if let Some(tenant) = tenant {
            req = req.header("x-tenant", tenant);
        }
        req.body(()).unwrap()
    };
    let on = |req: &http::Request<()>| rules[0].iter().position(|m| m.matches_request(req));
    assert_eq!(
        on(&post("/emojivoto.v1.EmojiService/ListAll", None)),
        Some(0)
    );
    assert_eq!(on(&post("/emojivoto.v1.EmojiService/ListAllX", None)), None);
    assert_eq!(
        on(&post("/emojivoto.v1.VotingService/Vote", Some("blue"))),
        Some(1)
    );
    assert_eq!(on(&post("/other.Svc/FindByShortcode", None)), Some(2));
    assert_eq!(
        on(&post("/emojivoto.v1.VotingService/VoteDoughnut", None)),
        Some(3)
    );
    assert_eq!(on(&post("/other.v1.Svc/VoteX", None)), None);
    // A rule without matches takes every call.
    assert!(rules[1][0].matches_request(&post("/any.Svc/Any", None)));
}

#[test]
fn grpc_method_matches_that_cannot_be_paths_are_named() {
    let bad = |from: &str, to: &str| {
        let text = GRPC_ROUTE.replace(from, to);
        assert_ne!(text, GRPC_ROUTE);
        let err = grpc_route(&text).unwrap_err();
        (err.field_path().to_owned(), err.reason().to_string())
    };
    assert_eq!(
        bad("method: {method: FindByShortcode}", "method: {}"),
        (
            "spec.rules[0].matches[2].method.service".to_owned(),
            "a method match names a service, a method or both".to_owned()
        )
    );
    assert_eq!(
        bad(
            "service: emojivoto.v1.EmojiService,",
            "service: emojivoto/v1,"
        )
        .0,
        "spec.rules[0].matches[0].method.service"
    );
    assert_eq!(
        bad("method: FindByShortcode", "method: Find-By").0,
        "spec.rules[0].matches[2].method.method"
    );
    assert_eq!(
        bad("method: 'Vote.*'", "method: 'Vote(.*'").0,
        "spec.rules[0].matches[3].method.method"
    );
}

#[test]
fn an_empty_namespace_is_no_namespace_as_kubectl_reads_it() {
    let text = "apiVersion: policy.linkerd.io/v1beta2\nkind: HTTPRoute\n\
                metadata: {name: r, namespace: ''}\nspec: {parentRefs: [{name: emoji, kind: Service}]}\n";
    let loaded = load::<HttpRoute>("routes.yaml", text).unwrap();
    let [route] = &loaded.resources[..] else {
        panic!("one route: {:?}", loaded.resources)
    };
    assert_eq!(route.metadata.namespace, None);
    assert_eq!(route.metadata.namespace_or("emojivoto"), "emojivoto");
    let docs = documents(text);
    assert_eq!(docs[0].envelope().metadata.namespace, None);
}

#[test]
fn a_byte_order_mark_before_the_text_is_not_part_of_the_first_document() {
    let marked = format!("\u{feff}{GUIDE_POLICY}");
    let plain: Vec<_> = documents(GUIDE_POLICY)
        .iter()
        .map(|d| (d.kind().to_owned(), d.name().map(str::to_owned)))
        .collect();
    let read: Vec<_> = documents(&marked)
        .iter()
        .map(|d| (d.kind().to_owned(), d.name().map(str::to_owned)))
        .collect();
    assert_eq!(read, plain);
    // Errors keep the lines and columns an editor shows.
    let bad = "\u{feff}apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r }\nspec: { hostnames: 7 }\n";
    let error = route_error(bad);
    assert_eq!(error.location().map(|at| at.line), Some(4), "{error}");
}

/// Two rules of one route, the second taking the first's timeouts through
/// a YAML merge key and overriding one of them.
const MERGED_TIMEOUTS: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs: [{name: web, kind: Service, group: core, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    timeouts: &slow
      request: 10s
      backendRequest: 5s
  - matches: [{path: {type: PathPrefix, value: /b}}]
    timeouts:
      <<: *slow
      backendRequest: 2s
"#;

#[test]
fn merge_keys_are_applied_as_kubectl_applies_them() {
    // Kubernetes' YAML reader applies `<<` merge keys. Read without them,
    // the second rule lost its request timeout, and only a warning about a
    // field named `<<` said so.
    let loaded = load::<HttpRoute>("r.yaml", MERGED_TIMEOUTS).unwrap();
    assert!(loaded.ignored.is_empty(), "{:?}", loaded.ignored);
    let rules = &loaded.resources[0].spec.rules;
    let timeouts = rules[1].timeouts.unwrap();
    assert_eq!(timeouts.request.unwrap().get(), Duration::from_secs(10));
    // A key written beside the merge key wins over the merged one.
    assert_eq!(
        timeouts.backend_request.unwrap().get(),
        Duration::from_secs(2)
    );
    assert_eq!(
        rules[0].timeouts.unwrap().backend_request.unwrap().get(),
        Duration::from_secs(5)
    );
}

#[test]
fn errors_in_a_document_with_merge_keys_keep_their_field_and_line() {
    let text = MERGED_TIMEOUTS.replace("backendRequest: 2s", "backendRequest: soon");
    let error = route_error(&text);
    assert_eq!(error.field_path(), "spec.rules[1].timeouts.backendRequest");
    assert_eq!(error.location().map(|at| at.line), Some(15), "{error}");
    assert!(error.to_string().contains("HTTPRoute r"), "{error}");
}

#[test]
fn a_merge_key_that_names_no_mapping_is_an_error_naming_it() {
    let text = MERGED_TIMEOUTS.replace("<<: *slow", "<<: 3");
    let error = route_error(&text);
    assert_eq!(error.kind(), ResourceErrorKind::InvalidValue, "{error}");
    let shown = error.to_string();
    assert!(
        shown.contains("merge") && shown.contains("HTTPRoute r"),
        "{shown}"
    );
}

#[test]
fn a_key_written_twice_in_a_document_with_merge_keys_is_still_refused() {
    let text = MERGED_TIMEOUTS.replace(
        "backendRequest: 2s",
        "backendRequest: 2s\n      request: 1s\n      request: 3s",
    );
    let error = route_error(&text);
    assert_eq!(error.kind(), ResourceErrorKind::DuplicateField, "{error}");
    assert_eq!(
        error.field_path(),
        "spec.rules[1].timeouts.request",
        "{error}"
    );
}
