//! A route that only some clients may use cannot be reached through the
//! spelling of a path on another route: `/public/../admin`, `//admin`,
//! `/%61dmin` and `/admin%2Fx` are what the application reads as
//! `/admin...`, so they are allowed only if `/admin...` is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mesh_policy::{PolicyConfig, Workload};
use support::{T::*, Want::*, *};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: { matchLabels: { app: web } }
  port: 8080
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: admin }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /admin } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: public }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: admins }
spec: { identities: ["spiffe://cluster.local/ns/default/sa/admin"] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: anywhere }
spec: { networks: [{ cidr: 0.0.0.0/0 }, { cidr: "::/0" }] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: admin-only }
spec:
  targetRef: { group: policy.linkerd.io, kind: HTTPRoute, name: admin }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: admins }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: public-anyone }
spec:
  targetRef: { group: gateway.networking.k8s.io, kind: HTTPRoute, name: public }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere }]
"#;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";
const IP: Option<&str> = Some("10.0.0.7");

fn policy() -> mesh_policy::Policy {
    let workload = Workload::new("default").with_label("app", "web");
    compile(POLICY, &workload, &PolicyConfig::default())
}

#[test]
fn another_spelling_of_a_forbidden_path_is_denied() {
    let policy = policy();
    for path in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/./admin",
        "//admin",
        "/%61dmin",
        "/admin%2Fusers",
        "/public/..%2Fadmin/users?x=1",
    ] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Deny("web"),
            "{path}"
        );
    }
}

#[test]
fn a_client_allowed_under_both_spellings_is_allowed() {
    let policy = policy();
    // The decision names the route as written; the normal form only
    // has to allow it too.
    for (path, route, authz) in [
        ("/admin", "admin", "admin-only"),
        ("/public/../admin", "public", "public-anyone"),
        ("//admin", "public", "public-anyone"),
        ("/%61dmin", "public", "public-anyone"),
    ] {
        assert_eq!(
            decide(&policy, 8080, Id(ADMIN), IP, "GET", path, &[]),
            Allow("web", route, authz),
            "{path}"
        );
    }
    for path in ["/public//x", "/public/./x", "/a%20b"] {
        assert_eq!(
            decide(&policy, 8080, Plain, IP, "GET", path, &[]),
            Allow("web", "public", "public-anyone"),
            "{path}"
        );
    }
    // As written, this is on the admin route, which an application that
    // does not normalize would serve: both spellings must allow.
    assert_eq!(
        decide(&policy, 8080, Plain, IP, "GET", "/admin/../public", &[]),
        Deny("web")
    );
}
