//! Reading retry and timeout policies from HTTPRoutes, annotations and
//! ServiceProfiles, and rejecting values out of range.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{num::NonZeroU32, time::Duration};

use http::{Method, Request, StatusCode};
use mesh_core::resource::ResourceErrorKind;
use mesh_retry::{
    BudgetConfig, Timeouts,
    config::{self, RetryResources},
};

const GUIDE_PROFILE: &str = include_str!("fixtures/guide-serviceprofile.yaml");
const GUIDE_ROUTE: &str = include_str!("fixtures/guide-httproute.yaml");

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
}

fn load(text: &str) -> RetryResources {
    config::load("test.yaml", text).unwrap()
}

/// The error for `text`, as displayed, and its kind.
fn error(text: &str) -> (String, ResourceErrorKind) {
    let err = config::load("test.yaml", text).unwrap_err();
    (err.to_string(), err.kind())
}

#[test]
fn the_guides_httproute_retries_get_requests_with_its_timeouts() {
    let loaded = load(GUIDE_ROUTE);
    let emoji = loaded.service("emoji", Some("emojivoto")).unwrap();
    assert_eq!(emoji.routes.len(), 1);
    let route = &emoji.routes[0];
    assert_eq!(&*route.name, "web-to-emoji-retries");
    assert!(route.matches(&request(Method::GET, "/api/emoji/1")));
    assert!(!route.matches(&request(Method::POST, "/api/emoji")));
    // `numRetries: 3` is three retries: four attempts.
    assert_eq!(route.retry.max_attempts(), NonZeroU32::new(4).unwrap());
    assert_eq!(
        route.timeouts,
        Timeouts {
            request: Some(Duration::from_secs(10)),
            per_try: Some(Duration::from_secs(2)),
            idle: None,
        }
    );
    assert_eq!(emoji.budget, BudgetConfig::default());
}

#[test]
fn the_guides_request_mirror_filter_is_named_in_a_warning() {
    let loaded = load(GUIDE_ROUTE);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "test.yaml: document 1 (HTTPRoute emojivoto/web-to-emoji-retries): spec.rules[0].filters[0]: \
          RequestMirror filters are not supported; the rule applies without it"
        ],
        "the honoured `retries` block is not reported as unknown"
    );
}

#[test]
fn the_guides_service_profile_classifies_5xx_and_retries_nothing() {
    let loaded = load(GUIDE_PROFILE);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let emoji = loaded.service("emoji", Some("emojivoto")).unwrap();
    let names: Vec<&str> = emoji.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["Get /api/emoji", "Post /api/emoji"]);
    let get = emoji
        .route_for(&request(Method::GET, "/api/emoji"))
        .unwrap();
    assert_eq!(&*get.name, "Get /api/emoji");
    assert!(!get.retry.retries(), "no route is marked isRetryable");
    assert!(
        emoji
            .route_for(&request(Method::GET, "/api/emoji/1"))
            .is_none(),
        "pathRegex matches the whole path"
    );
    assert_eq!(emoji.budget, BudgetConfig::default());
}

#[test]
fn the_guides_route_and_profile_together_give_route_rules_first() {
    let loaded = load(&format!("{GUIDE_PROFILE}\n---\n{GUIDE_ROUTE}"));
    assert_eq!(loaded.services.len(), 1);
    let emoji = &loaded.services[0];
    let get = emoji
        .route_for(&request(Method::GET, "/api/emoji"))
        .unwrap();
    assert_eq!(&*get.name, "web-to-emoji-retries");
    assert!(get.retry.retries());
    let post = emoji
        .route_for(&request(Method::POST, "/api/emoji"))
        .unwrap();
    assert_eq!(&*post.name, "Post /api/emoji");
}

const PROFILE: &str = r#"
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: books.shop.svc.cluster.local
  namespace: shop
