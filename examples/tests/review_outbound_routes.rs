//! Outbound routes as the Gateway API and Linkerd define them: which
//! routes a service is served, and the answers of its redirects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode};
use support::*;

/// A sidecar routing `emoji` (at `app`) by the resources in `text`.
fn emoji_sidecar(
    app: std::net::SocketAddr,
    text: &str,
) -> (tempfile::TempDir, mesh_examples::sidecar::Running) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, text).unwrap();
    let running = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n\
         policy:\n  workload:\n    namespace: emojivoto\n  files: [{}]\n",
        file.display()
    ));
    (dir, running)
}

async fn get(
    sidecar: &mesh_examples::sidecar::Running,
    host: &str,
    path: &str,
) -> http::Response<hyper::body::Incoming> {
    let req = Request::get(format!("http://{}{path}", sidecar.outbound))
        .header("host", host)
        .body(full(""))
        .unwrap();
    http1().request(req).await.unwrap()
}

fn marked(name: &str, namespace: &str, path: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{namespace}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// Routes of one service written with its namespace and without one
/// (applied with `kubectl -n emojivoto`, say) are the same service's
/// routes in the workload's namespace: both are served, ranked together.
/// The catch-all written without a namespace does not take `/a` from the
/// more specific rule, nor is either route dropped for the other.
#[tokio::test]
async fn routes_written_with_and_without_the_namespace_are_served_together() {
    let text = [
        marked("with-ns", ", namespace: emojivoto", "/a"),
        marked("without-ns", "", "/"),
    ]
    .join("---\n");
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    for (path, rule) in [("/a", "with-ns"), ("/b", "without-ns")] {
        let res = get(&sidecar, "emoji", path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}: {:?}", res.headers());
        assert_eq!(res.headers()["x-rule"], rule, "{path}");
    }
    stop(sidecar).await;
}

/// The usual ServiceProfile, named by the service's full name, beside an
/// `HTTPRoute` written without a namespace: both name the one service,
/// whose profile, with routes, serves it alone, as in Linkerd: the
/// route is set aside, and the profile's routes and budget are the
/// service's.
#[tokio::test]
async fn a_profile_named_in_full_sets_aside_a_route_written_without_a_namespace() {
    let profile = "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: emoji.emojivoto.svc.cluster.local, namespace: emojivoto}
spec:
  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 10s}
  routes:
  - name: list
    condition: {method: GET, pathRegex: '/list'}
";
    let text = [marked("without-ns", "", "/a"), profile.to_owned()].join("---\n");
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    // The profile's default route takes what its routes leave, /a
    // included, without the rule's header (an HTTPRoute alone would
    // answer /other 404), and its own route is counted.
    for path in ["/a", "/list", "/other"] {
        let res = get(&sidecar, "emoji", path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}: {:?}", res.headers());
        assert!(!res.headers().contains_key("x-rule"), "{path}");
    }
    let metrics = scrape(sidecar.admin).await;
    let list = metrics
        .lines()
        .any(|l| l.starts_with("route_request_total{") && l.contains("rt_route=\"list\""));
    assert!(list, "{metrics}");
    // The profile's budget: a reserve of 3 retries a second over 10 s.
    assert!(
        metrics.contains("retry_budget_balance{service=\"emoji\"} 30.0\n"),
        "{metrics}"
    );
    stop(sidecar).await;
}

/// A `RequestRedirect`'s `Location` as the Gateway API builds it: a
/// scheme brings its own port, a port is left out when it is the scheme's
/// default, and a filter without either keeps the port the request was
/// addressed to, a new hostname included.
#[tokio::test]
async fn redirects_take_the_port_the_gateway_api_gives_them() {
    let redirect = |name: &str, fields: &str| {
        format!(
            "  - matches: [{{path: {{type: PathPrefix, value: /{name}}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{{fields}}}
"
        )
    };
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{}{}{}{}{}{}{}",
        redirect("https", "scheme: https"),
        redirect("http", "scheme: http"),
        redirect("p80", "port: 80"),
        redirect("p443", "port: 443"),
        redirect("host", "hostname: other"),
        redirect("full", "path: {type: ReplaceFullPath, replaceFullPath: /x}"),
        redirect(
            "pre",
            "path: {type: ReplacePrefixMatch, replacePrefixMatch: /}"
        ),
    );
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    for (host, path, location) in [
        ("emoji:8080", "/https/a", "https://emoji/https/a"),
        ("emoji:8080", "/http/a", "http://emoji/http/a"),
        ("emoji:8080", "/p80/a", "http://emoji/p80/a"),
        ("emoji:8080", "/p443/a", "http://emoji:443/p443/a"),
        ("emoji:8080", "/host/a?q=1", "http://other:8080/host/a?q=1"),
        ("emoji", "/host/a", "http://other/host/a"),
        ("emoji:8080", "/full/a?q", "http://emoji:8080/x?q"),
        ("emoji:8080", "/pre/a/b", "http://emoji:8080/a/b"),
        ("emoji:8080", "/pre", "http://emoji:8080/"),
    ] {
        let res = get(&sidecar, host, path).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{path}");
        assert_eq!(res.headers()["location"], location, "{host} {path}");
    }
    stop(sidecar).await;
}

fn grpc_rule(name: &str, matches: &str) -> String {
    format!(
        "  - matches: {matches}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-rule, value: {name}}}]}}
"
    )
}

