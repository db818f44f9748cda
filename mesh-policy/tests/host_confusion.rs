//! A request can name its host twice: in its URI (an HTTP/1 request in
//! absolute form, or HTTP/2's `:authority`) and in a `Host` header. Routes
//! match the URI's, as the HTTP specifications say a server must; an
//! application that routes by the `Host` header reads the other. So when
//! the two differ, a request is allowed only if it would be under both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mesh_policy::{PolicyConfig, Workload};
use support::{T::*, Want::*, *};

const POLICY: &str = r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: web }
spec:
  podSelector: {}
  port: 8080
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: admin }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
  hostnames: [admin.example.com]
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: { name: public }
spec:
  parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web }]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: { name: admins }
spec: { identities: ["spiffe://cluster.local/ns/default/sa/admin"] }
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: { name: anywhere }
spec: { networks: [{ cidr: 0.0.0.0/0 }] }
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
  targetRef: { group: policy.linkerd.io, kind: HTTPRoute, name: public }
  requiredAuthenticationRefs: [{ group: policy.linkerd.io, kind: NetworkAuthentication, name: anywhere }]
"#;

const ADMIN: &str = "spiffe://cluster.local/ns/default/sa/admin";
const IP: Option<&str> = Some("10.0.0.7");

fn policy() -> mesh_policy::Policy {
    compile(POLICY, &Workload::new("default"), &PolicyConfig::default())
}

#[test]
fn a_host_header_naming_a_refused_route_refuses_the_request() {
    let policy = policy();
    let get = |tls, uri, host| decide(&policy, 8080, tls, IP, "GET", uri, &[("host", host)]);
    // As in the URI, public; as in the Host header, admin.
    assert_eq!(
        get(Plain, "http://public.example.com/", "admin.example.com"),
        Deny("web")
    );
    assert_eq!(
        get(
            Plain,
            "http://public.example.com/",
            "ADMIN.example.com:8080"
        ),
        Deny("web")
    );
    // The admin may, under either name; the decision names the URI's route.
    assert_eq!(
        get(Id(ADMIN), "http://public.example.com/", "admin.example.com"),
        Allow("web", "public", "public-anyone")
    );
    // The two agreeing, however spelled, is one host.
    assert_eq!(
        get(
            Plain,
            "http://public.example.com/",
            "Public.Example.com.:80"
        ),
        Allow("web", "public", "public-anyone")
    );
    assert_eq!(
        get(Plain, "http://admin.example.com/", "admin.example.com"),
        Deny("web")
    );
    // Without a host in the URI, the Host header is the host.
    assert_eq!(
        get(Plain, "/", "public.example.com"),
        Allow("web", "public", "public-anyone")
    );
    assert_eq!(get(Plain, "/", "admin.example.com"), Deny("web"));
}