spec:
  retryBudget:
    retryRatio: 0.3
    minRetriesPerSecond: 5
    ttl: 20s
  routes:
  - name: create
    condition:
      all:
      - method: POST
      - pathRegex: /books
    isRetryable: true
    timeout: 250ms
    responseClasses:
    - condition: { status: { min: 503, max: 503 } }
      isFailure: false
    - condition: { any: [ { status: { min: 500, max: 599 } }, { status: { min: 429, max: 429 } } ] }
      isFailure: true
  - name: list
    condition:
      any:
      - { method: GET, pathRegex: /books }
      - { method: HEAD, pathRegex: /books }
"#;

#[test]
fn a_service_profile_gives_budget_timeouts_retries_and_classes() {
    let loaded = load(PROFILE);
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(
        books.budget,
        BudgetConfig::new(0.3, 5, Duration::from_secs(20)).unwrap()
    );
    let create = books.route_for(&request(Method::POST, "/books")).unwrap();
    assert_eq!(&*create.name, "create");
    assert!(create.retry.any_method(), "isRetryable retries a POST");
    assert_eq!(create.timeouts.request, Some(Duration::from_millis(250)));
    let retried = create.retry.http_statuses();
    assert!(retried.contains(StatusCode::BAD_GATEWAY));
    assert!(retried.contains(StatusCode::TOO_MANY_REQUESTS));
    assert!(
        !retried.contains(StatusCode::SERVICE_UNAVAILABLE),
        "the first class says 503 is not a failure"
    );
    let list = books.route_for(&request(Method::HEAD, "/books")).unwrap();
    assert_eq!(&*list.name, "list");
    assert!(!list.retry.retries());
    assert!(books.route_for(&request(Method::PUT, "/books")).is_none());
}

#[test]
fn the_gateway_api_spelling_of_a_budget_is_read() {
    let text = PROFILE.replace(
        "    retryRatio: 0.3\n    minRetriesPerSecond: 5\n    ttl: 20s\n",
        "    budgetPercent: 25\n    budgetInterval: 30s\n    minRetryRate: { count: 60, interval: 1m }\n",
    );
    let loaded = load(&text);
    let budget = loaded.services[0].budget;
    assert_eq!(budget.retry_ratio(), 0.25);
    assert_eq!(budget.ttl(), Duration::from_secs(30));
    assert_eq!(budget.min_retries_per_second(), 1.0);
}

const GATEWAY_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books
  namespace: shop
  annotations:
    retry.linkerd.io/http: 5xx
    retry.linkerd.io/limit: "1"
    retry.linkerd.io/timeout: 400ms
    timeout.linkerd.io/request: 5s
    timeout.linkerd.io/idle: 30s
spec:
  parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]
  rules:
  - name: reads
    matches: [{ method: GET, path: { type: PathPrefix, value: /books } }]
    timeouts: { request: 3s, backendRequest: 1s }
    retry: { codes: [502, 503], attempts: 2, backoff: 100ms }
  - matches: [{ path: { value: /admin } }]
"#;