/// `GRPCRoute` matches through the sidecar: a service and a method beat
/// a service alone, which beats a method alone; regular expressions for
/// either, and for a header, match whole names and values.
#[tokio::test]
async fn grpc_route_matches_rank_and_match_as_the_gateway_api_has_them() {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g, namespace: emojivoto}}
spec:
  parentRefs: [{{group: core, kind: Service, name: emoji}}]
  rules:
{}{}{}{}{}",
        grpc_rule("method-alone", "[{method: {method: ListAll}}]"),
        grpc_rule(
            "service-alone",
            "[{method: {service: emojivoto.v1.EmojiService}}]"
        ),
        grpc_rule(
            "both",
            "[{method: {service: emojivoto.v1.EmojiService, method: FindByShortcode}}]"
        ),
        grpc_rule(
            "regex",
            "[{method: {type: RegularExpression, service: 'other\\..*', method: 'Get.*'}}]"
        ),
        grpc_rule(
            "header-regex",
            "[{method: {service: other.Svc}, headers: [{type: RegularExpression, name: x-v, value: 'v[0-9]+'}]}]"
        ),
    );
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    let call = |path: &str, header: Option<&str>| {
        let mut req = Request::post(format!("http://emoji{path}"))
            .version(http::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(v) = header {
            req = req.header("x-v", v);
        }
        h2_via(sidecar.outbound, req.body(full("")).unwrap())
    };
    for (path, header, rule) in [
        ("/emojivoto.v1.EmojiService/ListAll", None, "service-alone"),
        ("/emojivoto.v1.EmojiService/FindByShortcode", None, "both"),
        ("/x.Y/ListAll", None, "method-alone"),
        ("/other.Svc/GetIt", None, "regex"),
        ("/other.Svc/Put", Some("v12"), "header-regex"),
        ("/other.Svc/Put", Some("v12x"), "-"),
        ("/other.Svcx/GetIt", None, "regex"),
        ("/otherxSvc/GetIt", None, "-"),
    ] {
        let res = call(path, header).await.unwrap();
        let got = res
            .headers()
            .get("x-rule")
            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
        assert_eq!(got, rule, "{path} {header:?}: {:?}", res.headers());
    }
    stop(sidecar).await;
}

/// `HTTPRoute` matches through the sidecar: query parameters (exact and
/// regular expressions, decoded), a method over query parameters, path
/// prefixes by whole elements, and regular expressions and exact paths
/// over the whole path.
#[tokio::test]
async fn http_route_matches_rank_and_match_as_the_gateway_api_has_them() {
    let text = [
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h, namespace: emojivoto}
spec:
  parentRefs: [{group: core, kind: Service, name: emoji}]
  rules:
".to_owned(),
        grpc_rule("query-regex", "[{path: {type: PathPrefix, value: /q}, queryParams: [{type: RegularExpression, name: page, value: '[0-9]+'}]}]"),
        grpc_rule("query-exact", "[{path: {type: PathPrefix, value: /q}, queryParams: [{name: page, value: 'a b'}]}]"),
        grpc_rule("method", "[{path: {type: PathPrefix, value: /q}, method: POST}]"),
        grpc_rule("plain", "[{path: {type: PathPrefix, value: /q}}]"),
        grpc_rule("prefix-slash", "[{path: {type: PathPrefix, value: /p/}}]"),
        grpc_rule("regex", "[{path: {type: RegularExpression, value: '/r/[a-z]+'}}]"),
        grpc_rule("exact", "[{path: {type: Exact, value: /e}}]"),
    ]
    .concat();
    let (app, _) = backend().await;
    let (_dir, sidecar) = emoji_sidecar(app, &text);
    for (method, path, rule) in [
        ("GET", "/q?page=12", "query-regex"),
        ("GET", "/q?page=12x", "plain"),
        ("GET", "/q?page=a%20b", "query-exact"),
        ("POST", "/q?page=12", "method"),
        ("POST", "/q", "method"),
        ("GET", "/q/x", "plain"),
        ("GET", "/qx", "-"),
        ("GET", "/p", "prefix-slash"),
        ("GET", "/p/a", "prefix-slash"),
        ("GET", "/px", "-"),
        ("GET", "/r/abc", "regex"),
        ("GET", "/r/abc/d", "-"),
        ("GET", "/e", "exact"),
        ("GET", "/e/", "-"),
        ("GET", "/e?x=1", "exact"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", sidecar.outbound))
            .header("host", "emoji")
            .body(full(""))
            .unwrap();
        let res = http1().request(req).await.unwrap();
        let got = res
            .headers()
            .get("x-rule")
            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
        assert_eq!(got, rule, "{method} {path}: {}", res.status());
    }
    stop(sidecar).await;
}

/// A split backend whose one endpoint refuses connections: with failure
/// accrual, the endpoint is taken out at its first failure, the backend
/// goes into fail-fast, and its share goes to the other backend. (Without
/// failure accrual the endpoint is never out of the balancer, and the
/// backend keeps its share, each answered `502`.)
#[tokio::test]
async fn a_split_backend_refusing_connections_is_passed_over_once_failure_accrual_takes_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = backend().await;
    let down = refused_addr().await;
    let accrual = "      failure_accrual: {max_failures: 1, min_penalty: 1m, max_penalty: 1m}\n";
    let sidecar = upstreams::split_sidecar(dir.path(), "100ms", app, down, accrual, 1);
    let answer = || async {
        let res = get(&sidecar, "emoji", "/").await;
        let error = res
            .headers()
            .get("mesh-error")
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status(), error)
    };
    // A request drawn to `emoji-v2` fails to connect, which takes its
    // endpoint out; the next one drawn there waits the fail-fast timeout.
    let fail_fast = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("service in fail-fast".to_owned()),
    );
    let mut waited = 0;
    while answer().await != fail_fast {
        waited += 1;
        assert!(waited <= 200, "emoji-v2 never went into fail-fast");
    }
    for _ in 0..100 {
        assert_eq!(answer().await, (StatusCode::OK, None));
    }
    stop(sidecar).await;
}
