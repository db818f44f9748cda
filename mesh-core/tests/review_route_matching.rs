//! An `HTTPRoute` as written in a manifest, matched against requests with
//! the Gateway API's semantics: `PathPrefix` element by element, header
//! names without case and values with it, query parameter names and
//! values exactly; `ReplacePrefixMatch` at `/` boundaries, as the Gateway
//! API's own examples; and paths put in normal form before matching, the
//! form the application is then sent.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use mesh_core::resource::{self, HttpRoute};
use mesh_core::route::{NormalizePathLayer, RedirectLayer, RouteMatch};
use tower::{Layer, ServiceExt, service_fn};

/// The matches of the one rule of the route whose `rules[0]` is `rule`
/// (YAML, indented as a list entry under `rules:`).
fn rule_matches(rule: &str) -> Vec<RouteMatch> {
    route(rule).rule_matches().unwrap().remove(0)
}

fn route(rule: &str) -> HttpRoute {
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n  rules:\n    - {rule}\n"
    );
    resource::load::<HttpRoute>("routes.yaml", &text)
        .unwrap()
        .resources
        .remove(0)
}

fn matched(matches: &[RouteMatch], req: &Request<()>) -> bool {
    matches.iter().any(|m| m.matches_request(req))
}

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

#[test]
fn a_path_prefix_matches_whole_path_elements() {
    for prefix in ["/foo", "/foo/"] {
        let matches = rule_matches(&format!(
            "matches: [{{path: {{type: PathPrefix, value: \"{prefix}\"}}}}]"
        ));
        for (uri, expected) in [
            ("/foo", true),
            ("/foo/", true),
            ("/foo/bar", true),
            ("/foo/bar/baz?x=1", true),
            ("/foo?x=1", true),
            ("/foobar", false),
            ("/foo.bar", false),
            ("/fo", false),
            ("/FOO", false),
            ("/", false),
            ("/bar/foo", false),
        ] {
            assert_eq!(matched(&matches, &get(uri)), expected, "{prefix} on {uri}");
        }
    }
    // No path, or the root, is every path.
    for rule in [
        "matches: [{}]",
        "matches: [{path: {type: PathPrefix, value: /}}]",
        "{}",
    ] {
        let matches = rule_matches(rule);
        for uri in ["/", "/a", "/a/b/"] {
            assert!(matched(&matches, &get(uri)), "{rule} on {uri}");
        }
    }
}

#[test]
fn header_names_match_in_any_case_and_values_exactly() {
    let matches = rule_matches("matches: [{headers: [{name: X-Tenant, value: Blue}]}]");
    let with = |name: &str, value: &str| Request::get("/").header(name, value).body(()).unwrap();
    assert!(matched(&matches, &with("x-tenant", "Blue")));
    assert!(matched(&matches, &with("X-TENANT", "Blue")));
    assert!(!matched(&matches, &with("x-tenant", "blue")));
    assert!(!matched(&matches, &with("x-tenant", "Blue2")));
    assert!(!matched(&matches, &with("x-tenant", "Blu")));
    assert!(!matched(&matches, &get("/")));
    // One of a repeated header's values is enough.
    let repeated = Request::get("/")
        .header("x-tenant", "red")
        .header("X-Tenant", "Blue")
        .body(())
        .unwrap();
    assert!(matched(&matches, &repeated));
}

#[test]
fn query_parameter_names_and_values_match_exactly() {
    let matches = rule_matches("matches: [{queryParams: [{name: page, value: Two}]}]");
    for (uri, expected) in [
        ("/?page=Two", true),
        ("/?a=1&page=Two&b", true),
        ("/?Page=Two", false),
        ("/?PAGE=Two", false),
        ("/?page=two", false),
        ("/?page=Two2", false),
        ("/?page", false),
        ("/?pages=Two", false),
        ("/", false),
    ] {
        assert_eq!(matched(&matches, &get(uri)), expected, "{uri}");
    }
}

/// The `Location` the rule `rule` (whose one filter is a redirect) answers
/// `path` with.
async fn redirected(rule: &HttpRoute, path: &str) -> String {
    let rule_spec = &rule.spec.rules[0];
    let matches = rule.rule_matches().unwrap().remove(0);
    let filters = rule_spec.route_filters(&matches).unwrap();
    let app = service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("never")))
    });
    let svc = RedirectLayer::new(filters.redirect.unwrap()).layer(app);
    let req = Request::get(path).header("host", "web").body(()).unwrap();
    assert!(matched(&matches, &req), "{path}");
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn replace_prefix_match_keeps_the_rest_at_slash_boundaries() {
    // The Gateway API's HTTPPathModifier examples.
    let redirect_to = |with: &str| {
        route(&format!(
            "matches: [{{path: {{type: PathPrefix, value: /foo}}}}]\n      filters:\n        - type: RequestRedirect\n          requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: \"{with}\"}}}}"
        ))
    };
    let xyz = redirect_to("/xyz");
    assert_eq!(redirected(&xyz, "/foo/bar").await, "http://web/xyz/bar");
    assert_eq!(redirected(&xyz, "/foo").await, "http://web/xyz");
    assert_eq!(redirected(&xyz, "/foo/").await, "http://web/xyz/");
    assert_eq!(
        redirected(&xyz, "/foo/bar?q=1").await,
        "http://web/xyz/bar?q=1"
    );
    let root = redirect_to("/");
    assert_eq!(redirected(&root, "/foo/bar").await, "http://web/bar");
    assert_eq!(redirected(&root, "/foo").await, "http://web/");
    assert_eq!(redirected(&root, "/foo/").await, "http://web/");
    let slash = redirect_to("/xyz/");
    assert_eq!(redirected(&slash, "/foo/bar").await, "http://web/xyz/bar");
    assert_eq!(redirected(&slash, "/foo").await, "http://web/xyz");
}

#[tokio::test]
async fn paths_are_matched_and_sent_on_in_one_normal_form() {
    // The documented normal form: escapes of unreserved characters
    // decoded (others in uppercase, `%2F` kept), `.` and `..` segments
    // removed, runs of `/` merged; the query untouched. The application
    // is sent the path that was matched.
    let exact = rule_matches("matches: [{path: {type: Exact, value: /admin}}]");
    let prefix = rule_matches("matches: [{path: {type: PathPrefix, value: /admin}}]");
    for (sent, normal, is_exact) in [
        ("/admin", "/admin", true),
        ("/%61dmin", "/admin", true),
        ("/%61%64%6D%69%6E", "/admin", true),
        ("//admin", "/admin", true),
        ("/./admin", "/admin", true),
        ("/public/../admin", "/admin", true),
        ("/public/%2e%2E/admin", "/admin", true),
        ("/../../admin", "/admin", true),
        ("/admin/.", "/admin/", false),
        ("/admin//x/../y", "/admin/y", false),
        ("/admin/%7euser", "/admin/~user", false),
        ("/admin%2fx", "/admin%2Fx", false),
    ] {
        let seen = service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.uri().to_string()))
        });
        let svc = NormalizePathLayer.layer(seen);
        let res = svc.oneshot(get(&format!("{sent}?q=%2e"))).await.unwrap();
        assert_eq!(res.body(), &format!("{normal}?q=%2e"), "{sent}");
        let normalized = get(res.body());
        assert_eq!(matched(&exact, &normalized), is_exact, "{sent}");
        assert_eq!(
            matched(&prefix, &normalized),
            normal.starts_with("/admin/") || normal == "/admin",
            "{sent}"
        );
    }
}