#[test]
fn gateway_api_fields_win_over_linkerd_annotations() {
    let loaded = load(GATEWAY_ROUTE);
    // But for the request timeout, whose annotation wins, as in Linkerd,
    // with a warning on the field it overrides.
    let [warning] = &loaded.warnings[..] else {
        panic!("{:?}", loaded.warnings)
    };
    assert_eq!(warning.field, "spec.rules[0].timeouts.request", "{warning}");
    assert!(
        warning
            .message
            .contains("overridden by the route's timeout.linkerd.io/request (5s)"),
        "{warning}"
    );
    let books = loaded.service("books", Some("shop")).unwrap();
    let reads = &books.routes[0];
    assert_eq!(&*reads.name, "reads");
    assert_eq!(reads.retry.max_attempts(), NonZeroU32::new(3).unwrap());
    assert_eq!(reads.retry.http_statuses(), &"502-503".parse().unwrap());
    assert!(
        !reads.retry.grpc_requests(),
        "an HTTPRoute's POSTs, gRPC calls too, are not retried"
    );
    assert!(!reads.retry.any_method());
    assert_eq!(reads.retry.backoff().base(), Duration::from_millis(100));
    assert_eq!(
        reads.timeouts,
        Timeouts {
            request: Some(Duration::from_secs(5)),
            per_try: Some(Duration::from_secs(1)),
            idle: Some(Duration::from_secs(30)),
        }
    );
    let admin = &books.routes[1];
    assert_eq!(&*admin.name, "books");
    assert_eq!(admin.retry.max_attempts(), NonZeroU32::new(2).unwrap());
    assert_eq!(admin.retry.http_statuses(), &"5xx".parse().unwrap());
    assert_eq!(
        admin.timeouts,
        Timeouts {
            request: Some(Duration::from_secs(5)),
            per_try: Some(Duration::from_millis(400)),
            idle: Some(Duration::from_secs(30)),
        }
    );
}

#[test]
fn a_rule_without_retry_settings_does_not_retry_and_zero_disables_the_timeout() {
    let text = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: plain }
spec:
  parentRefs: [{ group: "", kind: Service, name: plain }]
  rules: [ { timeouts: { request: 0s } } ]
"#;
    let loaded = load(text);
    let route = &loaded.service("plain", None).unwrap().routes[0];
    assert!(!route.retry.retries());
    assert_eq!(route.timeouts, Timeouts::default());
}

#[test]
fn routes_under_a_server_are_left_to_authorization() {
    let text = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: authz, namespace: shop }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules: [ { matches: [ { path: { value: / } } ] } ]
"#;
    let loaded = load(text);
    assert!(loaded.services.is_empty());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn a_ratio_out_of_range_is_an_error_naming_the_field_and_range() {
    let (message, kind) = error(&PROFILE.replace("retryRatio: 0.3", "retryRatio: 1200"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert_eq!(
        message,
        "test.yaml: document 1 (ServiceProfile shop/books.shop.svc.cluster.local): spec.retryBudget.retryRatio: \
         retry ratio 1200 is outside the allowed range 0 to 1000 at line 9 column 17"
    );
    let (message, _) = error(&PROFILE.replace("retryRatio: 0.3", "retryRatio: -0.5"));
    assert!(
        message.contains("retry ratio -0.5 is outside the allowed range 0 to 1000"),
        "{message}"
    );
}

#[test]
fn a_ttl_out_of_range_is_an_error_naming_the_field_and_range() {
    let (message, _) = error(&PROFILE.replace("ttl: 20s", "ttl: 120s"));
    assert_eq!(
        message,
        "test.yaml: document 1 (ServiceProfile shop/books.shop.svc.cluster.local): spec.retryBudget.ttl: \
         ttl 120s is outside the allowed range 1s to 60s at line 11 column 10"
    );
    let (message, _) = error(&PROFILE.replace("ttl: 20s", "ttl: 500ms"));
    assert!(
        message.contains("spec.retryBudget.ttl: ttl 500ms is outside the allowed range 1s to 60s")
    );
    let gateway = PROFILE.replace(
        "    retryRatio: 0.3\n    minRetriesPerSecond: 5\n    ttl: 20s\n",
        "    budgetPercent: 20\n    budgetInterval: 2m\n",
    );
    let (message, _) = error(&gateway);
    assert!(
        message.contains(
            "spec.retryBudget.budgetInterval: ttl 120s is outside the allowed range 1s to 60s"
        ),
        "{message}"
    );
}

#[test]
fn unparseable_durations_are_errors_naming_the_field() {
    let (message, kind) = error(&PROFILE.replace("timeout: 250ms", "timeout: soon"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        message.contains("spec.routes[0].timeout: invalid duration \"soon\""),
        "{message}"
    );

    let (message, _) = error(&GATEWAY_ROUTE.replace("request: 3s", "request: 3 seconds"));
    assert!(
        message.contains("spec.rules[0].timeouts.request: invalid duration \"3 seconds\""),
        "{message}"
    );

    let (message, _) = error(&GUIDE_ROUTE.replace("timeout: 2s", "timeout: two"));
    assert!(
        message.contains("spec.rules[0].retries.timeout: invalid duration \"two\""),
        "{message}"
    );

    let (message, _) = error(&GATEWAY_ROUTE.replace("timeout: 400ms", "timeout: 400"));
    assert!(
        message.contains("metadata.annotations.retry.linkerd.io/timeout: invalid duration \"400\""),
        "{message}"
    );
}

#[test]
fn zero_attempts_are_errors_naming_the_field() {
    let (message, _) = error(&GATEWAY_ROUTE.replace("attempts: 2", "attempts: 0"));
    assert!(
        message.contains("spec.rules[0].retry.attempts: attempts must be at least 1"),
        "{message}"
    );
    let (message, _) = error(&GUIDE_ROUTE.replace("numRetries: 3", "numRetries: 0"));
    assert!(
        message.contains("spec.rules[0].retries.numRetries: attempts must be at least 1"),
        "{message}"
    );
    let (message, _) = error(&GATEWAY_ROUTE.replace("limit: \"1\"", "limit: \"0\""));
    assert!(
        message.contains(
            "metadata.annotations.retry.linkerd.io/limit: retry limit \"0\" must be a whole number of retries, at least 1"
        ),
        "{message}"
    );
}

#[test]
fn negative_or_oversized_attempts_are_errors_naming_the_field_and_the_range() {
    for (attempts, says) in [
        (
            "-1",
            "retry count -1 is outside the allowed range 1 to 4294967295",
        ),
        (
            "4294967296",
            "retry count 4294967296 is outside the allowed range 1 to 4294967295",
        ),
        ("1.5", "expected a retry count from 1 to 4294967295"),
    ] {
        let (message, _) =
            error(&GATEWAY_ROUTE.replace("attempts: 2", &format!("attempts: {attempts}")));
        assert!(
            message.contains("spec.rules[0].retry.attempts:") && message.contains(says),
            "{attempts}: {message}"
        );
        let (message, _) =
            error(&GUIDE_ROUTE.replace("numRetries: 3", &format!("numRetries: {attempts}")));
        assert!(
            message.contains("spec.rules[0].retries.numRetries:") && message.contains(says),
            "{attempts}: {message}"
        );
    }
}

#[test]
fn other_invalid_values_are_errors_too() {
    let (message, _) = error(&GATEWAY_ROUTE.replace("codes: [502, 503]", "codes: [502, 1503]"));
    assert!(
        message.contains(
            "spec.rules[0].retry.codes[1]: http status 1503 is outside the allowed range 400 to 599"
        ),
        "{message}"
    );
    let mixed = PROFILE.replace("ttl: 20s", "ttl: 20s\n    budgetPercent: 20");
    let (message, _) = error(&mixed);
    assert!(
        message.contains("spec.retryBudget.budgetPercent: write the budget either"),
        "{message}"
    );
    let not = PROFILE.replace("      - method: POST\n", "      - not: { method: POST }\n");
    let (message, _) = error(&not);
    assert!(
        message.contains("spec.routes[0].condition.all[0].not: `not` conditions are not supported"),
        "{message}"
    );
    let (message, _) = error(&PROFILE.replace(
        "pathRegex: /books\n    isRetryable",
        "pathRegex: /books(\n    isRetryable",
    ));
    assert!(
        message.contains("spec.routes[0].condition.all[1].pathRegex: invalid regular expression"),
        "{message}"
    );
    let (message, kind) = error(&format!("{PROFILE}\n---\n{PROFILE}"));
    assert_eq!(kind, ResourceErrorKind::DuplicateName);
    assert!(
        message.contains("a second ServiceProfile for service books"),
        "{message}"
    );
}

/// A canary: nine requests in ten to the stable service, one to the new
/// one, which lives in another namespace.
const CANARY_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: books-canary
  namespace: shop
spec:
  parentRefs: [{ group: core, kind: Service, name: books, port: 8080 }]
  rules:
  - backendRefs:
    - { name: books-v1, port: 8080, weight: 90 }
    - { name: books-v2, namespace: staging, port: 8080, weight: 10 }
    - { name: books-v0, port: 8080, weight: 0 }
  - matches: [{ path: { value: /admin } }]
    backendRefs: [{ kind: Service, name: books-admin }]
"#;

#[test]
fn a_rules_backend_refs_are_its_backends_with_their_weights() {
    use mesh_retry::config::RouteBackend;

    let loaded = load(CANARY_ROUTE);
    let books = loaded.service("books", Some("shop")).unwrap();
    let backend = |name: &str, namespace: &str, weight| RouteBackend {
        name: name.into(),
        namespace: Some(namespace.into()),
        weight,
        kind: mesh_retry::config::BackendKind::Service,
    };
    assert_eq!(
        books.routes[0].backends,
        [
            backend("books-v1", "shop", 90),
            backend("books-v2", "staging", 10),
            backend("books-v0", "shop", 0),
        ]
    );
    // No weight is a weight of 1.
    assert_eq!(
        books.routes[1].backends,
        [backend("books-admin", "shop", 1)]
    );
    // Routes read from elsewhere go to the service they are attached to.
    let profile = load(PROFILE);
    let routes = &profile.service("books", Some("shop")).unwrap().routes;
    assert!(!routes.is_empty());
    assert!(routes.iter().all(|r| r.backends.is_empty()));
}

/// The Gateway API accepts a rule whose backends all weigh 0, and has its
/// requests answered 500: the rule is read with its backends, and a
/// warning names them.
#[test]
fn a_rule_whose_backends_all_weigh_0_is_read_with_a_warning() {
    let loaded = load(
        &CANARY_ROUTE
            .replace("weight: 90", "weight: 0")
            .replace("weight: 10", "weight: 0"),
    );
    let books = loaded.service("books", Some("shop")).unwrap();
    let backends = &books.routes[0].backends;
    assert_eq!(backends.len(), 3);
    assert!(backends.iter().all(|b| b.weight == 0), "{backends:?}");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let [warning] = &warnings[..] else {
        panic!("{warnings:?}")
    };
    assert!(
        warning.contains("spec.rules[0].backendRefs")
            && warning.contains("every backend has weight 0")
            && warning.contains("500"),
        "{warning}"
    );
    // The rule's other backends, of weight above 0, get no warning.
    assert!(load(CANARY_ROUTE).warnings.is_empty());
}

#[test]
fn ports_and_weights_outside_their_types_are_errors_naming_the_range() {
    for (from, to, says) in [
        (
            "name: books-v1, port: 8080",
            "name: books-v1, port: 70000",
            "spec.rules[0].backendRefs[0].port: port 70000 is outside the allowed range 1 to 65535",
        ),
        (
            "name: books-v1, port: 8080",
            "name: books-v1, port: -1",
            "spec.rules[0].backendRefs[0].port: port -1 is outside the allowed range 1 to 65535",
        ),
        (
            "name: books, port: 8080",
            "name: books, port: 65536",
            "spec.parentRefs[0].port: port 65536 is outside the allowed range 1 to 65535",
        ),
        (
            "weight: 90",
            "weight: -1",
            "spec.rules[0].backendRefs[0].weight: weight -1 is outside the allowed range 0 to 1000000",
        ),
        (
            "weight: 90",
            "weight: 4294967296",
            "spec.rules[0].backendRefs[0].weight: weight 4294967296 is outside the allowed range 0 to 1000000",
        ),
    ] {
        let (message, _) = error(&CANARY_ROUTE.replace(from, to));
        assert!(message.contains(says), "{to}: {message}");
    }
    // Inside their types, 0 and past the limit keep their own words.
    let (message, _) =
        error(&CANARY_ROUTE.replace("name: books-v1, port: 8080", "name: books-v1, port: 0"));
    assert!(
        message.contains("port 0 is not a port: a port is 1 to 65535"),
        "{message}"
    );
}

#[test]
fn backends_that_cannot_be_used_are_errors_naming_the_field() {
    let (message, kind) = error(&CANARY_ROUTE.replace("weight: 90", "weight: 1000001"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        message.contains(
            "spec.rules[0].backendRefs[0].weight: weight 1000001 is above the limit of 1000000"
        ),
        "{message}"
    );
    let (message, _) = error(&CANARY_ROUTE.replace(
        "kind: Service, name: books-admin",
        "group: example.com, kind: Bucket, name: books-admin",
    ));
    assert!(
        message.contains("spec.rules[1].backendRefs[0].kind: backends of kind Bucket in group \"example.com\" are not supported, only Services"),
        "{message}"
    );
}

/// A redirect on one outbound route, header filters on another, and
/// filters outbound routes do not apply.
const FILTERED_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: books-headers, namespace: shop }
spec:
  parentRefs: [{ group: core, kind: Service, name: books }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /old } }]
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: books.example.com
        path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }
        statusCode: 301
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{ name: x-env, value: canary }]
        add: [{ name: x-tag, value: b }]
        remove: [cookie]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{ name: x-served-by, value: mesh }]
    - type: RequestMirror
      requestMirror: { backendRef: { name: books-shadow, port: 80 } }
    - type: URLRewrite
      urlRewrite: { hostname: books.internal }
    - type: ExtensionRef
      extensionRef: { group: example.com, kind: Filter, name: audit }
"#;

#[test]
fn header_filters_and_a_redirect_are_read_and_other_filters_warn() {
    let loaded = load(FILTERED_ROUTE);
    let service = loaded.service("books", Some("shop")).unwrap();
    let redirect = service.redirect(0).expect("the first rule redirects");
    assert_eq!(redirect.status(), 301);
    let uri = "/old/list?page=2".parse().unwrap();
    let mut host = http::HeaderMap::new();
    host.insert("host", "books.shop:8080".parse().unwrap());
    assert_eq!(
        redirect.location(&uri, &host),
        "http://books.example.com:8080/new/list?page=2"
    );
    assert!(service.redirect(1).is_none());

    let route = &service.routes[1];
    let mut headers = http::HeaderMap::new();
    headers.insert("x-env", "prod".parse().unwrap());
    headers.insert("x-tag", "a".parse().unwrap());
    headers.insert("cookie", "secret".parse().unwrap());
    route.request_headers.apply(&mut headers);
    assert_eq!(headers["x-env"], "canary");
    assert_eq!(headers.get_all("x-tag").iter().count(), 2);
    assert!(!headers.contains_key("cookie"));
    let mut response = http::HeaderMap::new();
    route.response_headers.apply(&mut response);
    assert_eq!(response["x-served-by"], "mesh");

    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let warning = |j: usize, kind: &str| {
        format!(
            "test.yaml: document 1 (HTTPRoute shop/books-headers): spec.rules[1].filters[{j}]: \
             {kind} filters are not supported; the rule applies without it"
        )
    };
    assert_eq!(
        warnings,
        [
            warning(2, "RequestMirror"),
            warning(3, "URLRewrite"),
            warning(4, "ExtensionRef")
        ]
    );

    let (message, kind) = error(&FILTERED_ROUTE.replace("name: x-tag", "name: x tag"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        message.contains(
            "spec.rules[1].filters[0].requestHeaderModifier.add[0].name: \"x tag\" is not a valid header name"
        ),
        "{message}"
    );
}

#[test]
fn redirects_that_cannot_be_applied_are_errors_naming_the_field() {
    let (message, kind) =
        error(&FILTERED_ROUTE.replace("type: PathPrefix, value: /old", "type: Exact, value: /old"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        message.contains(
            "spec.rules[0].filters[0].requestRedirect.path: ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path"
        ),
        "{message}"
    );
    let (message, _) = error(&FILTERED_ROUTE.replace("statusCode: 301", "statusCode: 304"));
    assert!(
        message.contains("spec.rules[0].filters[0].requestRedirect.statusCode: status code 304"),
        "{message}"
    );
    let (message, _) = error(&FILTERED_ROUTE.replace(
        "        statusCode: 301\n",
        "        statusCode: 301\n    backendRefs: [{ name: books, port: 80 }]\n",
    ));
    assert!(
        message.contains(
            "spec.rules[0].backendRefs: a rule with a RequestRedirect filter answers itself"
        ),
        "{message}"
    );
}

/// A GRPCRoute on a Service, retried by Linkerd's annotations.
const GRPC_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: emoji-grpc
  namespace: emojivoto
  annotations:
    retry.linkerd.io/grpc: unavailable
    retry.linkerd.io/limit: "2"
    timeout.linkerd.io/request: 5s
spec:
  parentRefs: [{ group: core, kind: Service, name: emoji-svc, port: 8080 }]
  rules:
  - matches: [{ method: { service: emojivoto.v1.EmojiService, method: ListAll } }]
"#;

#[test]
fn a_grpc_route_gives_its_service_a_route_on_the_methods_path() {
    let loaded = load(GRPC_ROUTE);
    let svc = loaded.service("emoji-svc", Some("emojivoto")).unwrap();
    let route = &svc.routes[0];
    assert_eq!(&*route.name, "emoji-grpc");
    assert!(route.matches(&request(Method::POST, "/emojivoto.v1.EmojiService/ListAll")));
    assert!(!route.matches(&request(
        Method::POST,
        "/emojivoto.v1.EmojiService/FindByShortcode"
    )));
    assert_eq!(route.retry.grpc_codes(), "unavailable".parse().unwrap());
    assert!(
        route.retry.grpc_requests(),
        "gRPC calls, all POSTs, are retried"
    );
    assert_eq!(route.retry.max_attempts(), NonZeroU32::new(3).unwrap());
    assert_eq!(route.timeouts.request, Some(Duration::from_secs(5)));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let (message, kind) = error(&GRPC_ROUTE.replace("method: ListAll", "method: List-All"));
    assert_eq!(kind, ResourceErrorKind::InvalidValue);
    assert!(
        message.contains("(GRPCRoute emojivoto/emoji-grpc): spec.rules[0].matches[0].method.method: a gRPC method is a name"),
        "{message}"
    );
}

#[test]
fn a_rule_read_says_where_it_is_written() {
    let text = format!("{PROFILE}---\n{GATEWAY_ROUTE}---\n{GRPC_ROUTE}");
    let loaded = config::load("routes.yaml", &text).unwrap();
    let books = loaded.service("books", Some("shop")).unwrap();
    assert_eq!(
        books.rule_source(1).as_deref(),
        Some("routes.yaml: document 2 (HTTPRoute shop/books): spec.rules[1]")
    );
    let emoji = loaded.service("emoji-svc", Some("emojivoto")).unwrap();
    assert_eq!(
        emoji.rule_source(0).as_deref(),
        Some("routes.yaml: document 3 (GRPCRoute emojivoto/emoji-grpc): spec.rules[0]")
    );
    // The profile's routes come after the rules, and have no rule to
    // point at.
    assert!(books.routes.len() > 2);
    assert_eq!(books.rule_source(2), None, "{books:?}");
    assert_eq!(books.rule_source(99), None);
}
